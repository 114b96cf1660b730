package blueprints

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/prompts"
)

// ComponentsDir is the folder of a version (and of its resolved tree) that holds components:
// components/<name>/{component.yaml, files/, _partials/, _slots/, testdata/}.
const ComponentsDir = "components"

// ComponentFile is the manifest of one component.
const ComponentFile = "component.yaml"

// Component is one component's manifest: when it is part of the project, and what it adds
// to the blueprint. Its file rules are relative to its own files/ folder.
type Component struct {
	Name        string             `yaml:"-"`
	Description string             `yaml:"description"`
	When        string             `yaml:"when,omitempty"`
	Questions   []prompts.Question `yaml:"questions,omitempty"`
	Secrets     []Secret           `yaml:"secrets,omitempty"`
	Files       []generator.Rule   `yaml:"files,omitempty"`
}

// componentEntries are what a component folder may hold; anything else is a mistake.
var componentEntries = map[string]bool{
	ComponentFile: true, "files": true, generator.PartialsDir: true, generator.SlotsDir: true, "testdata": true,
}

// withComponents adds a version's components/ folder to its own files, mounted at
// components/ in the tree (a version without one is returned as it is).
func (l Library) withComponents(name, version string, own fs.FS) (fs.FS, error) {
	dir := path.Join(name, version, ComponentsDir)
	if _, err := fs.Stat(l.fsys, dir); err != nil {
		return own, nil
	}
	comps, err := fs.Sub(l.fsys, dir)
	if err != nil {
		return nil, err
	}
	tree := fstest.MapFS{}
	err = fs.WalkDir(own, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if p == ComponentsDir || strings.HasPrefix(p, ComponentsDir+"/") {
			return fmt.Errorf("blueprint %s@%s: files/%s: the folder %s/ is reserved for components", name, version, p, ComponentsDir)
		}
		return copyInto(tree, own, p)
	})
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(comps, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		segs := strings.SplitN(p, "/", 3)
		if len(segs) < 2 || !componentEntries[segs[1]] || (segs[1] == ComponentFile) != (len(segs) == 2) {
			return fmt.Errorf("blueprint %s@%s: %s/%s: a component folder holds only %s, files/, %s/, %s/ and testdata/",
				name, version, ComponentsDir, p, ComponentFile, generator.PartialsDir, generator.SlotsDir)
		}
		data, err := fs.ReadFile(comps, p)
		if err != nil {
			return err
		}
		info, err := fs.Stat(comps, p)
		if err != nil {
			return err
		}
		tree[path.Join(ComponentsDir, p)] = &fstest.MapFile{Data: data, Mode: info.Mode().Perm()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// expandComponents reads the components of a resolved tree, in name order, and turns them
// into questions, secrets and rules: a component's files are generated when its `when`
// holds, moved from components/<name>/files/ to the project root. Its manifest and test data
// leave the tree. Component rules come before the version's own rules, so those can still
// match output paths (a policy for backend/**, say) whichever component made the file.
func expandComponents(bp *Blueprint) error {
	tree, ok := bp.Files.(fstest.MapFS)
	if !ok {
		return nil // a tree without components is never copied into a MapFS
	}
	var names []string
	for p := range tree {
		if seg := strings.Split(p, "/"); len(seg) == 3 && seg[0] == ComponentsDir && seg[2] == ComponentFile {
			names = append(names, seg[1])
		}
	}
	sort.Strings(names)
	var rules []generator.Rule
	for _, n := range names {
		c, err := readComponent(tree, n)
		if err != nil {
			return fmt.Errorf("blueprint %s@%s: %w", bp.Name, bp.Version, err)
		}
		base := path.Join(ComponentsDir, n)
		if c.When != "" {
			rules = append(rules, generator.Rule{Glob: base + "/**", When: c.When})
		}
		for _, r := range c.Files {
			r.Glob = path.Join(base, "files", r.Glob)
			if r.To != "" {
				r.To = path.Join(base, "files", r.To)
			}
			rules = append(rules, r)
		}
		rules = append(rules, generator.Rule{Glob: base + "/files/**", To: "."})
		bp.Questions, err = mergeQuestions(bp.Questions, c.Questions, nil)
		if err != nil {
			return err
		}
		bp.Secrets = mergeSecrets(bp.Secrets, c.Secrets)
		bp.Components = append(bp.Components, *c)
	}
	for p := range tree {
		if seg := strings.Split(p, "/"); seg[0] == ComponentsDir && len(seg) > 2 && (seg[2] == ComponentFile || seg[2] == "testdata") {
			delete(tree, p)
		}
	}
	bp.Rules = append(rules, bp.Rules...)
	return nil
}

func readComponent(tree fstest.MapFS, name string) (*Component, error) {
	p := path.Join(ComponentsDir, name, ComponentFile)
	var c Component
	dec := yaml.NewDecoder(bytes.NewReader(tree[p].Data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	c.Name = name
	if c.When != "" {
		if err := generator.CheckExpr(c.When); err != nil {
			return nil, fmt.Errorf("%s: when: %w", p, err)
		}
	}
	for _, q := range c.Questions {
		if err := q.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if q.When != "" {
			if err := generator.CheckExpr(q.When); err != nil {
				return nil, fmt.Errorf("%s: question %q: when: %w", p, q.Key, err)
			}
		}
	}
	for _, r := range c.Files {
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, s := range c.Secrets {
		if s.Name == "" || strings.ContainsAny(s.Name, "/\\ ") {
			return nil, fmt.Errorf("%s: secret name %q", p, s.Name)
		}
	}
	return &c, nil
}

// Origins names, for each path of a resolved tree (a generator.File's Sources), the file of
// the library it came from: the newest version of the `extends` chain that has it, such as
// "webapp/1.4.0/components/backup/_slots/make.targets/30-backup.tmpl".
func (l Library) Origins(bp *Blueprint, sources []string) []string {
	out := make([]string, 0, len(sources))
	for _, src := range sources {
		rel := path.Join("files", src)
		if strings.HasPrefix(src, ComponentsDir+"/") {
			rel = src
		}
		origin := src
		for _, r := range bp.History {
			p := path.Join(bp.Name, r.Version, rel)
			if _, err := fs.Stat(l.fsys, p); err == nil {
				origin = p
				break
			}
		}
		out = append(out, origin)
	}
	return out
}
