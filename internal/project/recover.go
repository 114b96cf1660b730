package project

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/lock"
)

// Recovery is what recovery did with a write a killed opsready left unfinished.
type Recovery = generator.Recovery

// hookCommit is the journal step of `new` that commits the written tree.
const hookCommit = "git-commit"

type commitArg struct {
	Message string `json:"message"`
	Init    bool   `json:"init"` // the repository did not exist before: recovery may re-create it
}

func commitHook(message string, init bool) generator.Hook {
	b, _ := json.Marshal(commitArg{message, init})
	return generator.Hook{Name: hookCommit, Arg: string(b)}
}

// runHook redoes or undoes a journalled step of this package for generator.Recover.
func runHook(dir string, h generator.Hook, forward bool) error {
	if h.Name != hookCommit {
		return fmt.Errorf("unknown journal step %q (written by a newer opsready?)", h.Name)
	}
	var a commitArg
	if err := json.Unmarshal([]byte(h.Arg), &a); err != nil {
		return fmt.Errorf("journal step %s: %w", h.Name, err)
	}
	gitDir := filepath.Join(dir, ".git")
	if !forward {
		if a.Init {
			return os.RemoveAll(gitDir)
		}
		return nil // a commit into the team's repository is never rewritten
	}
	if a.Init {
		// Killed while creating the repository or committing: start it again from nothing.
		if err := os.RemoveAll(gitDir); err != nil {
			return err
		}
	}
	_, err := commitAll(dir, a.Message)
	if errors.Is(err, git.ErrEmptyCommit) {
		return nil // committed before the kill
	}
	return err
}

// Recover finishes or undoes, under the project's write lock, a write that a killed opsready
// left unfinished in dir, and says what it did. Every command that reads or writes a project
// calls it first; a project without a staging folder costs one directory read.
func Recover(dir string) ([]Recovery, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, nil // nothing there to recover; the command reports the missing folder itself
	}
	l, recs, err := lockAndRecover(dir, nil)
	if err != nil {
		return recs, err
	}
	return recs, l.unlock()
}

// ReadStatusLocked is ReadStatus under the project's write lock, after recovering an
// interrupted write (notify hears of it): a project being written is never read half-way.
func ReadStatusLocked(dir string, notify func(Recovery)) (*Status, []Recovery, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	var recs []Recovery
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		l, r, err := lockAndRecover(abs, notify)
		switch {
		case err == nil:
			defer func() { _ = l.unlock() }()
			recs = r
		case errors.Is(err, fs.ErrPermission) && !errors.Is(err, ErrBusy):
			// A project the user may read but not write (someone else's): nothing to lock or
			// recover, and nobody can be writing it as this user either.
		default:
			return nil, r, err
		}
	}
	st, err := ReadStatus(dir)
	return st, recs, err
}

// lockAndRecover takes dir's write lock and recovers an unfinished write. notify, when set,
// hears of each recovery.
func lockAndRecover(dir string, notify func(Recovery)) (*writeLock, []Recovery, error) {
	l, err := lockProject(dir)
	if err != nil {
		return nil, nil, err
	}
	recs, err := generator.Recover(dir, runHook)
	for _, r := range recs {
		if r.RemoveRoot {
			l.removeRoot = true
		}
		if notify != nil {
			notify(r)
		}
	}
	if err != nil {
		_ = l.unlock()
		return nil, recs, err
	}
	return l, recs, nil
}

// mkdirRoot creates dir and its missing parents and returns a function that removes those it
// created (when empty).
func mkdirRoot(dir string) (func(), bool, error) {
	var created []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		created = append(created, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", dir, err)
	}
	return func() {
		for _, p := range created {
			_ = os.Remove(p)
		}
	}, len(created) > 0, nil
}

// lockExisting is lockAndRecover for a folder that should exist; a missing one is left to
// the command to report (nil lock, no error).
func lockExisting(dir string, notify func(Recovery)) (*writeLock, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, nil
	}
	l, _, err := lockAndRecover(dir, notify)
	return l, err
}

// writeUpgrade writes an upgrade as one journalled change: the files, then the git index with
// the conflicts as unmerged entries, then the lock file last (so that even a reader that does
// not recover never sees the new version recorded before its files).
func writeUpgrade(dir string, writes generator.Files, removes []string, unmerged []unmergedFile, lockData []byte) error {
	var final generator.Files
	indexLater := false
	if len(unmerged) > 0 {
		idx, ok, err := stageUnmerged(dir, unmerged)
		if err != nil {
			return fmt.Errorf("record the conflicts in the git index (the project is unchanged): %w", err)
		}
		if ok {
			final = append(final, generator.File{Path: indexPath, Data: idx, Mode: 0o644})
		} else {
			indexLater = true
		}
	}
	final = append(final, generator.File{Path: lock.FileName, Data: lockData, Mode: 0o644})
	tx, err := generator.ApplyChange(dir, generator.Change{Files: writes, Remove: removes, Final: final})
	if err != nil {
		return fmt.Errorf("write the upgrade (the project is unchanged): %w", err)
	}
	if err := tx.Done(); err != nil {
		return fmt.Errorf("finish writing the upgrade (the next opsready command completes it): %w", err)
	}
	if indexLater {
		if err := recordUnmerged(dir, unmerged); err != nil {
			return fmt.Errorf("conflicts are in the files, but recording them in the git index failed: %w", err)
		}
	}
	return nil
}
