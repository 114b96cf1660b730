package blueprints

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing/fstest"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/prompts"
)

// Manifest is the content of one version's blueprint.yaml.
type Manifest struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Extends string `yaml:"extends,omitempty"`
	// Previous, for a version that extends nothing (a fresh layout), is the version it
	// follows: only its changelog is carried on.
	Previous        string             `yaml:"previous,omitempty"`
	Description     string             `yaml:"description"`
	Changelog       []string           `yaml:"changelog"`
	Questions       []prompts.Question `yaml:"questions,omitempty"`
	RemoveQuestions []string           `yaml:"remove_questions,omitempty"`
	Secrets         []Secret           `yaml:"secrets,omitempty"`
	Files           []generator.Rule   `yaml:"files,omitempty"`
	Remove          []string           `yaml:"remove,omitempty"`
	Migrations      []Migration        `yaml:"migrations,omitempty"`
}

// Secret is a value `new` writes once to secrets/<name>, never rendered or locked: a random
// password, or (External) an empty file for a credential only the team can get, such as a
// bot token.
type Secret struct {
	Name     string `yaml:"name"`
	When     string `yaml:"when,omitempty"`
	Length   int    `yaml:"length,omitempty"`
	External bool   `yaml:"external,omitempty"`
}

// Migration is a change applied to the old tree and answers before an upgrade merges.
type Migration struct {
	RenameFile   *Rename `yaml:"rename_file,omitempty"`
	RenameAnswer *Rename `yaml:"rename_answer,omitempty"`
}

// Rename maps an old name to a new one.
type Rename struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// Blueprint is one version resolved through its `extends` chain.
type Blueprint struct {
	Name        string
	Version     string
	Description string
	Questions   []prompts.Question
	Secrets     []Secret
	Rules       []generator.Rule
	Files       fs.FS
	// History lists the changelog of this version and every version it extends, newest first.
	History []Release
	// Migrations of this version (from the version it extends).
	Migrations []Migration
	// Components of the resolved tree, in name order (empty before webapp 1.4.0).
	Components []Component
}

// Release is one version's changelog entry.
type Release struct {
	Version string
	Changes []string
}

// Library is a set of blueprints in a file tree laid out as <name>/<version>/.
type Library struct {
	fsys fs.FS
}

// Embedded is the library compiled into the binary.
func Embedded() Library { return Library{fsys: embedded} }

// New opens a library in any file tree (tests use testdata blueprints).
func New(fsys fs.FS) Library { return Library{fsys: fsys} }

// FS is the library's file tree.
func (l Library) FS() fs.FS { return l.fsys }

// Names lists the blueprints, sorted.
func (l Library) Names() ([]string, error) {
	entries, err := fs.ReadDir(l.fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Versions lists a blueprint's versions, oldest first.
func (l Library) Versions(name string) ([]string, error) {
	entries, err := fs.ReadDir(l.fsys, name)
	if err != nil {
		names, _ := l.Names()
		return nil, fmt.Errorf("no blueprint %q%s", name, prompts.DidYouMean(name, names))
	}
	var vs []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := ParseSemver(e.Name()); err == nil {
				vs = append(vs, e.Name())
			}
		}
	}
	sort.Slice(vs, func(i, j int) bool { return CompareSemver(vs[i], vs[j]) < 0 })
	if len(vs) == 0 {
		return nil, fmt.Errorf("blueprint %q has no versions", name)
	}
	return vs, nil
}

// Latest is the newest version of a blueprint.
func (l Library) Latest(name string) (string, error) {
	vs, err := l.Versions(name)
	if err != nil {
		return "", err
	}
	return vs[len(vs)-1], nil
}

// ParseRef splits "name[@version]".
func ParseRef(ref string) (name, version string) {
	name, version, _ = strings.Cut(ref, "@")
	return name, version
}

// Open loads a blueprint version; an empty version means the newest.
func (l Library) Open(name, version string) (*Blueprint, error) {
	vs, err := l.Versions(name)
	if err != nil {
		return nil, err
	}
	if version == "" {
		version = vs[len(vs)-1]
	}
	if !slices.Contains(vs, version) {
		return nil, fmt.Errorf("blueprint %q has no version %q (versions: %s)", name, version, strings.Join(vs, ", "))
	}
	embeddedLib := l.fsys == fs.FS(embedded)
	if embeddedLib {
		if bp, ok := openedEmbedded.Load(name + "@" + version); ok {
			return bp.(*Blueprint), nil
		}
	}
	bp, err := l.resolve(name, version, 0)
	if err != nil {
		return nil, err
	}
	if err := expandComponents(bp); err != nil {
		return nil, err
	}
	if embeddedLib {
		openedEmbedded.Store(name+"@"+version, bp)
	}
	return bp, nil
}

// openedEmbedded holds the versions of the embedded library opened so far: a command opens the
// newest one for its flags and again for its work, and a Blueprint is never changed once made.
var openedEmbedded sync.Map

// ReadManifest reads and checks one version's blueprint.yaml without resolving `extends`.
func (l Library) ReadManifest(name, version string) (*Manifest, error) {
	p := path.Join(name, version, "blueprint.yaml")
	data, err := fs.ReadFile(l.fsys, p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("%s: name/version say %s@%s", p, m.Name, m.Version)
	}
	for _, q := range m.Questions {
		if err := q.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if q.When != "" {
			if err := generator.CheckExpr(q.When); err != nil {
				return nil, fmt.Errorf("%s: question %q: when: %w", p, q.Key, err)
			}
		}
	}
	for _, r := range m.Files {
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	for _, s := range m.Secrets {
		if s.Name == "" || strings.ContainsAny(s.Name, "/\\ ") {
			return nil, fmt.Errorf("%s: secret name %q", p, s.Name)
		}
		if s.When != "" {
			if err := generator.CheckExpr(s.When); err != nil {
				return nil, fmt.Errorf("%s: secret %q: when: %w", p, s.Name, err)
			}
		}
	}
	return &m, nil
}

const maxExtends = 64

func (l Library) resolve(name, version string, depth int) (*Blueprint, error) {
	if depth > maxExtends {
		return nil, fmt.Errorf("blueprint %s@%s: `extends` chain too long or circular", name, version)
	}
	m, err := l.ReadManifest(name, version)
	if err != nil {
		return nil, err
	}
	own, err := l.ownFiles(name, version)
	if err != nil {
		return nil, err
	}
	if own, err = l.withComponents(name, version, own); err != nil {
		return nil, err
	}
	bp := &Blueprint{Name: name, Version: version, Description: m.Description, Migrations: m.Migrations}
	if m.Extends == "" {
		if len(m.Remove) > 0 || len(m.RemoveQuestions) > 0 {
			return nil, fmt.Errorf("blueprint %s@%s: remove needs extends", name, version)
		}
		bp.Questions, bp.Secrets, bp.Rules = m.Questions, m.Secrets, m.Files
		bp.Files = own
		bp.History = []Release{{Version: version, Changes: m.Changelog}}
		if m.Previous != "" {
			older, err := l.history(name, m.Previous, version, depth+1)
			if err != nil {
				return nil, err
			}
			bp.History = append(bp.History, older...)
		}
		return bp, nil
	}
	if CompareSemver(m.Extends, version) >= 0 {
		return nil, fmt.Errorf("blueprint %s@%s extends %s, which is not older", name, version, m.Extends)
	}
	parent, err := l.resolve(name, m.Extends, depth+1)
	if err != nil {
		return nil, fmt.Errorf("blueprint %s@%s extends: %w", name, version, err)
	}
	bp.Questions, err = mergeQuestions(parent.Questions, m.Questions, m.RemoveQuestions)
	if err != nil {
		return nil, fmt.Errorf("blueprint %s@%s: %w", name, version, err)
	}
	bp.Secrets = mergeSecrets(parent.Secrets, m.Secrets)
	bp.Rules = append(slices.Clone(parent.Rules), m.Files...)
	tree := fstest.MapFS{}
	err = eachFile(parent.Files, func(p string) error {
		for _, g := range m.Remove {
			if generator.Match(g, p) {
				return nil
			}
		}
		return copyInto(tree, parent.Files, p)
	})
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(own, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return copyInto(tree, own, p)
	})
	if err != nil {
		return nil, err
	}
	bp.Files = tree
	bp.History = append([]Release{{Version: version, Changes: m.Changelog}}, parent.History...)
	return bp, nil
}

func (l Library) ownFiles(name, version string) (fs.FS, error) {
	dir := path.Join(name, version, "files")
	if _, err := fs.Stat(l.fsys, dir); err != nil {
		return fstest.MapFS{}, nil
	}
	return fs.Sub(l.fsys, dir)
}

// eachFile calls fn for every file of fsys. A resolved tree (a MapFS) is ranged over directly:
// fs.WalkDir lists the whole map once per folder. With copyInto's sharing, resolving webapp's
// five-version chain takes half the CPU it did (about 4 ms instead of 8.5).
func eachFile(fsys fs.FS, fn func(p string) error) error {
	if m, ok := fsys.(fstest.MapFS); ok {
		for _, p := range slices.Sorted(maps.Keys(m)) {
			if m[p].Mode.IsDir() {
				continue
			}
			if err := fn(p); err != nil {
				return err
			}
		}
		return nil
	}
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return fn(p)
	})
}

// copyInto puts src's file p into tree. A file of another resolved tree is shared, not
// copied: resolved trees are only read, so every version of the chain can point at one copy.
func copyInto(tree fstest.MapFS, src fs.FS, p string) error {
	if m, ok := src.(fstest.MapFS); ok {
		if f, ok := m[p]; ok && !f.Mode.IsDir() {
			tree[p] = f
			return nil
		}
	}
	data, err := fs.ReadFile(src, p)
	if err != nil {
		return err
	}
	info, err := fs.Stat(src, p)
	if err != nil {
		return err
	}
	tree[p] = &fstest.MapFile{Data: data, Mode: info.Mode().Perm()}
	return nil
}

// mergeQuestions replaces parent questions by key in place, appends new ones and drops removed ones.
func mergeQuestions(parent, own []prompts.Question, remove []string) ([]prompts.Question, error) {
	out := slices.Clone(parent)
	for _, q := range own {
		i := slices.IndexFunc(out, func(p prompts.Question) bool { return p.Key == q.Key })
		if i >= 0 {
			out[i] = q
		} else {
			out = append(out, q)
		}
	}
	for _, k := range remove {
		i := slices.IndexFunc(out, func(p prompts.Question) bool { return p.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("remove_questions: no question %q", k)
		}
		out = slices.Delete(out, i, i+1)
	}
	return out, nil
}

func mergeSecrets(parent, own []Secret) []Secret {
	out := slices.Clone(parent)
	for _, s := range own {
		i := slices.IndexFunc(out, func(p Secret) bool { return p.Name == s.Name })
		if i >= 0 {
			out[i] = s
		} else {
			out = append(out, s)
		}
	}
	return out
}

// history reads the changelogs of version and the versions before it, manifests only.
func (l Library) history(name, version, after string, depth int) ([]Release, error) {
	if depth > maxExtends {
		return nil, fmt.Errorf("blueprint %s@%s: `extends`/`previous` chain too long or circular", name, version)
	}
	if CompareSemver(version, after) >= 0 {
		return nil, fmt.Errorf("blueprint %s@%s follows %s, which is not older", name, after, version)
	}
	m, err := l.ReadManifest(name, version)
	if err != nil {
		return nil, fmt.Errorf("blueprint %s@%s: previous: %w", name, after, err)
	}
	out := []Release{{Version: version, Changes: m.Changelog}}
	next := m.Extends
	if next == "" {
		next = m.Previous
	}
	if next == "" {
		return out, nil
	}
	older, err := l.history(name, next, version, depth+1)
	return append(out, older...), err
}
