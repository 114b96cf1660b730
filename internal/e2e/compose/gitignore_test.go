package compose

import (
	"bytes"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestGitignore asks git itself which paths of a generated project it ignores: local settings,
// secrets, host logs and build outputs are ignored; every generated file (the lock file and
// .env.example included) is not.
func TestGitignore(t *testing.T) {
	gitPath := e2eutil.RequireTool(t, "git")
	for _, set := range []map[string]string{
		{"frontend": "react", "backend": "node", "db": "mariadb", "cache": "redis"},
		{"frontend": "static", "backend": "python"},
		{"frontend": "none", "backend": "go"},
	} {
		dir := e2eutil.Generate(t, set)
		git := func(stdin string, args ...string) (string, error) {
			cmd := exec.Command(gitPath, args...)
			cmd.Dir = dir
			cmd.Stdin = strings.NewReader(stdin)
			var out bytes.Buffer
			cmd.Stdout = &out
			err := cmd.Run()
			return out.String(), err
		}
		if _, err := git("", "init", "-q"); err != nil {
			t.Fatalf("git init: %v", err)
		}

		var generated []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			switch {
			case d.IsDir() && (rel == ".git" || rel == "secrets"):
				return filepath.SkipDir
			case !d.IsDir() && rel != ".env":
				generated = append(generated, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// check-ignore prints the ignored paths (and exits 1 when there are none).
		if out, _ := git(strings.Join(generated, "\n")+"\n", "check-ignore", "--no-index", "--stdin"); out != "" {
			t.Errorf("%v: generated files are git-ignored:\n%s", set, out)
		}

		for _, p := range []string{".env", ".env.local", "secrets/db_password", "var/log/traefik/access.log",
			"var/log/ops/backup.log", "frontend/node_modules/x/index.js", "frontend/dist/index.html",
			"backend/__pycache__/app.cpython-313.pyc", "backend/.venv/bin/python"} {
			if _, err := git("", "check-ignore", "-q", "--no-index", p); err != nil {
				t.Errorf("%v: %s is not git-ignored", set, p)
			}
		}
		for _, p := range []string{".opsready.yaml", ".env.example", "compose.yaml", "ops/smoke/smoke.sh", "backend/migrations/0001_create_items.sql"} {
			if _, err := git("", "check-ignore", "-q", "--no-index", p); err == nil {
				t.Errorf("%v: %s is git-ignored", set, p)
			}
		}
	}
}
