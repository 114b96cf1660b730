package e2eutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// ReadSecrets returns the secret files `opsready new` wrote into dir/secrets, by name: the
// generated passwords; the external ones (credentials the team fills in) must be there and empty.
func ReadSecrets(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatalf("opsready new wrote no secrets/: %v", err)
	}
	external := ExternalSecrets(t)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "secrets", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if external[e.Name()] {
			if len(b) != 0 {
				t.Errorf("secrets/%s holds %d bytes, want it created empty for the team", e.Name(), len(b))
			}
			continue
		}
		if v := strings.TrimSpace(string(b)); len(v) >= 8 {
			out[e.Name()] = v
		} else {
			t.Errorf("secrets/%s holds %d characters, want a generated password", e.Name(), len(v))
		}
	}
	return out
}

// ReadYAML decodes the YAML file path into v; the test fails when it cannot.
func ReadYAML(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Promtool runs promtool (its path) with args in dir; when it fails, the test fails (and goes
// on) with its output.
func Promtool(t testing.TB, promtool, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// RunScript runs name with args in dir, as a generated project's script runs (no Python
// bytecode written into the tree, no inherited compose project name), and returns its stdout,
// stderr and exit status; the test fails only when the program cannot be started.
func RunScript(t testing.TB, dir, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "COMPOSE_PROJECT_NAME=")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}
