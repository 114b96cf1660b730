package generator

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing/fstest"
)

// sourceFiles lists the files of fsys in fs.WalkDir's order (folder by folder, names sorted).
// A resolved blueprint tree is a MapFS, whose every ReadDir ranges over the whole map: its
// keys are sorted directly instead (a third of Render's CPU went to walking it).
func sourceFiles(fsys fs.FS) ([]string, error) {
	if m, ok := fsys.(fstest.MapFS); ok {
		if list, ok := mapFiles(m); ok {
			return list, nil
		}
	}
	var list []string
	err := fs.WalkDir(fsys, ".", func(src string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		list = append(list, src)
		return nil
	})
	return list, err
}

// mapFiles is sourceFiles for a MapFS; ok is false for a map that is not a plain tree (a path
// fs.WalkDir would not visit as given, or a file that is also a folder), which is walked.
func mapFiles(m fstest.MapFS) ([]string, bool) {
	list := make([]string, 0, len(m))
	for p, f := range m {
		if f != nil && f.Mode.IsDir() {
			continue
		}
		if p == "." || !fs.ValidPath(p) {
			return nil, false
		}
		list = append(list, p)
	}
	// fs.WalkDir visits a folder's entries in name order: comparing segment by segment is
	// comparing the bytes with '/' below every other byte ("a/b" before "a.txt").
	slices.SortFunc(list, walkCompare)
	for i := 0; i+1 < len(list); i++ {
		if strings.HasPrefix(list[i+1], list[i]+"/") {
			return nil, false
		}
	}
	return list, true
}

func walkCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

// readSource returns a file's bytes and whether it is executable. The bytes of a MapFS are
// its own, not a copy: the caller must not change them.
func readSource(fsys fs.FS, src string) ([]byte, bool, error) {
	if m, ok := fsys.(fstest.MapFS); ok {
		if f := m[src]; f != nil && !f.Mode.IsDir() && f.Mode&fs.ModeSymlink == 0 {
			return f.Data, f.Mode&0o111 != 0, nil
		}
	}
	raw, err := fs.ReadFile(fsys, src)
	if err != nil {
		return nil, false, err
	}
	info, err := fs.Stat(fsys, src)
	if err != nil {
		return nil, false, err
	}
	return raw, info.Mode()&0o111 != 0, nil
}

// compiledRule is a Rule with its glob split once: Render matches every rule against every
// file, and splitting both sides on each match was a sixth of its CPU.
type compiledRule struct {
	Rule
	segs    []string
	literal []bool // the segment has no pattern characters: path.Match is string equality
	prefix  string // Glob without its "**", for To
}

func compileRules(rules []Rule) []compiledRule {
	out := make([]compiledRule, len(rules))
	for i, r := range rules {
		segs := strings.Split(r.Glob, "/")
		lit := make([]bool, len(segs))
		for k, s := range segs {
			lit[k] = !strings.ContainsAny(s, `*?[\`)
		}
		out[i] = compiledRule{Rule: r, segs: segs, literal: lit, prefix: strings.TrimSuffix(r.Glob, "**")}
	}
	return out
}

// enabledCompiled applies the rules to src: whether it is generated, where it goes, its
// policy. Each rule whose glob matches the current path applies, in order.
func enabledCompiled(src string, rules []compiledRule, data map[string]any) (cur, policy string, ok bool, err error) {
	cur, policy = src, PolicyMerge
	name := strings.Split(cur, "/")
	for i := range rules {
		r := &rules[i]
		if !matchCompiled(r.segs, r.literal, name) {
			continue
		}
		if r.When != "" {
			ok, err := EvalBool(r.When, data)
			if err != nil {
				return "", "", false, fmt.Errorf("rule %q: %w", r.Glob, err)
			}
			if !ok {
				return "", "", false, nil
			}
		}
		if r.To != "" {
			cur = path.Join(r.To, strings.TrimPrefix(cur, r.prefix))
			name = strings.Split(cur, "/")
		}
		if r.Policy != "" {
			policy = r.Policy
		}
	}
	return cur, policy, true, nil
}

// matchCompiled is matchSegs with the glob's literal segments compared as strings.
func matchCompiled(g []string, lit []bool, n []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			for i := 0; i <= len(n); i++ {
				if matchCompiled(g[1:], lit[1:], n[i:]) {
					return true
				}
			}
			return false
		}
		if len(n) == 0 {
			return false
		}
		if lit[0] {
			if g[0] != n[0] {
				return false
			}
		} else if ok, _ := path.Match(g[0], n[0]); !ok {
			return false
		}
		g, lit, n = g[1:], lit[1:], n[1:]
	}
	return len(n) == 0
}

// eachSource calls fn for every path in order, stopping at the first error.
func eachSource(srcs []string, fn func(src string) error) error {
	for _, src := range srcs {
		if err := fn(src); err != nil {
			return err
		}
	}
	return nil
}
