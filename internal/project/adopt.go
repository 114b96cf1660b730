package project

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/prompts"
)

// AdoptComponent is the component a blueprint version must have for `opsready adopt`.
const AdoptComponent = "adopt"

// AdoptOptions are the inputs of Adopt. Detected and Fixed come from internal/adopt; the
// rest are as for Create.
type AdoptOptions struct {
	Dir      string
	Detected *lock.Adopt
	// Fixed are answers adopt derived from the compose model (db, cache, name, …); a flag that
	// contradicts one is refused.
	Fixed       map[string]string
	Flags       map[string]string
	Set         map[string]string
	AnswersFile string
	Defaults    bool
	Ask         prompts.Asker
	DryRun      bool
	Version     string // opsready's, recorded in the lock file
	// BlueprintVersion is the webapp version to adopt with; empty for the newest.
	BlueprintVersion string
	Library          *blueprints.Library
	Rand             io.Reader
	// Local are files only this machine has, written once and never locked: a password adopt
	// found written literally in a compose file, copied to secrets/ (mode 0600).
	Local     generator.Files
	OnRecover func(Recovery)
}

// Adopted is what Adopt did (or, with DryRun, would do).
type Adopted struct {
	Dir       string         `json:"dir"`
	Blueprint string         `json:"blueprint"`
	Version   string         `json:"version"`
	Answers   map[string]any `json:"answers"`
	Files     []PlannedFile  `json:"files"`
	// Renamed maps a file the blueprint generates to the free name it was written to, because
	// the team has a file of that name.
	Renamed map[string]string `json:"renamed,omitempty"`
	ToFill  []string          `json:"secrets_to_fill,omitempty"`
	DryRun  bool              `json:"dry_run"`
}

// ErrAlreadyOpsready is returned when adopt finds a lock file: the project is ours already.
var ErrAlreadyOpsready = errors.New("already an opsready project")

// Adopt writes the ops layer of the newest blueprint around an existing compose project:
// only new files, each under a free name, so nothing of the team's is replaced. The write is
// one journaled change under the project's write lock, like `new` and `upgrade`.
func Adopt(opts AdoptOptions) (*Adopted, error) {
	lib := blueprints.Embedded()
	if opts.Library != nil {
		lib = *opts.Library
	}
	bp, err := lib.Open("webapp", opts.BlueprintVersion)
	if err != nil {
		return nil, InputError{fmt.Errorf("blueprint webapp %s: %w", opts.BlueprintVersion, err)}
	}
	if !hasComponent(bp, AdoptComponent) {
		return nil, fmt.Errorf("blueprint %s@%s has no %s component: it cannot adopt a project", bp.Name, bp.Version, AdoptComponent)
	}
	if opts.Detected == nil {
		return nil, errors.New("adopt: nothing detected")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	wl, _, err := lockAndRecover(dir, opts.OnRecover)
	if err != nil {
		return nil, err
	}
	defer func() { _ = wl.unlock() }()
	if _, err := os.Lstat(filepath.Join(dir, lock.FileName)); err == nil {
		return nil, InputError{fmt.Errorf("%w: %s has %s; use `opsready upgrade`", ErrAlreadyOpsready, dir, lock.FileName)}
	}
	flags := map[string]string{}
	for k, v := range opts.Flags {
		flags[k] = v
	}
	for k, v := range opts.Set {
		flags[k] = v
	}
	for k, v := range opts.Fixed {
		if _, err := prompts.Find(bp.Questions, k); err != nil {
			continue // an answer an older version does not ask (db_replica before 1.6.0)
		}
		if u, ok := flags[k]; ok && u != v {
			q, _ := prompts.Find(bp.Questions, k)
			return nil, InputError{fmt.Errorf("`--%s %s`: adopt found %q in the compose files and generates for that", q.FlagName(), u, v)}
		}
		flags[k] = v
	}
	answers, err := ResolveAnswers(bp, AnswerInputs{
		Flags: flags, AnswersFile: opts.AnswersFile, Defaults: opts.Defaults, Ask: opts.Ask,
		Context: map[string]any{"_dir": filepath.Base(dir)},
	})
	if err != nil {
		return nil, err
	}
	ad := *opts.Detected
	ad.Renames = nil
	files, err := renderAdopted(bp, answers, opts.Version, &ad)
	if err != nil {
		return nil, err
	}
	// A file of the team's where the blueprint puts one: ours goes beside it, under a name
	// recorded in the lock so that upgrade keeps writing there.
	renames := map[string]string{}
	taken := map[string]bool{}
	for _, f := range files {
		taken[f.Path] = true
	}
	for _, f := range files {
		if f.Path == lock.FileName || !onDisk(dir, f.Path) {
			continue
		}
		name := freeAdoptName(dir, f.Path, taken)
		taken[name] = true
		renames[f.Path] = name
	}
	if len(renames) > 0 {
		ad.Renames = renames
		if files, err = renderAdopted(bp, answers, opts.Version, &ad); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if err := clashFree(dir, f.Path); err != nil {
			return nil, err
		}
	}
	data := adoptData(bp, answers, &ad)
	extra, err := localFiles(bp, data, files, dir, opts.Rand)
	if err != nil {
		return nil, err
	}
	for _, f := range opts.Local {
		if !onDisk(dir, f.Path) && !hasFile(extra, f.Path) {
			extra = append(extra, f)
		}
	}
	for _, p := range []string{"secrets/.gitignore", "var/.gitignore"} {
		if !onDisk(dir, p) && !hasFile(extra, p) && !hasFile(files, p) {
			// Secrets and what the jobs write stay out of git whatever the team's .gitignore says.
			extra = append(extra, generator.File{Path: p, Data: []byte("# Written by opsready adopt: nothing here is committed.\n*\n!.gitignore\n"), Mode: 0o644})
		}
	}
	all := append(append(generator.Files{}, files...), extra...)
	if err := all.Sort(); err != nil {
		return nil, err
	}
	res := &Adopted{Dir: dir, Blueprint: bp.Name, Version: bp.Version, Answers: answers, DryRun: opts.DryRun, Renamed: renames}
	for _, s := range bp.Secrets {
		if f, ok := extra.Get("secrets/" + s.Name); ok && s.External && len(f.Data) == 0 {
			res.ToFill = append(res.ToFill, f.Path)
		}
	}
	for _, f := range all {
		pf := PlannedFile{Path: f.Path, Policy: f.Policy, Size: len(f.Data), Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Action: "create"}
		if len(f.Sources) > 0 {
			pf.Sources = lib.Origins(bp, f.Sources)
		}
		res.Files = append(res.Files, pf)
	}
	if opts.DryRun {
		return res, nil
	}
	tx, err := generator.ApplyChange(dir, generator.Change{Files: all})
	if err != nil {
		return nil, err
	}
	return res, tx.Done()
}

// renderAdopted renders a version for an adopted project: the template data carry `_adopt`,
// the lock file records it, and files the team had first are written under their free names.
// A nil ad is a project opsready generated (RenderProject).
func renderAdopted(bp *blueprints.Blueprint, answers map[string]any, opsreadyVersion string, ad *lock.Adopt) (generator.Files, error) {
	data := TemplateData(bp, answers)
	if ad != nil {
		data = adoptData(bp, answers, ad)
	}
	files, err := generator.Render(bp.Files, bp.Rules, data)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		if f.Path == lock.FileName || strings.HasPrefix(f.Path, "secrets/") {
			return nil, fmt.Errorf("blueprint %s@%s renders %s, which opsready writes itself", bp.Name, bp.Version, f.Path)
		}
		if ad == nil {
			continue
		}
		if to, ok := ad.Renames[f.Path]; ok {
			files[i].Path = to
		}
	}
	lk := lock.New(bp.Name, bp.Version, opsreadyVersion, answers, files)
	lk.Adopt = ad
	lockData, err := lk.Marshal()
	if err != nil {
		return nil, err
	}
	files = append(files, generator.File{Path: lock.FileName, Data: lockData, Mode: 0o644})
	return files, files.Sort()
}

func adoptData(bp *blueprints.Blueprint, answers map[string]any, ad *lock.Adopt) map[string]any {
	data := TemplateData(bp, answers)
	data["_adopt"] = ad.Template()
	return data
}

func hasFile(fs generator.Files, p string) bool {
	_, ok := fs.Get(p)
	return ok
}

func hasComponent(bp *blueprints.Blueprint, name string) bool {
	for _, c := range bp.Components {
		if c.Name == name {
			return true
		}
	}
	return false
}

func onDisk(dir, p string) bool {
	_, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
	return err == nil
}

// clashFree refuses a path whose parent is a file of the team's (a folder cannot be made
// there); the folder-side clashes are renamed before this.
func clashFree(dir, p string) error {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		a := strings.Join(parts[:i], "/")
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(a)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("adopt: %s: %w", a, err)
		}
		if !fi.IsDir() {
			return InputError{fmt.Errorf("adopt needs a folder %s for %s, and %s is a file of yours: move it aside and run adopt again", a, p, a)}
		}
	}
	return nil
}

// freeAdoptName is p with ".opsready" before its extension (compose.prod.opsready.yaml,
// Makefile.opsready), numbered when that is taken too.
func freeAdoptName(dir, p string, taken map[string]bool) string {
	d, base := path.Split(p)
	ext := path.Ext(base)
	if ext == base { // .gitignore, Makefile
		ext = ""
	}
	stem := strings.TrimSuffix(base, ext)
	for i := 1; ; i++ {
		tag := ".opsready"
		if i > 1 {
			tag += fmt.Sprint("-", i)
		}
		name := d + stem + tag + ext
		if !taken[name] && !onDisk(dir, name) {
			return name
		}
	}
}

// refuseAdoptOnly rejects answers only `opsready adopt` may give (an option marked
// adopt_only), naming the flag and the values `new` allows.
func refuseAdoptOnly(bp *blueprints.Blueprint, answers map[string]any) error {
	for _, q := range bp.Questions {
		v, ok := answers[q.Key].(string)
		if !ok {
			continue
		}
		var allowed []string
		bad := false
		for _, o := range q.Options {
			if o.AdoptOnly {
				bad = bad || o.Value == v
				continue
			}
			allowed = append(allowed, o.Value)
		}
		if bad {
			sort.Strings(allowed)
			return InputError{fmt.Errorf("`--%s %s` is only for `opsready adopt` (a project it found without one); `new` allows %s", q.FlagName(), v, strings.Join(allowed, ", "))}
		}
	}
	return nil
}
