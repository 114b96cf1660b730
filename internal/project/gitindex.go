package project

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// unmergedFile is a conflicted path with its three sides.
type unmergedFile struct {
	path              string
	base, ours, their side
}

// recordUnmerged writes the conflicted paths into the git index as unmerged entries
// (stage 1 base, 2 ours, 3 theirs), as `git merge` does, so that `git status`,
// `git mergetool` and IDEs show them as conflicts.
func recordUnmerged(dir string, files []unmergedFile) error {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil // not a git repository (`--force`): the markers and the report are all there is
	}
	idx, err := repo.Storer.Index()
	if err != nil {
		return err
	}
	for _, f := range files {
		kept := idx.Entries[:0]
		for _, e := range idx.Entries {
			if e.Name != f.path {
				kept = append(kept, e)
			}
		}
		idx.Entries = kept
		for stage, s := range map[index.Stage]side{index.AncestorMode: f.base, index.OurMode: f.ours, index.TheirMode: f.their} {
			if !s.ok {
				continue
			}
			h, err := writeBlob(repo, s.data)
			if err != nil {
				return fmt.Errorf("%s: %w", f.path, err)
			}
			mode := filemode.Regular
			if s.mode&0o100 != 0 {
				mode = filemode.Executable
			}
			idx.Entries = append(idx.Entries, &index.Entry{
				Name: f.path, Hash: h, Mode: mode, Stage: stage, Size: uint32(len(s.data)), ModifiedAt: time.Now(),
			})
		}
	}
	sortIndex(idx)
	return repo.Storer.SetIndex(idx)
}

func writeBlob(repo *git.Repository, data []byte) (plumbing.Hash, error) {
	obj := repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// sortIndex orders entries by name, then stage, as git requires.
func sortIndex(idx *index.Index) {
	sort.SliceStable(idx.Entries, func(i, j int) bool {
		a, b := idx.Entries[i], idx.Entries[j]
		return a.Name < b.Name || (a.Name == b.Name && a.Stage < b.Stage)
	})
}
