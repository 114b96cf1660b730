package generator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write puts files into dir and removes the paths in remove, as one step (an entry whose
// Mode is a folder creates that folder with its permissions, and must sort before its files): everything is
// first written to a staging folder inside dir, then moved into place. When anything fails,
// every change is undone, so dir is left as it was (and removed again if Write created it).
func Write(dir string, files Files, remove []string) error {
	tx, err := Apply(dir, files, remove)
	if err != nil {
		return err
	}
	return tx.Done()
}

// Apply is Write for callers with more steps after it (a git commit, say): the change can
// still be undone with Undo until Done is called.
func Apply(dir string, files Files, remove []string) (_ *Txn, err error) {
	tx := &Txn{}
	defer func() {
		if err != nil {
			if rerr := tx.Undo(); rerr != nil {
				err = fmt.Errorf("%w (and undoing failed: %v)", err, rerr)
			}
		}
	}()
	if err := tx.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	staging, err := os.MkdirTemp(dir, StagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("create staging folder: %w", err)
	}
	tx.staging = staging
	for i, f := range files {
		if err := checkRel(f.Path); err != nil {
			return nil, err
		}
		if f.Mode.IsDir() {
			continue
		}
		p := filepath.Join(staging, "new", fmt.Sprint(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, f.Data, f.Mode.Perm()); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.Path, err)
		}
		// WriteFile's mode is filtered by the umask; the recorded mode must hold exactly.
		if err := os.Chmod(p, f.Mode.Perm()); err != nil {
			return nil, err
		}
	}
	for _, r := range remove {
		if err := checkRel(r); err != nil {
			return nil, err
		}
		if err := tx.backup(filepath.Join(dir, filepath.FromSlash(r))); err != nil {
			return nil, fmt.Errorf("remove %s: %w", r, err)
		}
	}
	for i, f := range files {
		target := filepath.Join(dir, filepath.FromSlash(f.Path))
		if f.Mode.IsDir() {
			// A folder entry sets the mode of a folder the files below it need.
			if err := tx.mkdirAll(target); err != nil {
				return nil, fmt.Errorf("create folder %s: %w", f.Path, err)
			}
			if err := os.Chmod(target, f.Mode.Perm()); err != nil {
				return nil, err
			}
			continue
		}
		if err := tx.mkdirAll(filepath.Dir(target)); err != nil {
			return nil, fmt.Errorf("create folder for %s: %w", f.Path, err)
		}
		if err := tx.backup(target); err != nil {
			return nil, fmt.Errorf("replace %s: %w", f.Path, err)
		}
		if err := os.Rename(filepath.Join(staging, "new", fmt.Sprint(i)), target); err != nil {
			return nil, fmt.Errorf("move %s into place: %w", f.Path, err)
		}
		tx.placed = append(tx.placed, target)
	}
	return tx, nil
}

// StagingPrefix starts the name of the staging folder Apply makes inside the target.
const StagingPrefix = ".opsready-staging-"

func checkRel(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(filepath.Clean(p), "..") || strings.Contains(p, "\\") {
		return fmt.Errorf("refusing to write outside the project: %q", p)
	}
	return nil
}

// Txn records what Apply changed so that it can be undone in reverse order.
type Txn struct {
	staging string
	created []string          // folders Write created, outermost first
	placed  []string          // files moved into place
	backups map[string]string // original path -> where it was moved
	order   []string          // backed-up paths in order
}

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

// backup moves an existing path aside into the staging folder; a missing path is fine.
func (t *Txn) backup(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if t.backups == nil {
		t.backups = map[string]string{}
	}
	dst := filepath.Join(t.staging, "old", fmt.Sprint(len(t.order)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(p, dst); err != nil {
		return err
	}
	t.backups[p] = dst
	t.order = append(t.order, p)
	return nil
}

// Done keeps the change and removes the staging folder with the replaced originals.
func (t *Txn) Done() error {
	return os.RemoveAll(t.staging)
}

// Undo puts back everything as it was before Apply.
func (t *Txn) Undo() error {
	var errs []error
	for i := len(t.placed) - 1; i >= 0; i-- {
		if err := os.Remove(t.placed[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for i := len(t.order) - 1; i >= 0; i-- {
		p := t.order[i]
		if err := os.Rename(t.backups[p], p); err != nil {
			errs = append(errs, err)
		}
	}
	if t.staging != "" {
		if err := os.RemoveAll(t.staging); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(t.created) - 1; i >= 0; i-- {
		if err := os.Remove(t.created[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
