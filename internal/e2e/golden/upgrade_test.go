package golden

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/generator"
	"github.com/opsready/opsready/internal/project"
)

// upgradeCase is golden/<blueprint>/<version>/upgrade-*/upgrade.yaml: generate at From with
// Answers, apply edit.patch (the team's recorded edits), upgrade to the case's version with
// Set, then compare the tree with want/ and the report with want-report.txt.
type upgradeCase struct {
	From    string            `yaml:"from"`
	Answers map[string]string `yaml:"answers"`
	Set     map[string]string `yaml:"set"`
}

func TestGoldenUpgrade(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(goldenRoot, "*", "*", "upgrade-*", "upgrade.yaml"))
	must(t, err)
	if len(cases) == 0 {
		t.Fatal("no upgrade golden cases")
	}
	git := requireTool(t, "git")
	for _, spec := range cases {
		dir := filepath.Dir(spec)
		version := filepath.Base(filepath.Dir(dir))
		blueprint := filepath.Base(filepath.Dir(filepath.Dir(dir)))
		t.Run(blueprint+"/"+version+"/"+filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(spec)
			must(t, err)
			var c upgradeCase
			must(t, yaml.Unmarshal(raw, &c))
			proj := filepath.Join(t.TempDir(), "proj")
			if _, err := project.Create(project.CreateOptions{Dir: proj, Blueprint: blueprint + "@" + c.From, Set: c.Answers, Defaults: true, Git: true, Version: "golden"}); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) {
				t.Helper()
				cmd := exec.Command(git, args...)
				cmd.Dir = proj
				cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			if patch, err := filepath.Abs(filepath.Join(dir, "edit.patch")); err == nil {
				if _, err := os.Stat(patch); err == nil {
					run("apply", "--whitespace=nowarn", patch)
					run("add", "-A")
					run("commit", "-q", "-m", "team edits")
				}
			}
			res, err := project.Upgrade(project.UpgradeOptions{Dir: proj, To: version, Set: c.Set, Version: "golden"})
			must(t, err)
			files := readTree(t, proj)
			report := upgradeReport(res)
			want := filepath.Join(dir, "want")
			if *updateGolden {
				writeWant(t, want, files)
				must(t, os.WriteFile(filepath.Join(dir, "want-report.txt"), []byte(report), 0o644))
				return
			}
			compareTree(t, want, files)
			wantReport, err := os.ReadFile(filepath.Join(dir, "want-report.txt"))
			if err != nil {
				t.Fatalf("%v (run `make golden`)", err)
			}
			if string(wantReport) != report {
				t.Errorf("report differs:\n%s", lineDiff(string(wantReport), report))
			}
		})
	}
}

// upgradeReport is the plan as one line a file: action, path and note.
func upgradeReport(res *project.Upgraded) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s -> %s, %d conflicts\n", res.Blueprint, res.From, res.To, res.Conflicts)
	for _, c := range res.Changes {
		line := fmt.Sprintf("%-12s %s", c.Action, c.Path)
		if c.From != "" {
			line += " (renamed from " + c.From + ")"
		}
		if c.Note != "" {
			line += "  # " + c.Note
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// readTree reads a project as generated files, leaving out .git and the local files
// (secrets, .env) that differ on every run.
func readTree(t *testing.T, dir string) generator.Files {
	t.Helper()
	var files generator.Files
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == "secrets" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == ".env" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if fi.Mode()&0o100 != 0 {
			mode = 0o755
		}
		files = append(files, generator.File{Path: rel, Data: data, Mode: mode})
		return nil
	})
	must(t, err)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files
}
