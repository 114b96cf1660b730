package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mvdan.cc/sh/v3/syntax"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// scriptVariants are answer sets that together produce every shell script the blueprint has.
var scriptVariants = []map[string]string{
	{"frontend": "react", "backend": "go", "db": "postgres", "cache": "none", "tls": "letsencrypt"},
	{"frontend": "static", "backend": "python", "db": "mariadb", "cache": "redis", "tls": "none"},
	{"frontend": "none", "backend": "node", "db": "postgres", "cache": "redis", "tls": "none"},
	{"frontend": "react", "backend": "node", "db": "mariadb", "cache": "none", "tls": "letsencrypt",
		"name": "it-s", "domain": "shop.example.org", "deploy_dir": "/opt/shop_app.1"},
	// The backup scripts of every database method and off-site target.
	{"db": "postgres", "cache": "redis", "db_backup_method": "physical", "offsite": "s3"},
	{"db": "mariadb", "cache": "redis", "db_backup_method": "physical", "offsite": "sftp"},
	{"db": "postgres", "cache": "none", "db_backup_method": "logical", "offsite": "none"},
	{"db": "mariadb", "cache": "none", "db_backup_method": "physical", "offsite": "none"},
}

// TestScriptsLint runs shellcheck on every generated *.sh and parses it with mvdan.cc/sh in
// the dialect its shebang names.
func TestScriptsLint(t *testing.T) {
	shellcheck := e2eutil.RequireTool(t, "shellcheck")
	for i, set := range scriptVariants {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			scripts := findScripts(t, dir)
			if len(scripts) == 0 || !slices.Contains(scripts, "ops/smoke/smoke.sh") {
				t.Fatalf("generated scripts %v, want at least ops/smoke/smoke.sh", scripts)
			}
			for _, rel := range scripts {
				path := filepath.Join(dir, rel)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode()&0o111 == 0 {
					t.Errorf("%s is not executable (mode %v)", rel, fi.Mode())
				}
				lang, ok := shebangLang(b)
				if !ok {
					t.Errorf("%s: no bash or sh shebang: %q", rel, firstLine(b))
					continue
				}
				if _, err := syntax.NewParser(syntax.Variant(lang)).Parse(bytes.NewReader(b), rel); err != nil {
					t.Errorf("%s does not parse as %s: %v", rel, lang, err)
				}
			}
			cmd := exec.Command(shellcheck, append([]string{"--external-sources", "--format=gcc"}, scripts...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck %v: %v\n%s", scripts, err, out)
			}
		})
	}
}

// findScripts returns the *.sh files under dir, relative to it, outside node_modules.
func findScripts(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".sh") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func shebangLang(b []byte) (syntax.LangVariant, bool) {
	switch line := firstLine(b); {
	case line == "#!/usr/bin/env bash", line == "#!/bin/bash":
		return syntax.LangBash, true
	case line == "#!/bin/sh", line == "#!/usr/bin/env sh":
		return syntax.LangPOSIX, true
	}
	return 0, false
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// fakeApp serves the endpoints the smoke test checks, the way the stubs behind the proxy do.
type fakeApp struct {
	mu       sync.Mutex
	items    map[int]string
	html     bool // serve a frontend at /
	ready    bool // /readyz answers 200
	readyDoc bool // /readyz answers the frontend's index.html instead (no /readyz route)
	posts    []string
}

func (a *fakeApp) handler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case a.readyDoc:
			fmt.Fprint(w, "<!doctype html><html><body>app</body></html>\n")
		case a.ready:
			writeJSON(w, 200, map[string]any{"status": "ok", "checks": map[string]string{"db": "ok"}})
		default:
			writeJSON(w, 503, map[string]any{"status": "error", "checks": map[string]string{"db": "connection refused"}})
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if !a.html {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "<!doctype html>\n<HTML lang=\"en\"><body><div id=\"root\"></div></body></HTML>\n")
	})
	mux.HandleFunc("GET /api/items", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		list := []map[string]any{}
		for id, name := range a.items {
			list = append(list, map[string]any{"id": id, "name": name, "created_at": time.Now().UTC().Format(time.RFC3339)})
		}
		writeJSON(w, 200, list)
	})
	mux.HandleFunc("POST /api/items", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Name string }
		if r.Header.Get("Content-Type") != "application/json" {
			writeJSON(w, 415, map[string]string{"error": "want application/json"})
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" || len(in.Name) > 200 {
			writeJSON(w, 400, map[string]string{"error": "name must be 1..200 characters"})
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		id := len(a.items) + 41
		a.items[id] = in.Name
		a.posts = append(a.posts, in.Name)
		writeJSON(w, 201, map[string]any{"id": id, "name": in.Name, "created_at": time.Now().UTC().Format(time.RFC3339)})
	})
	mux.HandleFunc("GET /api/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.PathValue("id"))
		a.mu.Lock()
		name, ok := a.items[id]
		a.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]string{"error": "not found"})
			return
		}
		w.Header().Set("X-Cache", "miss")
		writeJSON(w, 200, map[string]any{"id": id, "name": name, "created_at": time.Now().UTC().Format(time.RFC3339)})
	})
	return mux
}

// runSmoke runs the generated smoke.sh with only the given environment (plus PATH and HOME).
func runSmoke(t *testing.T, dir string, env ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "ops", "smoke", "smoke.sh"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run smoke.sh: %v\n%s", err, out)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// TestScriptsSmoke runs the generated smoke test against a fake application: it passes when
// every endpoint answers as the contract says, and fails with a FAIL line naming the check
// when one does not or when nothing listens.
func TestScriptsSmoke(t *testing.T) {
	e2eutil.RequireTool(t, "bash")
	e2eutil.RequireTool(t, "curl")

	withFrontend := e2eutil.Generate(t, map[string]string{"frontend": "react"})
	apiOnly := e2eutil.Generate(t, map[string]string{"frontend": "none"})

	t.Run("pass", func(t *testing.T) {
		for name, c := range map[string]struct {
			dir  string
			html bool
			want []string
		}{
			"frontend": {withFrontend, true, []string{"PASS GET /healthz", "PASS GET / (frontend)", "PASS GET /readyz", "PASS GET /api/items", "PASS POST /api/items", "PASS GET /api/items/41"}},
			"api-only": {apiOnly, false, []string{"PASS GET /healthz", "PASS GET /readyz", "PASS GET /api/items", "PASS POST /api/items", "PASS GET /api/items/41"}},
		} {
			t.Run(name, func(t *testing.T) {
				app := &fakeApp{items: map[int]string{}, html: c.html, ready: true}
				srv := httptest.NewServer(app.handler())
				defer srv.Close()
				out, code := runSmoke(t, c.dir, "BASE_URL="+srv.URL+"/")
				if code != 0 {
					t.Fatalf("smoke.sh exit %d, want 0:\n%s", code, out)
				}
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Errorf("output lacks %q:\n%s", w, out)
					}
				}
				if strings.Contains(out, "FAIL") || !strings.Contains(out, "OK: ") {
					t.Errorf("output of a passing run:\n%s", out)
				}
				if len(app.posts) != 1 || !strings.HasPrefix(app.posts[0], "smoke-") {
					t.Errorf("items created %q, want one smoke-… item", app.posts)
				}
			})
		}
	})

	t.Run("readyz through BACKEND_URL", func(t *testing.T) {
		// In development the frontend's nginx does not route /readyz: `make smoke` points
		// BACKEND_URL at the backend. An HTML 200 from the frontend must not count as ready.
		front := httptest.NewServer((&fakeApp{items: map[int]string{}, html: true, readyDoc: true}).handler())
		defer front.Close()
		back := httptest.NewServer((&fakeApp{items: map[int]string{}, ready: true}).handler())
		defer back.Close()
		out, code := runSmoke(t, withFrontend, "BASE_URL="+front.URL, "SMOKE_RETRIES=0")
		if code == 0 || !strings.Contains(out, "FAIL GET /readyz") {
			t.Errorf("smoke.sh with an HTML /readyz: exit %d, want a FAIL GET /readyz line:\n%s", code, out)
		}
		out, code = runSmoke(t, withFrontend, "BASE_URL="+front.URL, "BACKEND_URL="+back.URL)
		if code != 0 || !strings.Contains(out, "PASS GET /readyz") {
			t.Errorf("smoke.sh with BACKEND_URL: exit %d, want 0:\n%s", code, out)
		}
	})

	t.Run("not ready", func(t *testing.T) {
		srv := httptest.NewServer((&fakeApp{items: map[int]string{}, html: true}).handler())
		defer srv.Close()
		start := time.Now()
		out, code := runSmoke(t, withFrontend, "BASE_URL="+srv.URL, "SMOKE_RETRIES=1")
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		for _, w := range []string{"PASS GET /healthz", "FAIL GET /readyz: want 200", "got status 503", "connection refused", "FAILED: 1 of 6 checks"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if time.Since(start) > 20*time.Second {
			t.Errorf("took %v with SMOKE_RETRIES=1", time.Since(start))
		}
	})

	t.Run("closed port", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", e2eutil.FreePort(t))
		out, code := runSmoke(t, withFrontend, "BASE_URL="+url, "SMOKE_RETRIES=0", "SMOKE_TIMEOUT=5")
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		for _, w := range []string{"FAIL GET /healthz: want 200", "no response (curl: (7)", "FAIL POST /api/items", "skipped: the item was not created", "FAILED: 6 of 6 checks against " + url} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		if strings.Contains(out, "PASS") {
			t.Errorf("a check passed against a closed port:\n%s", out)
		}
	})

	t.Run("BASE_URL from .env", func(t *testing.T) {
		app := &fakeApp{items: map[int]string{}, html: true, ready: true}
		srv := httptest.NewServer(app.handler())
		defer srv.Close()
		dir := e2eutil.Generate(t, map[string]string{"frontend": "react"})
		env := "COMPOSE_PROJECT_NAME=x\nBASE_URL=\"" + srv.URL + "\"\n"
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runSmoke(t, dir)
		if code != 0 || !strings.Contains(out, "smoke test of "+srv.URL) {
			t.Errorf("smoke.sh with BASE_URL in .env: exit %d:\n%s", code, out)
		}
	})
}
