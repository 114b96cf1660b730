package project

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
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
}

// FileChange is one line of the plan and report.
type FileChange struct {
	Path   string `json:"path"`
	Action string `json:"action"`
	Policy string `json:"policy,omitempty"`
	From   string `json:"renamed_from,omitempty"`
	Note   string `json:"note,omitempty"`
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
		files, err := RenderProject(oldBP, oldAnswers, lk.Opsready)
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
	theirsFiles, err := RenderProject(newBP, newAnswers, opts.Version)
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

	var writes generator.Files
	var removes []string
	var unmerged []unmergedFile
	for _, p := range sorted {
		oursPath := p
		if from, ok := renamed[p]; ok {
			oursPath = from
		}
		ours, err := readSide(dir, oursPath)
		if err != nil {
			return nil, err
		}
		b, t := base[p], theirs[p]
		policy := theirPolicy[p]
		if policy == "" {
			policy = policies[p]
		}
		ch := FileChange{Path: p, Policy: policy}
		if oursPath != p {
			ch.From = oursPath
		}
		var result side // what the file should hold afterwards
		switch {
		case !t.ok: // gone from the new render
			switch {
			case !ours.ok:
				ch.Action = ActionUnchanged
			case b.ok && ours.equal(b):
				ch.Action = ActionDeleted
			case policy == generator.PolicySeed:
				ch.Action, ch.Note = ActionKept, "seed file: the team owns it"
				result = ours
			default:
				ch.Action, ch.Note = ActionKept, "modified by you, no longer generated"
				result = ours
			}
		case !ours.ok && policies[p] != "":
			// It was generated before and is gone now: the team deleted it.
			if policy == generator.PolicyManaged {
				ch.Action, ch.Note, result = ActionCreated, "managed file restored", t
			} else {
				ch.Action = ActionLeftDeleted
			}
		case !ours.ok:
			ch.Action, result = ActionCreated, t
		case ours.equal(t):
			ch.Action, result = ActionUnchanged, ours
		case policy == generator.PolicySeed:
			ch.Action, result = ActionUnchanged, ours
			if !b.ok || !t.equal(b) {
				ch.Note = "seed file: yours kept, the new render differs"
			}
		case b.ok && ours.equal(b):
			ch.Action, result = ActionUpdated, t
		case b.ok && t.equal(b):
			ch.Action, ch.Note, result = ActionUnchanged, "your edits kept", ours
		default:
			var baseData []byte
			if b.ok {
				baseData = b.data
			} else {
				ch.Note = "no reproducible base: merged against an empty file"
			}
			if merge.IsBinary(ours.data) || merge.IsBinary(t.data) || merge.IsBinary(baseData) {
				ch.Action, ch.Note = ActionConflict, fmt.Sprintf("binary file: yours kept, the new version written to %s.opsready-new", p)
				result = ours
				writes = append(writes, generator.File{Path: p + ".opsready-new", Data: t.data, Mode: t.mode})
				unmerged = append(unmerged, unmergedFile{p, b, ours, t})
				break
			}
			if policy == generator.PolicyManaged {
				// A managed file is the blueprint's: a local edit is never merged silently.
				m := merge.Merge3(baseData, ours.data, t.data, labels)
				if m.Clean {
					m = merge.Merge3(nil, ours.data, t.data, labels)
				}
				ch.Action, ch.Note = ActionConflict, "managed file edited locally"
				result = side{true, m.Data, ours.mode}
				unmerged = append(unmerged, unmergedFile{p, b, ours, t})
				break
			}
			m := merge.Merge3(baseData, ours.data, t.data, labels)
			result = side{true, m.Data, ours.mode}
			if m.Clean {
				ch.Action = ActionMerged
			} else {
				ch.Action = ActionConflict
				ch.Note = fmt.Sprintf("%d conflicting hunk%s", m.Conflicts, map[bool]string{true: "s"}[m.Conflicts != 1])
				unmerged = append(unmerged, unmergedFile{p, b, ours, t})
			}
		}
		if result.ok && ours.ok && oursPath == p && result.mode == 0 {
			result.mode = ours.mode
		}
		if result.ok && result.mode == 0 {
			result.mode = t.mode
		}
		// Executable bits follow the blueprint unless the team changed them.
		if result.ok && ours.ok && t.ok && b.ok && ours.mode == b.mode && t.mode != b.mode {
			result.mode = t.mode
		}
		if ch.Action == ActionConflict {
			res.Conflicts++
		}
		changed := result.ok != ours.ok || oursPath != p || (result.ok && (!bytes.Equal(result.data, ours.data) || result.mode != ours.mode))
		if changed && oursPath != p && ours.ok {
			removes = append(removes, oursPath)
		}
		if changed && result.ok {
			writes = append(writes, generator.File{Path: p, Data: result.data, Mode: result.mode, Policy: policy})
		} else if changed && !result.ok && ours.ok && oursPath == p {
			removes = append(removes, p)
		}
		if opts.DryRun && changed {
			var before, after []byte
			if ours.ok {
				before = ours.data
			}
			if result.ok {
				after = result.data
			}
			ch.Diff = merge.Unified("a/"+oursPath, "b/"+p, before, after, 3)
		}
		res.Changes = append(res.Changes, ch)
	}

	// Secrets of components the new answers add (a cache, say) are created, never replaced.
	local, err := localFiles(newBP, newAnswers, theirsFiles, dir, nil)
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

	newLock := lock.New(newBP.Name, newBP.Version, opts.Version, newAnswers, theirsFiles)
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
	writes = append(writes, generator.File{Path: lock.FileName, Data: data, Mode: 0o644})
	if err := writes.Sort(); err != nil {
		return nil, err
	}
	if err := generator.Write(dir, writes, removes); err != nil {
		return nil, fmt.Errorf("write the upgrade (the project is unchanged): %w", err)
	}
	if len(unmerged) > 0 {
		if err := recordUnmerged(dir, unmerged); err != nil {
			return res, fmt.Errorf("conflicts are in the files, but recording them in the git index failed: %w", err)
		}
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

func readSide(dir, p string) (side, error) {
	full := filepath.Join(dir, filepath.FromSlash(p))
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return side{}, nil
	}
	if err != nil {
		return side{}, err
	}
	if !fi.Mode().IsRegular() {
		return side{}, fmt.Errorf("%s is not a regular file; move it aside and run the upgrade again", p)
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return side{}, err
	}
	mode := fs.FileMode(0o644)
	if fi.Mode()&0o100 != 0 {
		mode = 0o755
	}
	return side{true, data, mode}, nil
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
