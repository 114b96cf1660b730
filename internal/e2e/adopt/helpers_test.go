package adopt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/opsready/opsready/internal/adopt"
	"github.com/opsready/opsready/internal/check"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/internal/project"
)

func corpusDir(t testing.TB) string { return e2eutil.CorpusDir(t) }

// corpusProjects lists the corpus projects by name.
func corpusProjects(t testing.TB) []string {
	var out []string
	for _, n := range e2eutil.ReadDirNames(t, corpusDir(t)) {
		if fi, err := os.Stat(filepath.Join(corpusDir(t), n)); err == nil && fi.IsDir() {
			out = append(out, n)
		}
	}
	return out
}

// copyCorpus copies one corpus project into a fresh temp dir (the corpus is read-only).
func copyCorpus(t testing.TB, name string) string {
	return e2eutil.CopyTree(t, filepath.Join(corpusDir(t), name))
}

// adopted is a corpus project after `adopt --defaults`, with what adopt saw.
type adopted struct {
	Dir    string
	Before map[string]string // the team's files (path -> sha256) before adopt
	Plan   *adopt.Plan
	Result *project.Adopted
}

// adoptCorpus copies a corpus project and adopts it with defaults, as `opsready adopt
// --defaults DIR` does (set: extra answers, e.g. offsite).
func adoptCorpus(t testing.TB, name string, set map[string]string) *adopted {
	t.Helper()
	return adoptDir(t, copyCorpus(t, name), set)
}

// adoptDir adopts the project in dir (a copy the test may have added team files to) with
// defaults, as `opsready adopt --defaults DIR` does.
func adoptDir(t testing.TB, dir string, set map[string]string) *adopted {
	t.Helper()
	a := &adopted{Dir: dir, Before: treeHashes(t, dir)}
	p, files, err := check.LoadProject(context.Background(), dir, nil, nil, nil)
	if err != nil {
		t.Fatalf("%s: load: %v", dir, err)
	}
	if a.Plan, err = detectFor(p, dir, files); err != nil {
		t.Fatalf("%s: detect: %v", dir, err)
	}
	a.Result, err = project.Adopt(project.AdoptOptions{
		Dir: dir, Detected: a.Plan.Record, Fixed: a.Plan.Fixed, Set: set, Defaults: true,
		Version: "test", Local: a.Plan.Local,
	})
	if err != nil {
		t.Fatalf("%s: adopt: %v", dir, err)
	}
	return a
}

// treeHashes is every regular file below dir, by slash path, with its sha256 and mode.
func treeHashes(t testing.TB, dir string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:]) + " " + fi.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// detectFor runs detection and planning on a loaded project.
func detectFor(p *types.Project, dir string, files []string) (*adopt.Plan, error) {
	det, err := adopt.Detect(p, dir, files)
	if err != nil {
		return nil, err
	}
	return adopt.MakePlan(det, p)
}
