package project

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/prompts"
)

// Rendering on several goroutines gives every webapp version's files, byte for byte and
// with their modes, policies and sources, as rendering on one does, for random answer sets.
func TestSpdParallelRenderIsIdentical(t *testing.T) {
	lib := blueprints.Embedded()
	versions, err := lib.Versions("webapp")
	if err != nil || len(versions) == 0 {
		t.Fatalf("versions %v: %v", versions, err)
	}
	for _, v := range versions {
		bp, err := lib.Open("webapp", v)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 0))
		compared := 0
		for i := range 8 {
			set := identitySets(bp.Questions, r)
			if i == 0 {
				set = maps.Clone(spdMax)
			}
			for k := range set { // keys an older version does not ask
				if !slices.ContainsFunc(bp.Questions, func(q prompts.Question) bool { return q.Key == k }) {
					delete(set, k)
				}
			}
			answers, err := ResolveAnswers(bp, AnswerInputs{Set: set, Defaults: true, Context: map[string]any{"_dir": "same"}})
			if err != nil {
				continue // a random set this version does not take
			}
			var out [2]generator.Files
			var errs [2]error
			for k, procs := range []int{1, 4} {
				old := runtime.GOMAXPROCS(procs)
				out[k], errs[k] = generator.Render(bp.Files, bp.Rules, TemplateData(bp, answers))
				runtime.GOMAXPROCS(old)
			}
			if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) {
				t.Fatalf("%s case %d: error %v serially, %v in parallel", v, i, errs[0], errs[1])
			}
			if errs[0] != nil {
				continue // the same error either way
			}
			if !reflect.DeepEqual(out[0], out[1]) {
				t.Fatalf("%s case %d %v: the parallel render differs:\n%s", v, i, set, treeDiff(out[0], out[1], [2]string{"serial", "parallel"}))
			}
			compared++
		}
		if compared < 4 {
			t.Errorf("%s: only %d answer sets rendered", v, compared)
		}
	}
}

// The pack's entries are the bytes compressing the objects one after another gives.
func TestSpdPackEntriesAreSerialBytes(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	r := rand.New(rand.NewPCG(3, 4))
	var objs []packObj
	for i := range 300 {
		data := make([]byte, r.IntN(5000)*(i%3))
		for k := range data {
			data[k] = byte('a' + r.IntN(4))
		}
		objs = append(objs, packObj{plumbing.ObjectType(1 + i%3), data, objHash(plumbing.BlobObject, data)})
	}
	got, err := packEntries(objs)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	for i, o := range objs {
		var b bytes.Buffer
		size := len(o.data)
		c := byte(o.typ)<<4 | byte(size&0x0f)
		for size >>= 4; size != 0; size >>= 7 {
			b.WriteByte(c | 0x80)
			c = byte(size & 0x7f)
		}
		b.WriteByte(c)
		zw.Reset(&b)
		zw.Write(o.data)
		zw.Close()
		if !bytes.Equal(got[i], b.Bytes()) {
			t.Fatalf("object %d (%d bytes): entry differs", i, len(o.data))
		}
	}
}

// commitWritten commits the tree commitAll commits, taking from memory what was written and
// from disk what changed since (or was not written).
func TestSpdCommitWrittenMatchesDisk(t *testing.T) {
	bp, err := blueprints.Embedded().Open("webapp", "")
	if err != nil {
		t.Fatal(err)
	}
	answers, err := ResolveAnswers(bp, AnswerInputs{Set: spdMax, Defaults: true, Context: map[string]any{"_dir": "spd"}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := RenderProject(bp, answers, "test")
	if err != nil {
		t.Fatal(err)
	}
	var trees [2]string
	for i := range trees {
		dir := filepath.Join(t.TempDir(), "p")
		if err := generator.Write(dir, files, nil); err != nil {
			t.Fatal(err)
		}
		// Changed on disk after the write: the memory copy must not be used.
		write(t, dir, "README.md", "changed\n")
		write(t, dir, "extra.txt", "not written by new\n")
		var h string
		if i == 0 {
			h, err = commitAll(dir, "m")
		} else {
			h, err = commitWritten(dir, "m", files)
		}
		if err != nil {
			t.Fatal(err)
		}
		repo, err := git.PlainOpen(dir)
		if err != nil {
			t.Fatal(err)
		}
		c, err := repo.CommitObject(plumbing.NewHash(h))
		if err != nil {
			t.Fatal(err)
		}
		trees[i] = c.TreeHash.String()
		if i == 1 {
			gitCmd(t, dir, "fsck", "--strict", "--no-dangling")
			if st := gitCmd(t, dir, "status", "--porcelain"); st != "" {
				t.Errorf("status after the commit:\n%s", st)
			}
			if got := gitCmd(t, dir, "show", "HEAD:README.md"); !strings.HasPrefix(got, "changed") {
				t.Errorf("README.md committed as %q", got)
			}
		}
	}
	if trees[0] != trees[1] {
		t.Errorf("tree %s from disk, %s with the written files", trees[0], trees[1])
	}
}

// readPatternsPlain reads the patterns go-git's ReadPatterns reads, in its order and with its
// domains, for trees with ignore files at every depth (deep ones share their path's array
// with their siblings in go-git), and gives way to it for a symbolic link.
func TestSpdReadPatternsMatchesGoGit(t *testing.T) {
	dir := t.TempDir()
	if _, err := git.PlainInit(dir, false); err != nil {
		t.Fatal(err)
	}
	write(t, dir, ".gitignore", "# comment\n\n/ignored/\n*.log\n!keep.log\n")
	write(t, dir, ".git/info/exclude", "secret.txt\n")
	write(t, dir, "ignored/.gitignore", "!x\n")
	for _, d := range []string{"a", "a/b", "a/b/c", "a/b/c/d1", "a/b/c/d2", "a/b/c/d3", "a/b/c/d1/e/f1", "a/b/c/d1/e/f2", "z"} {
		write(t, dir, d+"/.gitignore", "in-"+strings.ReplaceAll(d, "/", "-")+"\n/rooted\n!neg\n")
		write(t, dir, d+"/file.txt", "x\n")
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	want, err := gitignore.ReadPatterns(wt.Filesystem, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := readPatternsPlain(dir, nil)
	if err != nil || !ok {
		t.Fatalf("ok %v, err %v", ok, err)
	}
	if len(want) < 20 || !reflect.DeepEqual(got, want) {
		t.Errorf("patterns differ:\n%s\ngo-git:\n%s", spdPatterns(got), spdPatterns(want))
	}
	for _, name := range []string{".GIT.", "aux.d", "Com1", "a b", "ü", "git~1"} {
		if plainName(name) {
			t.Errorf("plainName(%q)", name)
		}
	}
	for _, name := range []string{".github", ".gitlab", "auxiliary", "console", "a.b-c_d"} {
		if !plainName(name) {
			t.Errorf("!plainName(%q)", name)
		}
	}
	if err := os.Symlink("a", filepath.Join(dir, "z", "link")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := readPatternsPlain(dir, nil); ok || err != nil {
		t.Errorf("a tree with a symbolic link: ok %v, err %v", ok, err)
	}
}

func spdPatterns(ps []gitignore.Pattern) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%+v\n", reflect.ValueOf(p).Elem().Interface())
	}
	return b.String()
}
