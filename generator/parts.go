package generator

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"text/template"
)

// Folder names that mark templates which are never written out.
const (
	// PartialsDir holds partials: `x/_partials/compose/db.yaml.tmpl` is the partial named
	// "compose/db.yaml", rendered wherever a template says `include "compose/db.yaml" .`.
	// Names are global across the tree (a component's partial can be used by any file), so
	// two partials with one name are an error.
	PartialsDir = "_partials"
	// SlotsDir holds slot fragments: `x/_slots/compose.services/20-db.yaml.tmpl` is a
	// fragment of the slot "compose.services". `slot "compose.services" .` renders every
	// fragment of that slot whose path the rules generate, ordered by file name (so
	// "10-…" comes before "20-…"), then by full path, and joins them without separators.
	SlotsDir = "_slots"
)

// maxIncludeDepth stops a partial that includes itself before the stack does.
const maxIncludeDepth = 64

type fragment struct {
	src, file string
	tmpl      *template.Template
}

// renderer is the state of one Render: the shared template set, the partials and enabled
// fragments, and the sources used by the file being rendered.
type renderer struct {
	fsys     fs.FS
	rules    []compiledRule
	data     map[string]any
	root     *template.Template
	partials map[string]string     // partial name -> source path
	slots    map[string][]fragment // slot -> enabled fragments, in order
	known    map[string]bool       // every slot some fragment fills, enabled or not
	used     []string              // partials and fragments the current file rendered
	depth    int
	mutators map[string]bool // renderParallel's goroutines: functions that stop it
}

// Part classifies a blueprint path: "partial" or "fragment" with its name (the partial's
// name or the slot), or "" for a file that is rendered to the output.
func Part(src string) (kind, name string, err error) {
	segs := strings.Split(src, "/")
	for i, s := range segs {
		switch s {
		case PartialsDir:
			rest := strings.Join(segs[i+1:], "/")
			if !strings.HasSuffix(rest, ".tmpl") || rest == ".tmpl" {
				return "", "", fmt.Errorf("partial %s: name it *.tmpl", src)
			}
			return "partial", strings.TrimSuffix(rest, ".tmpl"), nil
		case SlotsDir:
			if len(segs) != i+3 || !strings.HasSuffix(segs[i+2], ".tmpl") {
				return "", "", fmt.Errorf("slot fragment %s: expected %s/SLOT/FILE.tmpl", src, SlotsDir)
			}
			return "fragment", segs[i+1], nil
		}
	}
	return "", "", nil
}

// newRenderer parses the partials and enabled fragments of fsys and lists the files to render.
func newRenderer(fsys fs.FS, rules []Rule, data map[string]any) (*renderer, []string, error) {
	r := &renderer{
		fsys: fsys, rules: compileRules(rules), data: data,
		partials: map[string]string{}, slots: map[string][]fragment{}, known: map[string]bool{},
	}
	// One template set for the whole tree: the func map is copied once, not per file.
	r.root = template.New("").Option("missingkey=error").Funcs(Funcs()).Funcs(template.FuncMap{
		"include": r.include,
		"slot":    r.slot,
		"slotOne": r.slotOne,
	})
	var regular []string
	srcs, err := sourceFiles(fsys)
	if err != nil {
		return nil, nil, err
	}
	err = eachSource(srcs, func(src string) error {
		kind, name, err := Part(src)
		if err != nil {
			return err
		}
		switch kind {
		case "partial":
			if other, dup := r.partials[name]; dup {
				return fmt.Errorf("two partials named %q: %s and %s", name, other, src)
			}
			r.partials[name] = src
			if err := r.parse(name, src); err != nil {
				return err
			}
		case "fragment":
			r.known[name] = true
			_, _, ok, err := enabledCompiled(src, r.rules, data)
			if err != nil {
				return fmt.Errorf("render %s: %w", src, err)
			}
			if !ok {
				return nil
			}
			if err := r.parse(src, src); err != nil {
				return err
			}
			r.slots[name] = append(r.slots[name], fragment{src: src, file: path.Base(src), tmpl: r.root.Lookup(src)})
		default:
			regular = append(regular, src)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, fr := range r.slots {
		sort.Slice(fr, func(i, j int) bool {
			if fr[i].file != fr[j].file {
				return fr[i].file < fr[j].file
			}
			return fr[i].src < fr[j].src
		})
	}
	return r, regular, nil
}

func (r *renderer) parse(name, src string) error {
	raw, _, err := readSource(r.fsys, src)
	if err != nil {
		return err
	}
	if _, err := r.root.New(name).Parse(string(raw)); err != nil {
		return fmt.Errorf("render %s: %w", src, err)
	}
	return nil
}

func (r *renderer) note(src string) {
	if !slices.Contains(r.used, src) {
		r.used = append(r.used, src)
	}
}

// include renders the partial name with data; unlike `template`, the name may be computed.
func (r *renderer) include(name string, data any) (string, error) {
	src, ok := r.partials[name]
	if !ok {
		return "", fmt.Errorf("include %q: no such partial%s", name, suggest(name, r.partials))
	}
	return r.exec("include "+name, src, r.root.Lookup(name), data)
}

// slot renders every enabled fragment of a slot with data, joined in order.
func (r *renderer) slot(name string, data any) (string, error) {
	if !r.known[name] {
		return "", fmt.Errorf("slot %q: no fragment fills it%s", name, suggest(name, r.known))
	}
	var b strings.Builder
	for _, f := range r.slots[name] {
		out, err := r.exec("slot "+name, f.src, f.tmpl, data)
		if err != nil {
			return "", err
		}
		b.WriteString(out)
	}
	return b.String(), nil
}

// slotOne is slot for a slot that exactly one component must fill (the database's port, say):
// a new component that forgets it fails the render instead of leaving a gap.
func (r *renderer) slotOne(name string, data any) (string, error) {
	if n := len(r.slots[name]); n != 1 && r.known[name] {
		var srcs []string
		for _, f := range r.slots[name] {
			srcs = append(srcs, f.src)
		}
		return "", fmt.Errorf("slot %q: wants exactly one fragment, %d are in the project (%s)", name, n, strings.Join(srcs, ", "))
	}
	return r.slot(name, data)
}

func (r *renderer) exec(what, src string, t *template.Template, data any) (string, error) {
	if r.depth >= maxIncludeDepth {
		return "", fmt.Errorf("%s: more than %d nested includes (a partial includes itself?)", what, maxIncludeDepth)
	}
	r.depth++
	defer func() { r.depth-- }()
	r.note(src)
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s (%s): %w", what, src, err)
	}
	return b.String(), nil
}

// suggest lists the names there are, so a typo is found without reading the tree.
func suggest[V any](name string, have map[string]V) string {
	if len(have) == 0 {
		return " (there are none)"
	}
	names := make([]string, 0, len(have))
	for n := range have {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Sprintf(" (have: %s)", strings.Join(names, ", "))
}
