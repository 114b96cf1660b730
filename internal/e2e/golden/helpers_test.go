package golden

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/generator"
)

// requireTool returns the path of an external program; under CI a missing one fails the test.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (run `make tools`)", name)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeWant replaces dir with files.
func writeWant(t *testing.T, dir string, files generator.Files) {
	t.Helper()
	must(t, os.RemoveAll(dir))
	must(t, generator.Write(dir, files, nil))
}

// compareTree reports missing, extra and differing files (content and executable bit).
func compareTree(t *testing.T, dir string, files generator.Files) {
	t.Helper()
	got := map[string]generator.File{}
	for _, f := range files {
		got[f.Path] = f
	}
	onDisk := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		onDisk[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v (run `make golden`)", dir, err)
	}
	var problems []string
	for p := range onDisk {
		if _, ok := got[p]; !ok {
			problems = append(problems, "no longer generated: "+p)
		}
	}
	for p, f := range got {
		if !onDisk[p] {
			problems = append(problems, "new file not in golden: "+p)
			continue
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		data, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, f.Data) {
			problems = append(problems, fmt.Sprintf("%s differs:\n%s", p, lineDiff(string(data), string(f.Data))))
		}
		fi, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		if (fi.Mode()&0o100 != 0) != (f.Mode&0o100 != 0) {
			problems = append(problems, fmt.Sprintf("%s: executable bit differs (want %v, got %v)", p, fi.Mode(), f.Mode))
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Log("if the change is intended, run `make golden` and read the diff before committing")
	}
}

// lineDiff shows the first few differing lines of two texts as -want +got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 8; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "  line %d:\n  -%s\n  +%s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
