package project

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/internal/merge"
	"github.com/opsready/opsready/prompts"
)

// ErrDirty is returned when the project has uncommitted changes and `--force` was not given.
var ErrDirty = errors.New("the project has uncommitted changes")

// Actions an upgrade takes on a file.
const (
	ActionCreated     = "created"      // new file written
	ActionUpdated     = "updated"      // unmodified by the team, replaced by the new render
	ActionMerged      = "merged"       // both changed, merged without conflict
	ActionConflict    = "conflict"     // both changed the same lines: markers in the file
	ActionDeleted     = "deleted"      // gone from the blueprint and unmodified: removed
	ActionKept        = "kept"         // gone from the blueprint but modified by the team: kept
	ActionLeftDeleted = "left-deleted" // deleted by the team: stays deleted
	ActionUnchanged   = "unchanged"    // nothing to do
)

// UpgradeOptions are the inputs of Upgrade.
type UpgradeOptions struct {
	Dir         string
	To          string            // target version; empty means the newest
	Set         map[string]string // `--set key=value`
	AnswersFile string
	Ask         prompts.Asker // nil when not interactive
	DryRun      bool
	Force       bool // skip the clean-work-tree guard
	Version     string
	Library     *blueprints.Library
	// OnRecover hears of an interrupted earlier write that was finished or undone first.
	OnRecover func(Recovery)
}

// FileChange is one line of the plan and report.
type FileChange struct {
	Path   string `json:"path"`
	Action string `json:"action"`
	Policy string `json:"policy,omitempty"`
	From   string `json:"renamed_from,omitempty"`
	Note   string `json:"note,omitempty"`
	Beside string `json:"new_version_at,omitempty"` // where a binary file's new version was written
	Diff   string `json:"diff,omitempty"`
}

// Upgraded is what Upgrade did (or, with DryRun, would do).
type Upgraded struct {
	Dir         string         `json:"dir"`
	Blueprint   string         `json:"blueprint"`
	From        string         `json:"from"`
	To          string         `json:"to"`
	Answers     map[string]any `json:"answers"`
	Changes     []FileChange   `json:"files"`
	Conflicts   int            `json:"conflicts"`
	DryRun      bool           `json:"dry_run"`
	NothingToDo bool           `json:"nothing_to_do"`
}

// Count returns how many files got the given action.
func (u *Upgraded) Count(action string) int {
	n := 0
	for _, c := range u.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// side is one version of a file: present or not, its content and mode.
type side struct {
	ok   bool
	data []byte
	mode fs.FileMode
}

func (s side) equal(o side) bool { return s.ok == o.ok && bytes.Equal(s.data, o.data) }

// Upgrade brings a project to a newer blueprint version and/or new answers: per file, a
// three-way merge of the old render (base), the team's tree (ours) and the new render (theirs).
func Upgrade(opts UpgradeOptions) (*Upgraded, error) {
	lib := blueprints.Embedded()
	if opts.Library != nil {
		lib = *opts.Library
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// One opsready at a time, from reading the tree to writing it (a plan made from a tree
	// another run is changing is wrong); an interrupted earlier write is finished first.
	wl, err := lockExisting(dir, opts.OnRecover)
	if err != nil {
		return nil, err
	}
	defer func() { _ = wl.unlock() }()
	lk, err := lock.Read(dir)
	if err != nil {
		return nil, err
	}
	if !opts.Force {
		if err := checkClean(dir); err != nil {
			return nil, err
		}
	}
	newBP, err := lib.Open(lk.Blueprint, opts.To)
	if err != nil {
		return nil, InputError{fmt.Errorf("`--to`: %w", err)}
	}
	if blueprints.CompareSemver(newBP.Version, lk.Version) < 0 {
		return nil, InputError{fmt.Errorf("`--to %s` is older than the project's %s %s: downgrades are not supported", newBP.Version, lk.Blueprint, lk.Version)}
	}
	migrations, err := migrationsBetween(lib, lk.Blueprint, lk.Version, newBP.Version)
	if err != nil {
		return nil, err
	}

	// base: the old version rendered with the stored answers, where it can be reproduced.
	base := map[string]side{}
	noBase := map[string]bool{}
	oldBP, oldErr := lib.Open(lk.Blueprint, lk.Version)
	if oldErr == nil {
		oldAnswers, err := ResolveAnswers(oldBP, AnswerInputs{Stored: lk.Answers, Defaults: true})
		if err != nil {
			return nil, fmt.Errorf("re-render %s %s with the stored answers: %w", lk.Blueprint, lk.Version, err)
		}
		files, err := renderAdopted(oldBP, oldAnswers, lk.Opsready, lk.Adopt)
		if err != nil {
			return nil, fmt.Errorf("re-render %s %s: %w", lk.Blueprint, lk.Version, err)
		}
		for _, f := range files {
			if f.Path == lock.FileName {
				continue
			}
			if e, ok := lk.Files[f.Path]; !ok || e.SHA256 != f.SHA256() {
				noBase[f.Path] = true // the lock says otherwise: never trust this base
				continue
			}
			base[f.Path] = side{true, f.Data, f.Mode}
		}
	}
	for p := range lk.Files {
		if _, ok := base[p]; !ok {
			noBase[p] = true
		}
	}

	// Migrations: renames apply to the old answers and to base and ours before merging.
	stored := map[string]any{}
	for k, v := range lk.Answers {
		stored[k] = v
	}
	renamed := map[string]string{} // new path -> old path
	policies := map[string]string{}
	for p, e := range lk.Files {
		policies[p] = e.Policy
	}
	for _, m := range migrations {
		if r := m.RenameAnswer; r != nil {
			if v, ok := stored[r.From]; ok {
				delete(stored, r.From)
				stored[r.To] = v
			}
		}
		if r := m.RenameFile; r != nil {
			if b, ok := base[r.From]; ok {
				delete(base, r.From)
				base[r.To] = b
			}
			if noBase[r.From] {
				delete(noBase, r.From)
				noBase[r.To] = true
			}
			if p, ok := policies[r.From]; ok {
				delete(policies, r.From)
				policies[r.To] = p
			}
			from := r.From
			if orig, ok := renamed[r.From]; ok {
				from = orig
				delete(renamed, r.From)
			}
			renamed[r.To] = from
		}
	}

	newAnswers, err := ResolveAnswers(newBP, AnswerInputs{
		Set: opts.Set, AnswersFile: opts.AnswersFile, Stored: stored, Defaults: true, Ask: opts.Ask,
		Context: map[string]any{"_dir": filepath.Base(dir)},
	})
	if err != nil {
		return nil, err
	}
	theirsFiles, err := renderAdopted(newBP, newAnswers, opts.Version, lk.Adopt)
	if err != nil {
		return nil, err
	}
	theirs := map[string]side{}
	theirPolicy := map[string]string{}
	for _, f := range theirsFiles {
		if f.Path != lock.FileName {
			theirs[f.Path] = side{true, f.Data, f.Mode}
			theirPolicy[f.Path] = f.Policy
		}
	}

	res := &Upgraded{Dir: dir, Blueprint: lk.Blueprint, From: lk.Version, To: newBP.Version, Answers: newAnswers, DryRun: opts.DryRun}
	baseLabel, theirLabel := lk.Blueprint+" "+lk.Version, newBP.Name+" "+newBP.Version
	if lk.Version == newBP.Version {
		baseLabel += " with the old answers"
		theirLabel += " with the new answers"
	}
	labels := merge.Labels{Ours: "ours (your project)", Base: "base (" + baseLabel + ")", Theirs: "theirs (" + theirLabel + ")"}

	paths := map[string]bool{}
	for p := range base {
		paths[p] = true
	}
	for p := range theirs {
		paths[p] = true
	}
	for p := range noBase {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)

	pl, err := planFiles(planInput{
		dir: dir, paths: sorted, base: base, theirs: theirs, renamed: renamed,
		policies: policies, theirPolicy: theirPolicy, labels: labels, dryRun: opts.DryRun,
	})
	if err != nil {
		return nil, err
	}
	writes, removes, unmerged := pl.writes, pl.removes, pl.unmerged
	res.Changes, res.Conflicts = pl.changes, pl.conflicts

	// Secrets of components the new answers add (a cache, say) are created, never replaced.
	newData := TemplateData(newBP, newAnswers)
	if lk.Adopt != nil {
		newData = adoptData(newBP, newAnswers, lk.Adopt)
	}
	local, err := localFiles(newBP, newData, theirsFiles, dir, nil)
	if err != nil {
		return nil, err
	}
	for _, f := range local {
		if strings.HasPrefix(f.Path, "secrets/") || f.Path == "secrets" {
			writes = append(writes, f)
			if !f.Mode.IsDir() {
				note := "new random secret, git-ignored"
				if len(f.Data) == 0 {
					note = "empty: fill in this credential, git-ignored"
				}
				res.Changes = append(res.Changes, FileChange{Path: f.Path, Action: ActionCreated, Note: note})
			}
		}
	}

	// A file that could not be placed (a team file or folder in its way) is left out of the
	// lock, so that the next upgrade creates it instead of taking it for deleted by the team.
	newLock := lock.New(newBP.Name, newBP.Version, opts.Version, newAnswers, pl.lockable(theirsFiles))
	sameLock := lk.Version == newBP.Version && reflect.DeepEqual(normalize(lk.Answers), normalize(newAnswers)) && reflect.DeepEqual(lk.Files, newLock.Files)
	if len(writes) == 0 && len(removes) == 0 && sameLock {
		res.NothingToDo = true
		return res, nil
	}
	if opts.DryRun {
		return res, nil
	}
	data, err := newLock.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writes.Sort(); err != nil {
		return nil, err
	}
	if err := writeUpgrade(dir, writes, removes, unmerged, data); err != nil {
		return res, err
	}
	return res, nil
}

// normalize round-trips answers through their printed form so that stored YAML values
// ([]any, int) compare equal to resolved ones ([]string, int).
func normalize(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if l, ok := v.([]any); ok {
			parts := make([]string, len(l))
			for i, x := range l {
				parts[i] = fmt.Sprint(x)
			}
			out[k] = strings.Join(parts, ",")
			continue
		}
		out[k] = prompts.Format(v)
	}
	return out
}

// migrationsBetween collects the migrations of every version after from, up to and including to.
func migrationsBetween(lib blueprints.Library, name, from, to string) ([]blueprints.Migration, error) {
	vs, err := lib.Versions(name)
	if err != nil {
		return nil, err
	}
	var out []blueprints.Migration
	for _, v := range vs {
		if blueprints.CompareSemver(v, from) <= 0 || blueprints.CompareSemver(v, to) > 0 {
			continue
		}
		m, err := lib.ReadManifest(name, v)
		if err != nil {
			return nil, err
		}
		out = append(out, m.Migrations...)
	}
	return out, nil
}

// checkClean refuses a project with uncommitted changes: an upgrade must be easy to review
// and undo with git.
func checkClean(dir string) error {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return InputError{fmt.Errorf("%s is not a git work tree (%v): commit the project to git first, or pass `--force`", dir, err)}
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	st, err := wt.Status()
	if err != nil {
		return fmt.Errorf("git status: %w", err)
	}
	delete(st, WriteLockName) // held by this very run
	if st.IsClean() {
		return nil
	}
	var dirty []string
	for p, s := range st {
		if s.Worktree != git.Unmodified || s.Staging != git.Unmodified {
			dirty = append(dirty, p)
		}
	}
	sort.Strings(dirty)
	more := ""
	if len(dirty) > 5 {
		more = fmt.Sprintf(" and %d more", len(dirty)-5)
		dirty = dirty[:5]
	}
	return InputError{fmt.Errorf("%w: %s%s; commit or stash them first, or pass `--force`", ErrDirty, strings.Join(dirty, ", "), more)}
}
