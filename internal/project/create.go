package project

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/prompts"
)

// ErrTargetNotEmpty is returned when `new` would write into a folder that holds files.
var ErrTargetNotEmpty = errors.New("target folder is not empty")

// CreateOptions are the inputs of Create.
type CreateOptions struct {
	Dir         string
	Blueprint   string            // NAME[@VERSION]; empty means webapp
	Flags       map[string]string // question key -> text, from per-question flags
	Set         map[string]string // question key -> text, from `--set` (same rank as flags)
	AnswersFile string            // path of a YAML answers file, or ""
	Defaults    bool              // take defaults for unanswered questions
	Ask         prompts.Asker     // nil when not interactive
	Force       bool              // write into a non-empty folder
	DryRun      bool              // render and plan, write nothing
	Git         bool              // init a repository and commit
	Version     string            // opsready's version, recorded in the lock file
	Library     *blueprints.Library
	Rand        io.Reader // source of secrets; crypto/rand when nil
	// OnRecover hears of an interrupted earlier write that was finished or undone first.
	OnRecover func(Recovery)
}

// PlannedFile is one entry of the plan `new` prints.
type PlannedFile struct {
	Path   string `json:"path"`
	Policy string `json:"policy,omitempty"`
	Size   int    `json:"size"`
	Mode   string `json:"mode"`
	Action string `json:"action"` // create, overwrite, keep (existing secret)
	// Sources are the library files that produced it: its template, then the partials and
	// slot fragments it used, each with its version folder (webapp/1.4.0/components/…).
	Sources []string `json:"sources,omitempty"`
}

// Created is what Create did (or, with DryRun, would do).
type Created struct {
	Dir       string         `json:"dir"`
	Blueprint string         `json:"blueprint"`
	Version   string         `json:"version"`
	Answers   map[string]any `json:"answers"`
	Files     []PlannedFile  `json:"files"`
	DryRun    bool           `json:"dry_run"`
	Commit    string         `json:"commit,omitempty"`
	// ToFill lists secret files created empty: credentials only the team can get.
	ToFill    []string           `json:"secrets_to_fill,omitempty"`
	Questions []prompts.Question `json:"-"`
}

// Create generates a project. Nothing is written until every file rendered; a failure
// leaves no files behind.
func Create(opts CreateOptions) (*Created, error) {
	lib := blueprints.Embedded()
	if opts.Library != nil {
		lib = *opts.Library
	}
	ref := opts.Blueprint
	if ref == "" {
		ref = "webapp"
	}
	name, version := blueprints.ParseRef(ref)
	bp, err := lib.Open(name, version)
	if err != nil {
		return nil, InputError{fmt.Errorf("`--blueprint`: %w", err)}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// An existing folder is locked from the start, so that the plan cannot go stale, and an
	// interrupted write in it is finished or undone before it is looked at.
	var wl *writeLock
	defer func() { _ = wl.unlock() }()
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if wl, _, err = lockAndRecover(dir, opts.OnRecover); err != nil {
			return nil, err
		}
	}
	existed, empty, err := inspectTarget(dir, opts.Force)
	if err != nil {
		return nil, err
	}
	answers, err := ResolveAnswers(bp, AnswerInputs{
		Flags: opts.Flags, Set: opts.Set, AnswersFile: opts.AnswersFile,
		Defaults: opts.Defaults, Ask: opts.Ask,
		Context: map[string]any{"_dir": filepath.Base(dir)},
	})
	if err != nil {
		return nil, err
	}
	if err := refuseAdoptOnly(bp, answers); err != nil {
		return nil, err
	}
	files, err := RenderProject(bp, answers, opts.Version)
	if err != nil {
		return nil, err
	}
	extra, err := localFiles(bp, TemplateData(bp, answers), files, dir, opts.Rand)
	if err != nil {
		return nil, err
	}
	all := append(append(generator.Files{}, files...), extra...)
	if err := all.Sort(); err != nil {
		return nil, err
	}
	res := &Created{Dir: dir, Blueprint: bp.Name, Version: bp.Version, Answers: answers, DryRun: opts.DryRun, Questions: bp.Questions}
	for _, s := range bp.Secrets {
		if f, ok := extra.Get("secrets/" + s.Name); ok && s.External && len(f.Data) == 0 {
			res.ToFill = append(res.ToFill, f.Path)
		}
	}
	for _, f := range all {
		action := "create"
		// In a folder that was missing or empty (but for our lock) there is nothing to look up.
		if existed && (!empty || f.Path == WriteLockName) {
			if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path))); err == nil {
				action = "overwrite"
			}
		}
		pf := PlannedFile{Path: f.Path, Policy: f.Policy, Size: len(f.Data), Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Action: action}
		if len(f.Sources) > 0 {
			pf.Sources = lib.Origins(bp, f.Sources)
		}
		res.Files = append(res.Files, pf)
	}
	if opts.DryRun {
		return res, nil
	}
	return res, writeNew(dir, wl, all, opts, res)
}

// writeNew writes the new project under its write lock (taken here when the folder did not
// exist before) and commits it; the commit is a step of the write's journal, so a killed
// `new` is completed or undone by the next command.
func writeNew(dir string, wl *writeLock, all generator.Files, opts CreateOptions, res *Created) (err error) {
	createdRoot := false
	if wl == nil {
		var removeRoot func()
		removeRoot, createdRoot, err = mkdirRoot(dir)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil && createdRoot {
				removeRoot() // after the unlock below has removed the lock file
			}
		}()
		if wl, _, err = lockAndRecover(dir, opts.OnRecover); err != nil {
			return err
		}
		wl.record(createdRoot)
		defer func() {
			if uerr := wl.unlock(); err == nil {
				err = uerr
			}
		}()
		// Another `new` may have filled the folder since it was planned.
		if _, err = checkTarget(dir, opts.Force); err != nil {
			return err
		}
	}
	message := fmt.Sprintf("Generate %s %s with opsready", res.Blueprint, res.Version)
	var hooks []generator.Hook
	gitInit := false
	if opts.Git {
		_, statErr := os.Lstat(filepath.Join(dir, ".git"))
		gitInit = errors.Is(statErr, fs.ErrNotExist)
		hooks = append(hooks, commitHook(message, gitInit))
	}
	fresh := true
	for _, f := range res.Files {
		fresh = fresh && f.Action == "create"
	}
	tx, err := generator.ApplyChange(dir, generator.Change{Files: all, Hooks: hooks, CreatedRoot: createdRoot, Fresh: fresh})
	if err != nil {
		return err
	}
	if opts.Git {
		tx.Checkpoint("commit")
		hash, err := commitWritten(dir, message, all)
		if err != nil {
			if gitInit {
				_ = os.RemoveAll(filepath.Join(dir, ".git")) // a half-made repository of ours
			}
			if uerr := tx.Undo(); uerr != nil {
				return fmt.Errorf("git: %w (and removing the written files failed: %v)", err, uerr)
			}
			return fmt.Errorf("git: %w (nothing was left behind; try `--no-git`)", err)
		}
		res.Commit = hash
		tx.Checkpoint("committed")
	}
	return tx.Done()
}

// checkTarget refuses a non-empty folder unless forced, and reports whether dir existed.
func checkTarget(dir string, force bool) (bool, error) {
	existed, _, err := inspectTarget(dir, force)
	return existed, err
}

// inspectTarget is checkTarget that also reports whether dir holds nothing but our lock.
func inspectTarget(dir string, force bool) (existed, empty bool, err error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, true, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("target %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return false, false, fmt.Errorf("target %s is a file, not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, false, fmt.Errorf("target %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		if e.Name() != WriteLockName { // ours, held while `new` looks
			n++
		}
	}
	if n > 0 && !force {
		return true, false, fmt.Errorf("%w: %s has %d entries; choose an empty or new folder, or pass `--force` to write over it", ErrTargetNotEmpty, dir, n)
	}
	return true, n == 0, nil
}

// RenderProject renders a blueprint version for the answers and adds the lock file.
func RenderProject(bp *blueprints.Blueprint, answers map[string]any, opsreadyVersion string) (generator.Files, error) {
	return renderAdopted(bp, answers, opsreadyVersion, nil)
}

// TemplateData is what templates see: the answers plus _blueprint, _version and _options.
func TemplateData(bp *blueprints.Blueprint, answers map[string]any) map[string]any {
	data := make(map[string]any, len(answers)+2)
	for k, v := range answers {
		data[k] = v
	}
	data["_blueprint"] = bp.Name
	data["_version"] = bp.Version
	// What `opsready adopt` detected (lock.Adopt.Template); nil in a project opsready generated.
	data["_adopt"] = nil
	// The values every select and multiselect question allows, so a document can list all the
	// stores the blueprint supports without naming them (a new store is then one option).
	options := map[string]any{}
	for _, q := range bp.Questions {
		if q.Type == "select" || q.Type == "multiselect" {
			vs := make([]any, 0, len(q.Options))
			for _, o := range q.Options {
				vs = append(vs, o.Value)
			}
			options[q.Key] = vs
		}
	}
	data["_options"] = options
	return data
}

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// localFiles are the files that are the team's alone: secrets (random, in a folder of mode
// 0700) and .env
// (from .env.example). They are git-ignored, never locked, and never overwritten.
// data is the template data the secrets' conditions see (TemplateData, plus `_adopt` for adopt).
func localFiles(bp *blueprints.Blueprint, data map[string]any, files generator.Files, dir string, rnd io.Reader) (generator.Files, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
		return err == nil
	}
	var out generator.Files
	names := []string{}
	secretsDir := false
	for _, s := range bp.Secrets {
		if s.When != "" {
			ok, err := generator.EvalBool(s.When, data)
			if err != nil {
				return nil, fmt.Errorf("secret %q: %w", s.Name, err)
			}
			if !ok {
				continue
			}
		}
		names = append(names, s.Name)
		p := "secrets/" + s.Name
		if exists(p) {
			continue
		}
		if s.External {
			out = append(out, generator.File{Path: p, Data: []byte{}, Mode: 0o644})
			continue
		}
		n := s.Length
		if n == 0 {
			n = 32
		}
		if !secretsDir && !exists("secrets") {
			// Only the owner may enter the folder. The files are world-readable inside it because
			// compose bind-mounts file secrets with their host mode, and the backends run as
			// non-root users that must read them.
			out = append(out, generator.File{Path: "secrets", Mode: fs.ModeDir | 0o700})
			secretsDir = true
		}
		b := make([]byte, n)
		for i := range b {
			k, err := rand.Int(rnd, big.NewInt(int64(len(secretAlphabet))))
			if err != nil {
				return nil, fmt.Errorf("generate secret %q: %w", s.Name, err)
			}
			b[i] = secretAlphabet[k.Int64()]
		}
		out = append(out, generator.File{Path: p, Data: b, Mode: 0o644})
	}
	sort.Strings(names)
	if ex, ok := files.Get(".env.example"); ok && !exists(".env") {
		out = append(out, generator.File{Path: ".env", Data: ex.Data, Mode: 0o600})
	}
	return out, nil
}

// FileSources renders a blueprint version for its defaults (and set, `--set` values) and
// lists every generated file with the library files that produced it.
func FileSources(lib blueprints.Library, bp *blueprints.Blueprint, set map[string]string) ([]PlannedFile, error) {
	answers, err := ResolveAnswers(bp, AnswerInputs{Set: set, Defaults: true, Context: map[string]any{"_dir": "example"}})
	if err != nil {
		return nil, err
	}
	files, err := generator.Render(bp.Files, bp.Rules, TemplateData(bp, answers))
	if err != nil {
		return nil, err
	}
	out := make([]PlannedFile, 0, len(files))
	for _, f := range files {
		out = append(out, PlannedFile{Path: f.Path, Policy: f.Policy, Size: len(f.Data), Mode: fmt.Sprintf("%04o", f.Mode.Perm()),
			Action: "create", Sources: lib.Origins(bp, f.Sources)})
	}
	return out, nil
}
