package generator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A write goes through a staging folder inside the target folder (so that every move is a
// rename within one file system, which is atomic):
//
//	.opsready-staging-XXXX/txn           written first: marks the folder as one of ours
//	.opsready-staging-XXXX/new/N         the new files, fsynced
//	.opsready-staging-XXXX/journal.json  every step, fsynced before the first move (the commit point)
//	.opsready-staging-XXXX/old/N         originals of replaced and removed paths, moved aside
//
// Every step can be redone or undone by looking at the tree, so recovery after a crash at any
// point replays the journal forward (when it exists and every new file is still staged or
// already in place) or backward, and the tree ends up either as it was or fully written.

const (
	journalName = "journal.json"
	markerName  = "txn"
	// journalFormat is bumped when the journal changes incompatibly.
	journalFormat = 1
)

// Hook is a step of the caller's that follows the files (a git commit, say). It is recorded in
// the journal so that recovery can redo it (or undo it when rolling back).
type Hook struct {
	Name string `json:"name"`
	Arg  string `json:"arg,omitempty"`
}

// HookFunc runs (forward) or undoes (!forward) a hook for dir during recovery.
type HookFunc func(dir string, h Hook, forward bool) error

// Change is one all-or-nothing change of a folder.
type Change struct {
	Files  Files    // written in this order; a folder entry must come before the files below it
	Remove []string // paths removed
	// Final are written after Files and Remove, in this order: the files that say the change
	// happened (the lock file; a git index outside the tree, as ".git/index").
	Final Files
	Hooks []Hook // run by the caller after Apply returns, before Done
	// CreatedRoot says the caller created the folder for this change, so recovery that rolls
	// back removes it again when nothing else is left in it.
	CreatedRoot bool
	// Fresh says no file of the change replaces one on disk (a new project in a new or empty
	// folder): its files are then not fsynced one by one. That costs nothing against SIGKILL
	// (the journal, renames and recovery give all-or-nothing without fsync); it weakens only
	// the guarantee against power loss, where a fresh project has nothing of the team's to
	// lose and `new --force` makes it again. The journal and the folders are still fsynced.
	Fresh bool
}

// step is one recorded move of the journal.
type step struct {
	Op      string      `json:"op"` // mkdir, put, remove
	Path    string      `json:"path"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	Existed bool        `json:"existed,omitempty"`  // mkdir: the folder was there (only its mode changes)
	OldMode fs.FileMode `json:"old_mode,omitempty"` // mkdir of an existing folder: its mode before
	Staged  string      `json:"staged,omitempty"`   // put: the new file, relative to the staging folder
	Backup  string      `json:"backup,omitempty"`   // put, remove: where the original goes, relative to the staging folder
	SHA256  string      `json:"sha256,omitempty"`   // put: the new content
}

type journal struct {
	Format  int       `json:"format"`
	Pid     int       `json:"pid"`
	Started time.Time `json:"started"`
	Steps   []step    `json:"steps"`
	Hooks   []Hook    `json:"hooks,omitempty"`
}

type marker struct {
	Format      int  `json:"format"`
	CreatedRoot bool `json:"created_root,omitempty"`
}

// Recovery says what Recover did with one unfinished write.
type Recovery struct {
	Staging   string    `json:"staging"`   // the staging folder, relative to the project
	Direction string    `json:"direction"` // "forward" (completed), "back" (undone) or "kept" (an older opsready's folder, left for the user)
	Started   time.Time `json:"started,omitzero"`
	Steps     int       `json:"steps"`
	Reason    string    `json:"reason,omitempty"` // why it went back or was kept
	// RemoveRoot says the folder itself should go: a `new` that created it was undone.
	RemoveRoot bool `json:"-"`
}

// String is the line shown to the user.
func (r Recovery) String() string {
	switch r.Direction {
	case DirectionForward:
		if r.Started.IsZero() {
			return "a write that was interrupted had finished: removed what it left, the project is fully written"
		}
		return fmt.Sprintf("finished a write that was interrupted (started %s): rolled forward %d steps, the project is fully written",
			r.Started.Local().Format(time.DateTime), r.Steps)
	case DirectionBack:
		s := "undid a write that was interrupted: rolled back, the project is as it was before it"
		if r.Reason != "" {
			s += " (" + r.Reason + ")"
		}
		return s
	default:
		return fmt.Sprintf("%s holds the originals of files an older opsready was replacing when it stopped; check them and remove the folder", r.Staging)
	}
}

// Directions of a Recovery.
const (
	DirectionForward = "forward"
	DirectionBack    = "back"
	DirectionKept    = "kept"
)

// Recover finishes or undoes every unfinished write in dir (a staging folder left by a killed
// process). The caller must hold the project's write lock. Hooks are run by run.
func Recover(dir string, run HookFunc) ([]Recovery, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look for unfinished writes in %s: %w", dir, err)
	}
	var out []Recovery
	var names []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), StagingPrefix) {
			continue
		}
		// Killed while removing a finished or undone write's folder: the tree is whole.
		for _, o := range []struct{ suffix, dir string }{{doneSuffix, DirectionForward}, {undoneSuffix, DirectionBack}} {
			if strings.HasSuffix(e.Name(), o.suffix) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return nil, fmt.Errorf("remove %s: %w", e.Name(), err)
				}
				out = append(out, Recovery{Staging: e.Name(), Direction: o.dir, Reason: "only its staging folder was left"})
			}
		}
		if !strings.HasSuffix(e.Name(), doneSuffix) && !strings.HasSuffix(e.Name(), undoneSuffix) {
			names = append(names, e.Name())
		}
	}
	// An older journal was left first; names are random, so order by the journal's start.
	sort.Slice(names, func(i, j int) bool { return startOf(dir, names[i]).Before(startOf(dir, names[j])) })
	for _, name := range names {
		r, err := recoverOne(dir, name, run)
		if err != nil {
			return out, fmt.Errorf("recover the interrupted write in %s: %w", filepath.Join(dir, name), err)
		}
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}

func startOf(dir, name string) time.Time {
	j, err := readJournal(filepath.Join(dir, name))
	if err != nil {
		return time.Time{}
	}
	return j.Started
}

func readJournal(staging string) (*journal, error) {
	data, err := os.ReadFile(filepath.Join(staging, journalName))
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("read the journal: %w", err)
	}
	if j.Format != journalFormat {
		return nil, fmt.Errorf("journal format %d, this opsready reads %d", j.Format, journalFormat)
	}
	return &j, nil
}

func recoverOne(dir, name string, run HookFunc) (*Recovery, error) {
	staging := filepath.Join(dir, name)
	r := &Recovery{Staging: name}
	var m marker
	data, merr := os.ReadFile(filepath.Join(staging, markerName))
	if merr == nil {
		merr = json.Unmarshal(data, &m)
	}
	j, jerr := readJournal(staging)
	switch {
	case jerr == nil:
	case !errors.Is(jerr, fs.ErrNotExist):
		return nil, jerr
	case merr != nil:
		// No marker: an empty folder (killed right after creating it) goes; anything else is
		// an older opsready's staging folder whose originals only the user can judge.
		if err := os.Remove(staging); err == nil {
			return nil, syncDir(dir)
		}
		r.Direction = DirectionKept
		return r, nil
	default:
		// Killed before the journal was written: nothing was moved yet.
		r.Direction = DirectionBack
		r.Reason = "it was stopped before any file was moved"
		r.RemoveRoot = m.CreatedRoot
		if err := removeStaging(dir, staging, undoneSuffix); err != nil {
			return nil, err
		}
		return r, nil
	}
	tx := &Txn{dir: dir, staging: staging, j: j, committed: true, hookRun: run}
	r.Started, r.Steps = j.Started, len(j.Steps)
	if reason := tx.complete(); reason != "" {
		r.Direction, r.Reason, r.RemoveRoot = DirectionBack, reason, m.CreatedRoot
		return r, tx.rollback()
	}
	if err := tx.forward(); err != nil {
		r.Direction, r.Reason, r.RemoveRoot = DirectionBack, err.Error(), m.CreatedRoot
		return r, tx.rollback()
	}
	for _, h := range j.Hooks {
		if run == nil {
			return nil, fmt.Errorf("no handler for the step %q", h.Name)
		}
		if err := run(dir, h, true); err != nil {
			r.Direction, r.Reason, r.RemoveRoot = DirectionBack, fmt.Sprintf("%s: %v", h.Name, err), m.CreatedRoot
			return r, tx.rollback()
		}
	}
	r.Direction = DirectionForward
	return r, tx.Done()
}

// complete says why the journal cannot be rolled forward ("" when it can): every new file must
// be staged or already in place.
func (t *Txn) complete() string {
	for _, s := range t.j.Steps {
		if s.Op != "put" {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(t.staging, s.Staged)); err == nil {
			if HashBytes(data) != s.SHA256 {
				return "the staged copy of " + s.Path + " is damaged"
			}
			continue
		}
		data, err := os.ReadFile(t.abs(s.Path))
		if err != nil || HashBytes(data) != s.SHA256 {
			return "the new " + s.Path + " is neither staged nor in place"
		}
	}
	return ""
}

func (t *Txn) abs(p string) string { return filepath.Join(t.dir, filepath.FromSlash(p)) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// forward redoes every step that has not happened yet.
func (t *Txn) forward() error {
	for i, s := range t.j.Steps {
		if err := t.redo(s); err != nil {
			return err
		}
		t.done = i + 1
		t.Checkpoint("move " + s.Op + " " + s.Path)
	}
	return nil
}

func (t *Txn) redo(s step) error {
	target := t.abs(s.Path)
	switch s.Op {
	case "mkdir":
		if !s.Existed && !exists(target) {
			if err := os.Mkdir(target, 0o755); err != nil {
				return fmt.Errorf("create folder %s: %w", s.Path, err)
			}
		}
		if err := os.Chmod(target, s.Mode.Perm()); err != nil {
			return fmt.Errorf("create folder %s: %w", s.Path, err)
		}
	case "remove":
		backup := filepath.Join(t.staging, s.Backup)
		if !exists(backup) && exists(target) {
			if err := os.Rename(target, backup); err != nil {
				return fmt.Errorf("remove %s: %w", s.Path, err)
			}
		}
	case "put":
		staged := filepath.Join(t.staging, s.Staged)
		if !exists(staged) {
			return nil // moved already
		}
		if exists(target) {
			if s.Backup == "" {
				return fmt.Errorf("replace %s: it appeared during the write", s.Path)
			}
			backup := filepath.Join(t.staging, s.Backup)
			if exists(backup) {
				return fmt.Errorf("replace %s: both it and its backup exist", s.Path)
			}
			if err := os.Rename(target, backup); err != nil {
				return fmt.Errorf("replace %s: %w", s.Path, err)
			}
		}
		if err := os.Rename(staged, target); err != nil {
			return fmt.Errorf("move %s into place: %w", s.Path, err)
		}
	default:
		return fmt.Errorf("unknown journal step %q", s.Op)
	}
	return nil
}

// rollback undoes every step, newest first, and removes the staging folder.
func (t *Txn) rollback() error {
	var errs []error
	for i := len(t.j.Steps) - 1; i >= 0; i-- {
		if err := t.undo(t.j.Steps[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the journal and the originals: the next command tries again.
		return errors.Join(errs...)
	}
	if err := t.syncTouched(); err != nil {
		return err
	}
	return removeStaging(t.dir, t.staging, undoneSuffix)
}

func (t *Txn) undo(s step) error {
	target := t.abs(s.Path)
	switch s.Op {
	case "mkdir":
		if s.Existed {
			if err := os.Chmod(target, s.OldMode.Perm()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove created folder %s: %w", s.Path, err)
		}
	case "remove":
		backup := filepath.Join(t.staging, s.Backup)
		if exists(backup) {
			if err := os.Rename(backup, target); err != nil {
				return fmt.Errorf("restore %s: %w", s.Path, err)
			}
		}
	case "put":
		staged := filepath.Join(t.staging, s.Staged)
		if !exists(staged) && exists(target) {
			// Ours: put it back into staging rather than delete, so nothing is lost on a
			// failure half-way through the undo.
			if err := os.Rename(target, staged); err != nil {
				return fmt.Errorf("take back %s: %w", s.Path, err)
			}
		}
		if s.Backup != "" {
			backup := filepath.Join(t.staging, s.Backup)
			if exists(backup) {
				if err := os.Rename(backup, target); err != nil {
					return fmt.Errorf("restore %s: %w", s.Path, err)
				}
			}
		}
	}
	return nil
}

// syncTouched makes the renames durable: every folder a step changed is fsynced.
func (t *Txn) syncTouched() error {
	dirs := map[string]bool{t.dir: true, t.staging: true}
	for _, s := range t.j.Steps {
		dirs[filepath.Dir(t.abs(s.Path))] = true
		if s.Op == "mkdir" {
			dirs[t.abs(s.Path)] = true
		}
		if s.Backup != "" || s.Staged != "" {
			dirs[filepath.Join(t.staging, "old")] = true
			dirs[filepath.Join(t.staging, "new")] = true
		}
	}
	var list []string
	for d := range dirs {
		list = append(list, d)
	}
	return parallel(list, func(d string) error {
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// Suffixes a staging folder is renamed to, in one atomic step, once its write is finished or
// undone: from then on only its removal is left, and recovery knows which way it went.
const (
	doneSuffix   = ".done"
	undoneSuffix = ".undone"
)

// removeStaging marks the staging folder finished (suffix) by renaming it, then removes it.
func removeStaging(dir, staging, suffix string) error {
	gone := staging + suffix
	if err := os.Rename(staging, gone); err != nil {
		return fmt.Errorf("remove the staging folder: %w", err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove the staging folder: %w", err)
	}
	return syncDir(dir)
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", d, err)
	}
	return nil
}

// writeSynced writes a file and fsyncs it, with exactly the mode given (not the umask's).
func writeSynced(p string, data []byte, mode fs.FileMode) error {
	return writeFile(p, data, mode, true)
}

// writeFile writes a file with exactly the mode given, fsynced when sync is set.
func writeFile(p string, data []byte, mode fs.FileMode, sync bool) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// parallel runs fn on every item with up to 64 goroutines: fsyncs issued together share the
// file system's journal commits (150 files: about 0.1 s instead of 1 s one by one). 64 rather
// than 16 lets a whole project's files wait for fewer commits (190 fsynced files on ext4,
// best of 25: 20-33 ms instead of 25-38 ms).
func parallel(items []string, fn func(string) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 64)
	)
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Test-only crash points. When OPSREADY_TEST_PAUSE_FILE is set, every point of a write is
// appended to that file as "N name"; at point number OPSREADY_TEST_PAUSE_AT the process then
// waits until the file "<that file>.go" exists, so that a test can SIGKILL it there (or let it
// go on). Neither variable is ever set outside opsready's own tests.
const (
	envPauseFile = "OPSREADY_TEST_PAUSE_FILE"
	envPauseAt   = "OPSREADY_TEST_PAUSE_AT"
)

var points struct {
	sync.Mutex
	n int
}

// Checkpoint marks a point of the write where a test may stop the process (see the
// OPSREADY_TEST_PAUSE_* variables); otherwise it does nothing.
func (t *Txn) Checkpoint(name string) {
	file := os.Getenv(envPauseFile)
	if file == "" {
		return
	}
	points.Lock()
	n := points.n
	points.n++
	points.Unlock()
	if f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintf(f, "%d %s\n", n, name)
		_ = f.Close()
	}
	if at, err := strconv.Atoi(os.Getenv(envPauseAt)); err == nil && at == n {
		if f, err := os.Create(file + ".paused"); err == nil {
			_ = f.Close()
		}
		for !exists(file + ".go") {
			time.Sleep(5 * time.Millisecond)
		}
	}
}
