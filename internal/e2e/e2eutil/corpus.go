package e2eutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusDir is the corpus of real compose projects: $OPSREADY_CORPUS, or
// shared/corpus/compose-projects beside the repository (a copy of shared/ lies beside the
// clone under CI too). Missing, it fails the test under CI and skips it elsewhere.
func CorpusDir(t testing.TB) string {
	t.Helper()
	d := RepoPath(t, filepath.Join("..", "shared", "corpus", "compose-projects"))
	if env := os.Getenv("OPSREADY_CORPUS"); env != "" {
		abs, err := filepath.Abs(env)
		if err != nil {
			t.Fatal(err)
		}
		d = abs
	}
	if _, err := os.Stat(d); err != nil {
		if InCI() {
			t.Fatalf("corpus missing: %v", err)
		}
		t.Skipf("corpus missing: %v", err)
	}
	return d
}

// CopyTree copies src into a new temp dir: the corpus is never touched in place.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}
