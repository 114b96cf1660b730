package generator

import (
	"bytes"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"
)

// maxRenderWorkers bounds the goroutines renderParallel uses: rendering is CPU work, and
// a project has a few hundred files.
const maxRenderWorkers = 4

// mutators are the template functions that change their arguments in place (sprig's set,
// unset and merges). A template that calls one may change what a later file sees, so such a
// tree is rendered in order. sortAlpha sorts a []string it is given in place too: it joins
// them when the data holds a []string that is not sorted yet.
var mutators = map[string]bool{
	"set": true, "unset": true, "merge": true, "mergeOverwrite": true, "mustMerge": true,
	"mustMergeOverwrite": true,
}

// rendered is one file rendered by renderParallel, with what it adds to or asks of the
// template set: the templates it defines and the ones it calls by name.
type rendered struct {
	f       File
	ok      bool
	err     error
	defines []string
	refs    []string
	mutates bool
}

// renderParallel renders the files on several goroutines, each with its own copy of the
// template set, into the order of regular. ok is false when the result could differ from
// rendering the files one after another in one set (a file defines or calls a template
// another file may see, a template changes the data, or any file failed: the serial render
// then gives the exact error), and the caller renders serially.
func (r *renderer) renderParallel(regular []string) (Files, bool) {
	n := min(runtime.GOMAXPROCS(0), maxRenderWorkers, len(regular)/16)
	if n < 2 {
		return nil, false
	}
	// Every goroutine gets its own copy of the data: nothing a template does to it (sorting a
	// sorted list again, say) is seen by another goroutine.
	mut := mutators
	if unsortedStrings(r.data) {
		mut = maps.Clone(mutators)
		mut["sortAlpha"] = true
	}
	pre := map[string]bool{} // templates every file sees: partials, fragments and their defines
	for _, t := range r.root.Templates() {
		pre[t.Name()] = true
	}
	for _, src := range regular {
		if pre[src] {
			return nil, false // a file that replaces a partial for the files after it
		}
	}
	for _, t := range r.root.Templates() {
		refs, mutates := scanTree(t.Tree, mut)
		if mutates {
			return nil, false
		}
		for _, ref := range refs {
			if !pre[ref] {
				return nil, false // a partial calling what some file defines
			}
		}
	}
	workers := make([]*renderer, n)
	for i := range workers {
		data, ok := copyData(r.data)
		if !ok {
			return nil, false
		}
		w, err := r.fork(data.(map[string]any))
		if err != nil {
			return nil, false
		}
		w.mutators = mut
		workers[i] = w
	}
	res := make([]rendered, len(regular))
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(regular) {
					return
				}
				res[i] = w.renderTracked(regular[i])
			}
		}()
	}
	wg.Wait()
	definedBy := map[string]int{}
	regularSet := make(map[string]bool, len(regular))
	for _, src := range regular {
		regularSet[src] = true
	}
	for i, x := range res {
		if x.err != nil || x.mutates {
			return nil, false
		}
		for _, d := range x.defines {
			if _, dup := definedBy[d]; dup || pre[d] || regularSet[d] {
				return nil, false
			}
			definedBy[d] = i
		}
	}
	var out Files
	for i, x := range res {
		for _, ref := range x.refs {
			if by, ok := definedBy[ref]; !pre[ref] && ref != regular[i] && (!ok || by != i) {
				return nil, false // calls what another file defines, or its template
			}
		}
		if x.ok {
			out = append(out, x.f)
		}
	}
	return out, true
}

// fork returns a renderer for another goroutine: the same tree and data, a copy of the
// template set whose include and slot note what that goroutine's file used.
func (r *renderer) fork(data map[string]any) (*renderer, error) {
	w := &renderer{fsys: r.fsys, rules: r.rules, data: data, partials: r.partials, known: r.known}
	root, err := r.root.Clone()
	if err != nil {
		return nil, err
	}
	w.root = root.Funcs(template.FuncMap{"include": w.include, "slot": w.slot, "slotOne": w.slotOne})
	w.slots = make(map[string][]fragment, len(r.slots))
	for name, frs := range r.slots {
		own := make([]fragment, len(frs))
		for i, f := range frs {
			own[i] = fragment{src: f.src, file: f.file, tmpl: w.root.Lookup(f.src)}
		}
		w.slots[name] = own
	}
	return w, nil
}

// renderTracked is renderOne that also reports what the file defines and calls. A file
// whose templates change the data is not executed.
func (r *renderer) renderTracked(src string) (out rendered) {
	cur, policy, ok, err := r.target(src)
	if err != nil || !ok {
		return rendered{err: err}
	}
	raw, exec, err := readSource(r.fsys, src)
	if err != nil {
		return rendered{err: err}
	}
	sources := []string{src}
	if strings.HasSuffix(cur, ".tmpl") {
		cur = strings.TrimSuffix(cur, ".tmpl")
		// Only a file that says define or block can add templates besides its own.
		var before map[string]*template.Template
		mayDefine := definesTemplates(raw)
		if mayDefine {
			before = map[string]*template.Template{}
			for _, t := range r.root.Templates() {
				before[t.Name()] = t
			}
		}
		t, err := r.root.New(src).Parse(string(raw))
		if err != nil {
			return rendered{err: err}
		}
		out.refs, out.mutates = scanTree(t.Tree, r.mutators)
		if mayDefine {
			for _, d := range r.root.Templates() {
				if d.Name() != src && before[d.Name()] != d {
					out.defines = append(out.defines, d.Name())
					refs, mut := scanTree(d.Tree, r.mutators)
					out.refs, out.mutates = append(out.refs, refs...), out.mutates || mut
				}
			}
		}
		if out.mutates {
			return out
		}
		if raw, err = r.execFile(t, len(raw)); err != nil {
			return rendered{err: err}
		}
		sources = append(sources, r.used...)
	} else {
		raw = bytes.Clone(raw)
	}
	out.f, out.ok, out.err = finishFile(cur, policy, raw, exec, sources)
	return out
}

// scanTree lists the templates a parse tree calls by name and whether it calls one of mutators.
func scanTree(t *parse.Tree, mutators map[string]bool) (refs []string, mutates bool) {
	if t == nil {
		return nil, false
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			refs = append(refs, n.Name)
			walk(n.Pipe)
		case *parse.IdentifierNode:
			mutates = mutates || mutators[n.Ident]
		}
	}
	walk(t.Root)
	return refs, mutates
}

// definesTemplates says whether text has an action that starts with define or block: only
// those add templates to the set besides the file's own.
func definesTemplates(text []byte) bool {
	for {
		i := bytes.Index(text, []byte("{{"))
		if i < 0 {
			return false
		}
		text = text[i+2:]
		a := bytes.TrimLeft(bytes.TrimPrefix(text, []byte("-")), " \t\r\n")
		if bytes.HasPrefix(a, []byte("define")) || bytes.HasPrefix(a, []byte("block")) {
			return true
		}
	}
}

// copyData copies the maps and lists of template data, so that a goroutine's templates
// cannot reach another's. ok is false for a value it cannot copy (a pointer, a struct).
func copyData(v any) (any, bool) {
	switch v := v.(type) {
	case nil, string, bool, int, int64, float64:
		return v, true
	case []string:
		return slices.Clone(v), true
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, ok := copyData(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			c, ok := copyData(e)
			if !ok {
				return nil, false
			}
			out[k] = c
		}
		return out, true
	}
	return nil, false
}

// unsortedStrings says whether the data holds a []string that sortAlpha would change.
func unsortedStrings(v any) bool {
	switch v := v.(type) {
	case []string:
		return !slices.IsSorted(v)
	case []any:
		return slices.ContainsFunc(v, unsortedStrings)
	case map[string]any:
		for _, e := range v {
			if unsortedStrings(e) {
				return true
			}
		}
	}
	return false
}
