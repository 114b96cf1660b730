package project

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// indexPath is where the journal puts a staged git index, relative to the project.
const indexPath = ".git/index"

// stageUnmerged returns the git index with the conflicted paths recorded as unmerged (stage
// 1 base, 2 ours, 3 theirs), encoded, for the write's journal to move into place with the
// files. ok is false when there is no repository of its own in dir (`--force`, or a worktree
// whose .git is a file: then recordUnmerged runs after the write instead). The blobs are
// written and fsynced now: unreferenced objects are harmless if the write is undone.
func stageUnmerged(dir string, files []unmergedFile) (data []byte, ok bool, err error) {
	fi, err := os.Lstat(filepath.Join(dir, ".git"))
	if err != nil || !fi.IsDir() {
		return nil, false, nil
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, false, nil
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return nil, false, fmt.Errorf("read the git index: %w", err)
	}
	for _, f := range files {
		kept := idx.Entries[:0]
		for _, e := range idx.Entries {
			if e.Name != f.path {
				kept = append(kept, e)
			}
		}
		idx.Entries = kept
		for _, st := range []struct {
			stage index.Stage
			s     side
		}{{index.AncestorMode, f.base}, {index.OurMode, f.ours}, {index.TheirMode, f.their}} {
			if !st.s.ok {
				continue
			}
			h, err := writeBlob(repo, st.s.data)
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", f.path, err)
			}
			// Loose objects are not fsynced by go-git; the journal must not point past them.
			obj := filepath.Join(dir, ".git", "objects", h.String()[:2], h.String()[2:])
			if err := syncFile(obj); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, false, err
			}
			mode := filemode.Regular
			if st.s.mode&0o100 != 0 {
				mode = filemode.Executable
			}
			idx.Entries = append(idx.Entries, &index.Entry{
				Name: f.path, Hash: h, Mode: mode, Stage: st.stage, Size: uint32(len(st.s.data)), ModifiedAt: time.Now(),
			})
		}
	}
	sortIndex(idx)
	var buf bytes.Buffer
	if err := index.NewEncoder(&buf).Encode(idx); err != nil {
		return nil, false, fmt.Errorf("encode the git index: %w", err)
	}
	return buf.Bytes(), true, nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
