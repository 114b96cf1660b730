package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
)

// The pack commitNew writes holds what go-git's own add and commit would: the same tree,
// a repository git finds sound, and an index that shows a clean work tree.
func TestGitPackMatchesGoGit(t *testing.T) {
	tree := func() string {
		dir := filepath.Join(t.TempDir(), "p")
		if _, err := Create(CreateOptions{Dir: dir, Blueprint: "webapp", Set: map[string]string{"cache": "redis", "ci": "both"}, Defaults: true, Version: "test"}); err != nil {
			t.Fatal(err)
		}
		// Awkward content: duplicates, an executable, two equal folders, non-ASCII names.
		write(t, dir, "a/x/same.txt", "same\n")
		write(t, dir, "b/x/same.txt", "same\n")
		write(t, dir, "ünï/cödé.txt", "same\n")
		write(t, dir, "run.sh", "#!/bin/sh\n")
		if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	packed, loose := tree(), tree()
	if _, err := git.PlainInit(loose, false); err != nil { // not fresh: go-git's path
		t.Fatal(err)
	}
	var hashes [2]string
	for i, dir := range []string{packed, loose} {
		if _, err := commitAll(dir, "generated"); err != nil {
			t.Fatal(err)
		}
		hashes[i] = strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD^{tree}"))
	}
	if hashes[0] != hashes[1] {
		t.Errorf("tree %s written as a pack, %s by go-git", hashes[0], hashes[1])
	}
	if packs, _ := filepath.Glob(filepath.Join(packed, ".git/objects/pack/*.pack")); len(packs) != 1 {
		t.Errorf("packs: %v", packs)
	}
	gitCmd(t, packed, "fsck", "--strict", "--no-dangling")
	if st := gitCmd(t, packed, "status", "--porcelain"); st != "" {
		t.Errorf("status after the commit:\n%s", st)
	}
	if ls := gitCmd(t, packed, "ls-files", "-s", "run.sh"); !strings.HasPrefix(ls, "100755 ") {
		t.Errorf("run.sh: %s", ls)
	}
}
