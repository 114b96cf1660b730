package generator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Write puts files into dir and removes the paths in remove, as one step (an entry whose
// Mode is a folder creates that folder with its permissions, and must sort before its files).
// Everything is first written to a staging folder inside dir and recorded in a journal, then
// moved into place. When anything fails, every change is undone, so dir is left as it was (and
// removed again if Write created it); after a crash, Recover finishes or undoes it.
func Write(dir string, files Files, remove []string) error {
	tx, err := Apply(dir, files, remove)
	if err != nil {
		return err
	}
	return tx.Done()
}

// Apply is Write for callers with more steps after it (a git commit, say): the change can
// still be undone with Undo until Done is called.
func Apply(dir string, files Files, remove []string) (*Txn, error) {
	return ApplyChange(dir, Change{Files: files, Remove: remove})
}

// ApplyChange makes the change c in dir: every new file is written into a staging folder and
// fsynced, the journal of every move is written and fsynced (from then on a crash is rolled
// forward by Recover), then the moves are made. Until Done, Undo puts everything back.
func ApplyChange(dir string, c Change) (_ *Txn, err error) {
	tx := &Txn{dir: filepath.Clean(dir)}
	defer func() {
		if err != nil {
			if rerr := tx.Undo(); rerr != nil {
				err = fmt.Errorf("%w (and undoing failed: %v)", err, rerr)
			}
		}
	}()
	if err := tx.mkdirAll(tx.dir); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	staging, err := os.MkdirTemp(tx.dir, StagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	tx.staging = staging
	tx.Checkpoint("staging folder created")
	mk, _ := json.Marshal(marker{Format: journalFormat, CreatedRoot: c.CreatedRoot || len(tx.created) > 0})
	if err := writeSynced(filepath.Join(staging, markerName), mk, 0o644); err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	for _, sub := range []string{"new", "old"} {
		if err := os.Mkdir(filepath.Join(staging, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create staging folder: %w", err)
		}
	}
	tx.Checkpoint("staging marker written")

	j := &journal{Format: journalFormat, Pid: os.Getpid(), Started: time.Now().UTC(), Hooks: c.Hooks}
	planned := map[string]bool{} // folders the journal creates
	// Folders that did not exist: nothing below them can exist either, so their files are
	// not looked up one by one.
	absent := map[string]bool{}
	nbackup := 0
	backupName := func() string {
		nbackup++
		return fmt.Sprintf("old/%d", nbackup-1)
	}
	for _, r := range c.Remove {
		if err := checkRel(r); err != nil {
			return nil, err
		}
		if exists(tx.abs(r)) {
			j.Steps = append(j.Steps, step{Op: "remove", Path: r, Backup: backupName()})
		}
	}
	type staged struct {
		name string
		f    File
	}
	var toStage []staged
	all := append(append(Files{}, c.Files...), c.Final...)
	for i, f := range all {
		if err := checkRel(f.Path); err != nil {
			return nil, err
		}
		// Parent folders that do not exist yet are created by the journal (and removed on undo).
		var missing []string
		for p := filepath.ToSlash(filepath.Dir(filepath.FromSlash(f.Path))); p != "."; p = filepath.ToSlash(filepath.Dir(filepath.FromSlash(p))) {
			if planned[p] {
				break
			}
			fi, err := os.Lstat(tx.abs(p))
			if err == nil {
				if !fi.IsDir() {
					return nil, fmt.Errorf("create folder for %s: %s is not a folder", f.Path, p)
				}
				break
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("create folder for %s: %w", f.Path, err)
			}
			missing = append(missing, p)
		}
		for k := len(missing) - 1; k >= 0; k-- {
			planned[missing[k]], absent[missing[k]] = true, true
			j.Steps = append(j.Steps, step{Op: "mkdir", Path: missing[k], Mode: 0o755})
		}
		target := tx.abs(f.Path)
		var fi fs.FileInfo
		statErr := error(fs.ErrNotExist)
		if parent := path.Dir(f.Path); parent == "." || !absent[parent] {
			fi, statErr = os.Lstat(target)
		}
		if f.Mode.IsDir() {
			// A folder entry sets the mode of a folder the files below it need.
			s := step{Op: "mkdir", Path: f.Path, Mode: f.Mode.Perm()}
			switch {
			case planned[f.Path]:
				for k := range j.Steps {
					if j.Steps[k].Op == "mkdir" && j.Steps[k].Path == f.Path {
						j.Steps[k].Mode = f.Mode.Perm()
					}
				}
				continue
			case statErr == nil && !fi.IsDir():
				return nil, fmt.Errorf("create folder %s: a file is in the way", f.Path)
			case statErr == nil:
				s.Existed, s.OldMode = true, fi.Mode().Perm()
			case !errors.Is(statErr, fs.ErrNotExist):
				return nil, fmt.Errorf("create folder %s: %w", f.Path, statErr)
			default:
				absent[f.Path] = true
			}
			planned[f.Path] = true
			j.Steps = append(j.Steps, s)
			continue
		}
		s := step{Op: "put", Path: f.Path, Mode: f.Mode.Perm(), Staged: fmt.Sprintf("new/%d", i), SHA256: f.SHA256()}
		if statErr == nil {
			s.Backup = backupName()
		} else if !errors.Is(statErr, fs.ErrNotExist) {
			return nil, fmt.Errorf("replace %s: %w", f.Path, statErr)
		}
		j.Steps = append(j.Steps, s)
		toStage = append(toStage, staged{s.Staged, f})
	}
	names := make([]string, len(toStage))
	byName := map[string]File{}
	for i, s := range toStage {
		names[i] = s.name
		byName[s.name] = s.f
	}
	// The journal is written and fsynced in the same wave as the new files: fsyncs issued
	// together share the file system's journal commits, and only its rename below (the commit
	// point) has to wait for all of them. One syncfs(2) instead was measured slower on a busy
	// machine: it also waits for every other process's dirty data on that file system.
	data, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(staging, journalName+".tmp")
	writeStaged := func(n string) error {
		if n == journalName {
			if err := writeSynced(tmp, data, 0o644); err != nil {
				return fmt.Errorf("write the journal: %w", err)
			}
			return nil
		}
		f := byName[n]
		if err := writeNewFile(filepath.Join(staging, filepath.FromSlash(n)), f.Data, f.Mode.Perm(), !c.Fresh); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
		return nil
	}
	if c.Fresh {
		// Nothing to fsync but the journal: the files are written one after another (many
		// goroutines creating files in one folder only wait for its lock, and cost threads),
		// while the journal's fsync runs beside them.
		err = writeFreshStaged(names, journalName, writeStaged)
	} else {
		err = parallel(append(slices.Clone(names), journalName), writeStaged)
	}
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		tx.Checkpoint("staged " + byName[n].Path)
	}
	if err := syncDir(filepath.Join(staging, "new")); err != nil {
		return nil, err
	}
	// The commit point: once journal.json exists, the write is finished by recovery.
	tx.Checkpoint("journal written")
	if err := os.Rename(tmp, filepath.Join(staging, journalName)); err != nil {
		return nil, fmt.Errorf("write the journal: %w", err)
	}
	if err := syncDir(staging); err != nil {
		return nil, err
	}
	tx.j, tx.committed = j, true
	tx.Checkpoint("journal committed")
	if err := tx.forwardNew(); err != nil {
		return nil, err
	}
	return tx, nil
}

// forwardNew is forward for the write that just staged its files: a new file in place of
// nothing is moved with a rename that refuses to replace (renameat2 RENAME_NOREPLACE where
// the system has it), and a missing folder is created directly, instead of first looking at
// both paths. Anything else, and any failure of the short way, takes forward's own step (redo),
// which also gives its errors.
func (t *Txn) forwardNew() error {
	short := true
	for i, s := range t.j.Steps {
		done := false
		if short {
			switch {
			case s.Op == "put" && s.Backup == "":
				switch err := renameNoReplace(filepath.Join(t.staging, s.Staged), t.abs(s.Path)); {
				case err == nil:
					done = true
				case errors.Is(err, errNoRenameNoReplace):
					short = false
				}
			case s.Op == "mkdir" && !s.Existed:
				if os.Mkdir(t.abs(s.Path), 0o755) == nil {
					if err := os.Chmod(t.abs(s.Path), s.Mode.Perm()); err != nil {
						return fmt.Errorf("create folder %s: %w", s.Path, err)
					}
					done = true
				}
			}
		}
		if !done {
			if err := t.redo(s); err != nil {
				return err
			}
		}
		t.done = i + 1
		t.Checkpoint("move " + s.Op + " " + s.Path)
	}
	return nil
}

// StagingPrefix starts the name of the staging folder Apply makes inside the target.
const StagingPrefix = ".opsready-staging-"

func checkRel(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") || strings.Contains(p, "\\") {
		return fmt.Errorf("refusing to write outside the project: %q", p)
	}
	return nil
}

// Txn is a change that has been applied and can still be undone, until Done.
type Txn struct {
	dir       string
	staging   string
	j         *journal
	committed bool     // the journal is on disk
	done      int      // steps made
	created   []string // folders above the project created in-process, outermost first
	hookRun   HookFunc
}

// mkdirAll creates dir and its missing parents, remembering them for Undo.
func (t *Txn) mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a folder", dir)
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := t.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	t.created = append(t.created, dir)
	return nil
}

// Done keeps the change: the moves are made durable, then the journal and the staging folder
// with the replaced originals are removed.
func (t *Txn) Done() error {
	if err := t.syncTouched(); err != nil {
		return err
	}
	t.Checkpoint("moves synced")
	gone := t.staging + doneSuffix
	if err := os.Rename(t.staging, gone); err != nil {
		return fmt.Errorf("remove the staging folder: %w", err)
	}
	t.Checkpoint("staging folder marked done")
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove the staging folder: %w", err)
	}
	return syncDir(t.dir)
}

// Undo puts back everything as it was before Apply.
func (t *Txn) Undo() error {
	var errs []error
	if t.committed {
		if err := t.rollback(); err != nil {
			errs = append(errs, err)
		}
	} else if t.staging != "" {
		if err := removeStaging(t.dir, t.staging, undoneSuffix); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		for i := len(t.created) - 1; i >= 0; i-- {
			if err := os.Remove(t.created[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
