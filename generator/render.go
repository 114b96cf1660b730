package generator

import (
	"bytes"
	"fmt"
	"go/format"
	"io/fs"
	"path"
	"strings"
	"text/template"
)

// Rule maps, filters and classifies blueprint files. Rules are applied in order; each rule
// whose Glob matches the file's current path applies: When must hold (or the file is not
// generated), To moves the matched folder (Glob must end in "/**"), Policy sets the policy.
type Rule struct {
	Glob   string `yaml:"glob"`
	When   string `yaml:"when,omitempty"`
	To     string `yaml:"to,omitempty"`
	Policy string `yaml:"policy,omitempty"`
}

// Check validates a rule, so a broken blueprint fails when it is loaded.
func (r Rule) Check() error {
	if r.Glob == "" {
		return fmt.Errorf("rule without glob")
	}
	if _, err := path.Match(strings.ReplaceAll(r.Glob, "**", "*"), ""); err != nil {
		return fmt.Errorf("rule %q: %w", r.Glob, err)
	}
	if r.To != "" && !strings.HasSuffix(r.Glob, "/**") {
		return fmt.Errorf("rule %q: `to` needs a glob ending in /**", r.Glob)
	}
	switch r.Policy {
	case "", PolicyMerge, PolicySeed, PolicyManaged:
	default:
		return fmt.Errorf("rule %q: unknown policy %q (allowed: merge, seed, managed)", r.Glob, r.Policy)
	}
	if r.When != "" {
		if err := CheckExpr(r.When); err != nil {
			return fmt.Errorf("rule %q: when: %w", r.Glob, err)
		}
	}
	return nil
}

// Render renders every file of fsys for the given answers, in memory. Only *.tmpl files are
// rendered (suffix stripped); others are copied byte for byte. Path segments may hold
// template actions; a path with a segment that renders empty is not generated.
//
// Two kinds of template are never written out: partials (any *.tmpl below a `_partials`
// folder, rendered by `include NAME DATA`) and slot fragments (`_slots/SLOT/FILE.tmpl`,
// rendered together by `slot SLOT DATA`). See parts.go.
func Render(fsys fs.FS, rules []Rule, data map[string]any) (Files, error) {
	r, regular, err := newRenderer(fsys, rules, data)
	if err != nil {
		return nil, err
	}
	out, ok := r.renderParallel(regular)
	if !ok {
		if out, err = r.renderSerial(regular); err != nil {
			return nil, err
		}
	}
	return out, out.Sort()
}

// renderSerial renders the files one after another in one template set, in order: a file
// sees the templates every earlier file defined.
func (r *renderer) renderSerial(regular []string) (Files, error) {
	var out Files
	for _, src := range regular {
		f, ok, err := r.renderOne(src)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", src, err)
		}
		if ok {
			out = append(out, f)
		}
	}
	return out, nil
}

func (r *renderer) renderOne(src string) (File, bool, error) {
	cur, policy, ok, err := r.target(src)
	if err != nil || !ok {
		return File{}, false, err
	}
	raw, exec, err := readSource(r.fsys, src)
	if err != nil {
		return File{}, false, err
	}
	sources := []string{src}
	if strings.HasSuffix(cur, ".tmpl") {
		cur = strings.TrimSuffix(cur, ".tmpl")
		t, err := r.root.New(src).Parse(string(raw))
		if err != nil {
			return File{}, false, err
		}
		if raw, err = r.execFile(t, len(raw)); err != nil {
			return File{}, false, err
		}
		sources = append(sources, r.used...)
	} else {
		raw = bytes.Clone(raw) // readSource's bytes may be the blueprint's own
	}
	return finishFile(cur, policy, raw, exec, sources)
}

// target applies the rules and renders the path's template actions: where src goes, its
// policy, and whether it is generated at all.
func (r *renderer) target(src string) (cur, policy string, ok bool, err error) {
	cur, policy, ok, err = enabledCompiled(src, r.rules, r.data)
	if err != nil || !ok {
		return "", "", false, err
	}
	if strings.Contains(cur, "{{") {
		segs := strings.Split(cur, "/")
		for i, s := range segs {
			out, err := Eval(s, r.data)
			if err != nil {
				return "", "", false, fmt.Errorf("path: %w", err)
			}
			if out = strings.TrimSpace(out); out == "" {
				return "", "", false, nil
			}
			if strings.ContainsAny(out, "/\\") || out == "." || out == ".." {
				return "", "", false, fmt.Errorf("path segment %q renders to %q", s, out)
			}
			segs[i] = out
		}
		cur = strings.Join(segs, "/")
	}
	return cur, policy, true, nil
}

// execFile renders a parsed file, noting the partials and fragments it used in r.used. size
// is the template's: the output is about as long, and growing to it copies it several times.
func (r *renderer) execFile(t *template.Template, size int) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(size + size/4)
	r.used = nil
	if err := t.Execute(&b, r.data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// finishFile formats Go sources and sets the mode of a rendered file.
func finishFile(cur, policy string, raw []byte, exec bool, sources []string) (File, bool, error) {
	if strings.HasSuffix(cur, ".go") {
		formatted, err := format.Source(raw)
		if err != nil {
			return File{}, false, fmt.Errorf("gofmt %s: %w", cur, err)
		}
		raw = formatted
	}
	// Embedded trees lose executable bits, so a script is recognised by its shebang too.
	mode := fs.FileMode(0o644)
	if exec || bytes.HasPrefix(raw, []byte("#!")) {
		mode = 0o755
	}
	return File{Path: cur, Data: raw, Mode: mode, Policy: policy, Sources: sources}, true, nil
}

// Match reports whether a slash-separated path matches a glob in which "*" matches within
// one segment and "**" matches any number of whole segments.
func Match(glob, name string) bool {
	return matchSegs(strings.Split(glob, "/"), strings.Split(name, "/"))
}

func matchSegs(g, n []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			for i := 0; i <= len(n); i++ {
				if matchSegs(g[1:], n[i:]) {
					return true
				}
			}
			return false
		}
		if len(n) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], n[0]); !ok {
			return false
		}
		g, n = g[1:], n[1:]
	}
	return len(n) == 0
}
