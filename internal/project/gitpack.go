package project

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// errNotPlain sends commitNew's caller to go-git's slower add, which handles any tree.
var errNotPlain = errors.New("not a plain tree")

// packObj is one object of the pack commitNew writes.
type packObj struct {
	typ  plumbing.ObjectType
	data []byte
	hash plumbing.Hash
}

func objHash(t plumbing.ObjectType, data []byte) plumbing.Hash {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", t.Bytes(), len(data))
	h.Write(data)
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out
}

// commitNew is commitAll for a repository it has just created: every object goes into one
// pack (two files instead of one per object and folder), hashed with crypto/sha1 once.
func commitNew(repo *git.Repository, wt *git.Worktree, dir, message string) (string, error) {
	return commitNewFrom(repo, wt, dir, message, nil)
}

// commitNewFrom is commitNew that takes the content of the files in written (project path ->
// bytes) from memory instead of reading them back: the files the caller has just written
// under the project's write lock. A file whose size on disk differs is read from disk.
func commitNewFrom(repo *git.Repository, wt *git.Worktree, dir, message string, written map[string][]byte) (string, error) {
	ps, err := readPatterns(dir, wt)
	if err != nil {
		return "", err
	}
	m := gitignore.NewMatcher(append(ps, wt.Excludes...))
	var objs []packObj
	var entries []*index.Entry
	seen := map[plumbing.Hash]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		segs := strings.Split(filepath.ToSlash(rel), "/")
		if d.IsDir() {
			if rel == ".git" || m.Match(segs, true) {
				return filepath.SkipDir
			}
			return nil
		}
		if m.Match(segs, false) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return errNotPlain // a symlink, say: go-git's own add handles it
		}
		data, ok := written[filepath.ToSlash(rel)]
		if !ok || int64(len(data)) != fi.Size() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		h := objHash(plumbing.BlobObject, data)
		if !seen[h] { // two files with one content are one object
			seen[h] = true
			objs = append(objs, packObj{plumbing.BlobObject, data, h})
		}
		mode := filemode.Regular
		if fi.Mode()&0o100 != 0 {
			mode = filemode.Executable
		}
		e := &index.Entry{Name: filepath.ToSlash(rel), Hash: h, Mode: mode, Size: uint32(fi.Size()), ModifiedAt: fi.ModTime()}
		statEntry(e, fi)
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	// Trees, innermost first.
	trees := map[string]*object.Tree{"": {}}
	var dirs []string
	for _, e := range entries {
		parent := ""
		for _, s := range strings.Split(path.Dir(e.Name), "/") {
			if s == "." {
				break
			}
			full := path.Join(parent, s)
			if _, ok := trees[full]; !ok {
				trees[full] = &object.Tree{}
				dirs = append(dirs, full)
				trees[parent].Entries = append(trees[parent].Entries, object.TreeEntry{Name: s, Mode: filemode.Dir})
			}
			parent = full
		}
		trees[parent].Entries = append(trees[parent].Entries, object.TreeEntry{Name: path.Base(e.Name), Mode: e.Mode, Hash: e.Hash})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	encodeTree := func(name string) (plumbing.Hash, error) {
		t := trees[name]
		for i, te := range t.Entries {
			if te.Mode == filemode.Dir {
				t.Entries[i].Hash = trees[path.Join(name, te.Name)].Hash
			}
		}
		sort.Slice(t.Entries, func(i, j int) bool {
			a, b := t.Entries[i].Name, t.Entries[j].Name
			if t.Entries[i].Mode == filemode.Dir {
				a += "/"
			}
			if t.Entries[j].Mode == filemode.Dir {
				b += "/"
			}
			return a < b
		})
		o := &plumbing.MemoryObject{}
		if err := t.Encode(o); err != nil {
			return plumbing.ZeroHash, err
		}
		data, err := readAll(o)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t.Hash = objHash(plumbing.TreeObject, data)
		if !seen[t.Hash] { // two empty-equal folders are one tree
			seen[t.Hash] = true
			objs = append(objs, packObj{plumbing.TreeObject, data, t.Hash})
		}
		return t.Hash, nil
	}
	for _, d := range dirs {
		if _, err := encodeTree(d); err != nil {
			return "", err
		}
	}
	root, err := encodeTree("")
	if err != nil {
		return "", err
	}
	sig := signature(repo)
	c := &object.Commit{Author: *sig, Committer: *sig, Message: message, TreeHash: root}
	o := &plumbing.MemoryObject{}
	if err := c.Encode(o); err != nil {
		return "", err
	}
	cdata, err := readAll(o)
	if err != nil {
		return "", err
	}
	ch := objHash(plumbing.CommitObject, cdata)
	objs = append(objs, packObj{plumbing.CommitObject, cdata, ch})
	if err := writePack(dir, objs); err != nil {
		return "", err
	}
	if err := repo.Storer.SetIndex(&index.Index{Version: 2, Entries: entries}); err != nil {
		return "", err
	}
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return "", err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(head.Target(), ch)); err != nil {
		return "", err
	}
	return ch.String(), nil
}

func readAll(o *plumbing.MemoryObject) ([]byte, error) {
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// writePack writes objs as .git/objects/pack/pack-<sum>.{pack,idx}, the index last (git only
// looks at packs with an index).
func writePack(dir string, objs []packObj) error {
	entries, err := packEntries(objs)
	if err != nil {
		return err
	}
	total := 12
	for _, e := range entries {
		total += len(e)
	}
	var buf bytes.Buffer
	buf.Grow(total + sha1.Size)
	buf.WriteString("PACK")
	binary.Write(&buf, binary.BigEndian, uint32(2))
	binary.Write(&buf, binary.BigEndian, uint32(len(objs)))
	w := new(idxfile.Writer)
	w.OnHeader(uint32(len(objs)))
	for i, o := range objs {
		pos := buf.Len()
		buf.Write(entries[i])
		w.Add(o.hash, uint64(pos), crc32.ChecksumIEEE(entries[i]))
	}
	sum := sha1.Sum(buf.Bytes())
	buf.Write(sum[:])
	var ph plumbing.Hash
	copy(ph[:], sum[:])
	if err := w.OnFooter(ph); err != nil {
		return err
	}
	idx, err := w.Index()
	if err != nil {
		return err
	}
	var ib bytes.Buffer
	if _, err := idxfile.NewEncoder(&ib).Encode(idx); err != nil {
		return err
	}
	pdir := filepath.Join(dir, ".git", "objects", "pack")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(pdir, "pack-"+ph.String())
	if err := os.WriteFile(base+".pack", buf.Bytes(), 0o444); err != nil {
		return err
	}
	return os.WriteFile(base+".idx", ib.Bytes(), 0o444)
}
