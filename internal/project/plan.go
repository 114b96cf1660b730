package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/merge"
)

// planInput is what the per-file decisions of an upgrade start from, besides the team's tree.
type planInput struct {
	dir         string
	paths       []string          // every path of base, theirs and the old lock, sorted
	base        map[string]side   // the old render, where it is reproducible
	theirs      map[string]side   // the new render
	renamed     map[string]string // new path -> the path the team's version is at
	policies    map[string]string // the old lock's policy of each path (after renames)
	theirPolicy map[string]string // the new render's policy of each path
	labels      merge.Labels
	dryRun      bool // fill in the diffs
}

// upgradePlan is what an upgrade does to the tree: the report, and the writes and removals
// that carry it out.
type upgradePlan struct {
	changes    []FileChange
	conflicts  int
	writes     generator.Files
	removes    []string
	unmerged   []unmergedFile
	notWritten map[string]bool // generated paths the team's tree has no room for
}

// lockable returns the files the new lock may record: those the upgrade could place.
func (pl *upgradePlan) lockable(files generator.Files) generator.Files {
	if len(pl.notWritten) == 0 {
		return files
	}
	out := make(generator.Files, 0, len(files))
	for _, f := range files {
		if !pl.notWritten[f.Path] {
			out = append(out, f)
		}
	}
	return out
}

// planFiles decides, per path, what the upgrade does. It reads the team's tree and writes
// nothing.
func planFiles(in planInput) (*upgradePlan, error) {
	pl := &upgradePlan{notWritten: map[string]bool{}}
	known := make(map[string]bool, len(in.paths))
	for _, p := range in.paths {
		known[p] = true
	}
	removed := map[string]bool{} // paths this plan removes (the sorted order puts a folder's name before its files)
	chosen := map[string]bool{}  // side names this plan writes
	for _, p := range in.paths {
		oursPath := p
		if from, ok := in.renamed[p]; ok {
			oursPath = from
		}
		ours, kind, err := readOurs(in.dir, oursPath)
		if err != nil {
			return nil, err
		}
		b, t := in.base[p], in.theirs[p]
		policy := in.theirPolicy[p]
		if policy == "" {
			policy = in.policies[p]
		}
		ch := FileChange{Path: p, Policy: policy}
		if oursPath != p {
			ch.From = oursPath
		}
		d := decide(b, ours, t, policy, in.policies[p] != "", in.labels)
		ch.Action, ch.Note = d.action, d.note
		result := d.result
		if kind != "" && ch.Action == ActionLeftDeleted {
			ch.Note = fmt.Sprintf("a %s of yours is in its place: left as it is", kind)
		}
		if result.ok {
			if policy == generator.PolicySeed && ours.ok {
				result.mode = ours.mode // a seed file is the team's, its mode too
			} else {
				var kept bool
				result.mode, kept = mergeMode(b, ours, t)
				if kept && ch.Action != ActionKept {
					ch.Note = joinNote(ch.Note, fmt.Sprintf("your mode %o kept (the new version has %o)", result.mode, t.mode.Perm()))
				}
			}
		}
		changed := result.ok != ours.ok || oursPath != p || (result.ok && (string(result.data) != string(ours.data) || result.mode != ours.mode))
		if changed && ch.Action == ActionUnchanged && oursPath == p && result.ok && ours.ok {
			// Same content, but the new version changes the executable bit.
			ch.Action = ActionUpdated
			ch.Note = joinNote(ch.Note, fmt.Sprintf("mode %o -> %o", ours.mode.Perm(), result.mode))
		}
		if changed && result.ok {
			if at, what := clashAt(in.dir, p, removed, oursPath != p); at != "" {
				// The team's tree has no room for the file: nothing of theirs is moved or
				// replaced, the file is not written, and the next upgrade creates it.
				ch.Action = ActionConflict
				ch.Note = clashNote(p, at, what, oursPath, ours.ok)
				pl.conflicts++
				pl.notWritten[p] = true
				if b.ok || t.ok {
					pl.unmerged = append(pl.unmerged, unmergedFile{p, b, side{}, t})
				}
				pl.changes = append(pl.changes, ch)
				continue
			}
		}
		if d.binary {
			name := freeName(in.dir, p, known, chosen)
			chosen[name] = true
			ch.Beside = name
			note := "binary file: yours kept, the new version written to " + name
			if name != p+".opsready-new" {
				note += " (" + p + ".opsready-new is there already and was not touched)"
			}
			ch.Note = joinNote(note, ch.Note)
			pl.writes = append(pl.writes, generator.File{Path: name, Data: t.data, Mode: t.mode})
		}
		if d.unmerged {
			pl.unmerged = append(pl.unmerged, unmergedFile{p, b, ours, t})
		}
		if ch.Action == ActionConflict {
			pl.conflicts++
		}
		if changed && oursPath != p && ours.ok {
			pl.removes = append(pl.removes, oursPath)
			removed[oursPath] = true
		}
		if changed && result.ok {
			pl.writes = append(pl.writes, generator.File{Path: p, Data: result.data, Mode: result.mode, Policy: policy})
		} else if changed && !result.ok && ours.ok && oursPath == p {
			pl.removes = append(pl.removes, p)
			removed[p] = true
		}
		if in.dryRun && changed {
			var before, after []byte
			if ours.ok {
				before = ours.data
			}
			if result.ok {
				after = result.data
			}
			ch.Diff = merge.Unified("a/"+oursPath, "b/"+p, before, after, 3)
		}
		pl.changes = append(pl.changes, ch)
	}
	return pl, nil
}

// decision is what becomes of one file, given its three sides.
type decision struct {
	action, note string
	result       side // what the file holds afterwards (its mode is decided apart)
	binary       bool // a binary conflict: the new version is written beside the file
	unmerged     bool // record the three sides in the git index
}

// decide is the decision table of an upgrade (SPEC §5) for one file: b is the old render,
// ours the team's file, t the new render; generated says the old lock lists the path.
func decide(b, ours, t side, policy string, generated bool, labels merge.Labels) decision {
	switch {
	case !t.ok: // gone from the new render
		switch {
		case !ours.ok:
			return decision{action: ActionUnchanged}
		case policy == generator.PolicySeed:
			// Application code is the team's even when untouched: switching a component off
			// (`--set frontend=static`) keeps its sources, so the folder still builds.
			note := "seed file no longer generated: yours, kept (delete it when unused)"
			if b.ok && !ours.equal(b) {
				note = "seed file: the team owns it"
			}
			return decision{action: ActionKept, note: note, result: ours}
		case b.ok && ours.equal(b):
			return decision{action: ActionDeleted}
		default:
			return decision{action: ActionKept, note: "modified by you, no longer generated", result: ours}
		}
	case !ours.ok && generated:
		// It was generated before and is gone now: the team deleted it.
		if policy == generator.PolicyManaged {
			return decision{action: ActionCreated, note: "managed file restored", result: t}
		}
		return decision{action: ActionLeftDeleted}
	case !ours.ok:
		return decision{action: ActionCreated, result: t}
	case ours.equal(t):
		return decision{action: ActionUnchanged, result: ours}
	case policy == generator.PolicySeed:
		d := decision{action: ActionUnchanged, result: ours}
		if !b.ok || !t.equal(b) {
			d.note = "seed file: yours kept, the new render differs"
		}
		return d
	case b.ok && ours.equal(b):
		return decision{action: ActionUpdated, result: t}
	case b.ok && t.equal(b):
		return decision{action: ActionUnchanged, note: "your edits kept", result: ours}
	}
	var baseData []byte
	note := ""
	if b.ok {
		baseData = b.data
	} else {
		note = "no reproducible base: merged against an empty file"
	}
	if merge.IsBinary(ours.data) || merge.IsBinary(t.data) || merge.IsBinary(baseData) {
		return decision{action: ActionConflict, result: ours, binary: true, unmerged: true}
	}
	if policy == generator.PolicyManaged {
		// A managed file is the blueprint's: a local edit is never merged silently.
		m := merge.Merge3(baseData, ours.data, t.data, labels)
		if m.Clean {
			m = merge.Merge3(nil, ours.data, t.data, labels)
		}
		return decision{action: ActionConflict, note: "managed file edited locally", result: side{true, m.Data, ours.mode}, unmerged: true}
	}
	m := merge.Merge3(baseData, ours.data, t.data, labels)
	d := decision{result: side{true, m.Data, ours.mode}, note: note}
	if m.Clean {
		d.action = ActionMerged
	} else {
		d.action = ActionConflict
		d.note = fmt.Sprintf("%d conflicting hunk%s", m.Conflicts, map[bool]string{true: "s"}[m.Conflicts != 1])
		d.unmerged = true
	}
	return d
}

// mergeMode decides the permissions of a file the team has (ours) or gets (t). The
// executable bit merges three ways, as git's does: a team's chmod wins over the blueprint
// keeping its mode, and when both changed it they agree (it has two states). The other
// bits are the team's, as on their disk. kept reports that the team's executable bit
// differs from the new version's.
func mergeMode(b, ours, t side) (mode fs.FileMode, kept bool) {
	if !ours.ok {
		return t.mode.Perm(), false
	}
	exec := isExec(ours.mode)
	if t.ok && b.ok && exec == isExec(b.mode) {
		exec = isExec(t.mode)
	}
	perm := ours.mode.Perm()
	if exec {
		perm |= (perm & 0o444) >> 2
		perm |= 0o100
	} else {
		perm &^= 0o111
	}
	return perm, t.ok && exec != isExec(t.mode)
}

func isExec(m fs.FileMode) bool { return m&0o100 != 0 }

func joinNote(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}

// readOurs reads the team's file at p. A missing file, a file where a folder would be
// needed (`docs` as a file for `docs/x.md`), and a folder, link or other non-file at p all
// read as absent; kind names what is there in the last two cases.
func readOurs(dir, p string) (s side, kind string, err error) {
	full := filepath.Join(dir, filepath.FromSlash(p))
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return side{}, "", nil
	}
	if err != nil {
		return side{}, "", fmt.Errorf("read %s: %w", p, err)
	}
	switch {
	case fi.IsDir():
		return side{}, "folder", nil
	case fi.Mode()&fs.ModeSymlink != 0:
		return side{}, "symbolic link", nil
	case !fi.Mode().IsRegular():
		return side{}, "special file", nil
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return side{}, "", fmt.Errorf("read %s: %w", p, err)
	}
	return side{true, data, fi.Mode().Perm()}, "", nil
}

// clashAt names what stands where p must be written and may not be replaced: a file (not
// removed by this upgrade) where p needs a folder, a folder, link or special file at p, or,
// when p is the new name of a renamed file, any file at p.
func clashAt(dir, p string, removed map[string]bool, renameTarget bool) (at, what string) {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		a := strings.Join(parts[:i], "/")
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(a))) // a link to a folder is a folder
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", ""
		case err != nil:
			return a, "path that cannot be read"
		case fi.IsDir():
			continue
		case removed[a]:
			return "", ""
		default:
			return a, "file"
		}
	}
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", ""
	case err != nil:
		return p, "path that cannot be read"
	case fi.IsDir():
		return p, "folder"
	case fi.Mode()&fs.ModeSymlink != 0:
		return p, "symbolic link"
	case !fi.Mode().IsRegular():
		return p, "special file"
	case renameTarget && !removed[p]:
		return p, "file"
	}
	return "", ""
}

func clashNote(p, at, what, oursPath string, oursOK bool) string {
	var s string
	switch {
	case at != p:
		s = fmt.Sprintf("not written: `%s` is a %s of yours where the new version needs a folder", at, what)
	case what == "file":
		s = fmt.Sprintf("not written: `%s` is a file of yours, and the new version renames %s to it", p, oursPath)
	default:
		s = fmt.Sprintf("not written: `%s` is a %s of yours where the new version has a file", p, what)
	}
	if oursPath != p && oursOK {
		s += fmt.Sprintf(" (your version stays at %s)", oursPath)
	}
	return s + "; move it aside, commit, and run `opsready upgrade` again"
}

// freeName picks the name beside p for the new version of a binary file: p.opsready-new,
// or p.opsready-new.1, .2, … when that name is taken by any file on disk, by a generated
// path or by another file of this upgrade; a file the team has is never overwritten.
func freeName(dir, p string, known, chosen map[string]bool) string {
	for i := 0; ; i++ {
		name := p + ".opsready-new"
		if i > 0 {
			name += "." + strconv.Itoa(i)
		}
		if known[name] || chosen[name] {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name))); errors.Is(err, fs.ErrNotExist) {
			return name
		}
	}
}
