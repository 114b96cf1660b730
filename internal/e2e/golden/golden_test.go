package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/project"
)

// Named -update-golden, not -update: test libraries register their own -update flag.
var updateGolden = flag.Bool("update-golden", false, "rewrite golden/**/want from the current blueprints")

const (
	goldenRoot = "../../../golden"
	// newestDir holds the case set; it is rendered at whichever version is the newest, so a
	// new version moves no files.
	newestDir    = "newest"
	defaultsCase = "defaults"
	defaultsText = "# every answer at its default\n"
)

// goldenCase is one folder with answers.yaml and want/.
type goldenCase struct {
	Blueprint, Version, Name, Dir string
}

// goldenCases lists, for every embedded blueprint, the defaults case of every version and the
// case set at the newest version. Folders that fit neither (a case left in an older version's
// folder, a version that no longer exists) fail the test rather than linger unchecked.
func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	lib := blueprints.Embedded()
	names, err := lib.Names()
	must(t, err)
	var cases []goldenCase
	for _, bp := range names {
		versions, err := lib.Versions(bp)
		must(t, err)
		newest := versions[len(versions)-1]
		for _, v := range versions {
			cases = append(cases, goldenCase{bp, v, defaultsCase, filepath.Join(goldenRoot, bp, v, defaultsCase)})
		}
		set, err := filepath.Glob(filepath.Join(goldenRoot, bp, newestDir, "*", "answers.yaml"))
		must(t, err)
		if len(set) == 0 {
			t.Errorf("golden/%s/%s/ has no cases: the newest version needs its case set", bp, newestDir)
		}
		for _, a := range set {
			dir := filepath.Dir(a)
			cases = append(cases, goldenCase{bp, newest, filepath.Base(dir), dir})
		}
		checkFolders(t, bp, versions)
	}
	return cases
}

// checkFolders reports folders of golden/<bp>/ that no test reads.
func checkFolders(t *testing.T, bp string, versions []string) {
	t.Helper()
	top, err := os.ReadDir(filepath.Join(goldenRoot, bp))
	must(t, err)
	for _, e := range top {
		switch {
		case e.Name() == newestDir:
			continue
		case !slices.Contains(versions, e.Name()):
			t.Errorf("golden/%s/%s: not a version of %s", bp, e.Name(), bp)
			continue
		}
		cases, err := os.ReadDir(filepath.Join(goldenRoot, bp, e.Name()))
		must(t, err)
		for _, c := range cases {
			if c.Name() != defaultsCase && !strings.HasPrefix(c.Name(), "upgrade-") {
				t.Errorf("golden/%s/%s/%s: a version folder holds only %s and upgrade-* cases; the case set is golden/%s/%s/",
					bp, e.Name(), c.Name(), defaultsCase, bp, newestDir)
			}
		}
	}
}

// renderCase renders a golden case's answers as `new --answers answers.yaml --defaults` would.
func renderCase(t *testing.T, c goldenCase) generator.Files {
	t.Helper()
	bp, err := blueprints.Embedded().Open(c.Blueprint, c.Version)
	must(t, err)
	answers, err := resolveCase(bp, c)
	if err != nil {
		t.Fatalf("%s: %v", c.Dir, err)
	}
	files, err := project.RenderProject(bp, answers, "golden")
	if err != nil {
		t.Fatalf("%s: %v", c.Dir, err)
	}
	return files
}

// resolveCase resolves a case's answers; a defaults case not yet written (a new version before
// `make golden`) has no answers file and needs none.
func resolveCase(bp *blueprints.Blueprint, c goldenCase) (map[string]any, error) {
	file := filepath.Join(c.Dir, "answers.yaml")
	if _, err := os.Stat(file); err != nil && c.Name == defaultsCase {
		file = ""
	}
	return project.ResolveAnswers(bp, project.AnswerInputs{
		AnswersFile: file, Defaults: true,
		Context: map[string]any{"_dir": c.Name},
	})
}

// TestGolden compares every case's rendered tree with its want/ folder; -update-golden rewrites
// them and adds the defaults case of a new version.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.Blueprint+"/"+c.Version+"/"+c.Name, func(t *testing.T) {
			t.Parallel()
			answers := filepath.Join(c.Dir, "answers.yaml")
			if _, err := os.Stat(answers); err != nil && c.Name == defaultsCase {
				if !*updateGolden {
					t.Fatalf("%v: every version keeps a defaults case (run `make golden`)", err)
				}
				must(t, os.MkdirAll(c.Dir, 0o755))
				must(t, os.WriteFile(answers, []byte(defaultsText), 0o644))
			}
			files := renderCase(t, c)
			again := renderCase(t, c)
			if len(files) != len(again) {
				t.Fatalf("rendering is not deterministic: %d files, then %d", len(files), len(again))
			}
			for i := range files {
				if !bytes.Equal(files[i].Data, again[i].Data) || files[i].Path != again[i].Path {
					t.Fatalf("rendering is not deterministic: %s", files[i].Path)
				}
			}
			want := filepath.Join(c.Dir, "want")
			if *updateGolden {
				writeWant(t, want, files)
				return
			}
			compareTree(t, want, files)
		})
	}
}
