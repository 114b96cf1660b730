package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/project"
)

// Named -update-golden, not -update: test libraries register their own -update flag.
var updateGolden = flag.Bool("update-golden", false, "rewrite golden/*/*/*/want from the current blueprints")

const goldenRoot = "../../golden"

// goldenCase is one golden/<blueprint>/<version>/<case> folder.
type goldenCase struct {
	Blueprint, Version, Name, Dir string
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(goldenRoot, "*", "*", "*", "answers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, a := range dirs {
		dir := filepath.Dir(a)
		ver := filepath.Dir(dir)
		cases = append(cases, goldenCase{Blueprint: filepath.Base(filepath.Dir(ver)), Version: filepath.Base(ver), Name: filepath.Base(dir), Dir: dir})
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases found")
	}
	return cases
}

// renderCase renders a golden case's answers as `new --answers answers.yaml --defaults` would.
func renderCase(t *testing.T, c goldenCase) (generator.Files, map[string]any) {
	t.Helper()
	bp, err := blueprints.Embedded().Open(c.Blueprint, c.Version)
	if err != nil {
		t.Fatal(err)
	}
	answers, err := project.ResolveAnswers(bp, project.AnswerInputs{
		AnswersFile: filepath.Join(c.Dir, "answers.yaml"), Defaults: true,
		Context: map[string]any{"_dir": c.Name},
	})
	if err != nil {
		t.Fatalf("%s: %v", c.Dir, err)
	}
	files, err := project.RenderProject(bp, answers, "golden")
	if err != nil {
		t.Fatalf("%s: %v", c.Dir, err)
	}
	return files, answers
}

// TestGolden compares every case's rendered tree with its want/ folder; -update-golden rewrites them.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.Blueprint+"/"+c.Version+"/"+c.Name, func(t *testing.T) {
			files, _ := renderCase(t, c)
			again, _ := renderCase(t, c)
			for i := range files {
				if !bytes.Equal(files[i].Data, again[i].Data) || files[i].Path != again[i].Path {
					t.Fatalf("rendering is not deterministic: %s", files[i].Path)
				}
			}
			want := filepath.Join(c.Dir, "want")
			if *updateGolden {
				if err := os.RemoveAll(want); err != nil {
					t.Fatal(err)
				}
				if err := generator.Write(want, files, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			compareTree(t, want, files)
		})
	}
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
		fi, _ := os.Stat(full)
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

// TestGoldenCasesCoverEveryOption: each version's golden cases use every value of every
// select and multiselect question, and every pair of frontend, backend and database (webapp).
func TestGoldenCasesCoverEveryOption(t *testing.T) {
	seen := map[string]map[string]bool{} // blueprint@version -> "key=value"
	combos := map[string]map[string]bool{}
	for _, c := range goldenCases(t) {
		ref := c.Blueprint + "@" + c.Version
		if seen[ref] == nil {
			seen[ref], combos[ref] = map[string]bool{}, map[string]bool{}
		}
		_, answers := renderCase(t, c)
		for k, v := range answers {
			if list, ok := v.([]string); ok {
				for _, x := range list {
					seen[ref][k+"="+x] = true
				}
				continue
			}
			seen[ref][k+"="+fmt.Sprint(v)] = true
		}
		f, b, d := answers["frontend"], answers["backend"], answers["db"]
		for _, pair := range []string{fmt.Sprintf("f=%v b=%v", f, b), fmt.Sprintf("f=%v d=%v", f, d), fmt.Sprintf("b=%v d=%v", b, d)} {
			combos[ref][pair] = true
		}
	}
	for ref, got := range seen {
		bp, err := blueprints.Embedded().Open(blueprints.ParseRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{}
		for _, q := range bp.Questions {
			for _, o := range q.Options {
				want[q.Key] = append(want[q.Key], o.Value)
				if !got[q.Key+"="+o.Value] {
					t.Errorf("%s: no golden case has %s=%s", ref, q.Key, o.Value)
				}
			}
		}
		if bp.Name == "webapp" {
			for _, pair := range [][2]string{{"frontend", "backend"}, {"frontend", "db"}, {"backend", "db"}} {
				for _, x := range want[pair[0]] {
					for _, y := range want[pair[1]] {
						if !combos[ref][pair[0][:1]+"="+x+" "+pair[1][:1]+"="+y] {
							t.Errorf("%s: no golden case with %s=%s and %s=%s", ref, pair[0], x, pair[1], y)
						}
					}
				}
			}
		}
	}
}
