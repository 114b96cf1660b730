package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestUpgradeCommand(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed (run `make tools`)")
		}
		t.Skip("git is not installed")
	}
	dir := filepath.Join(t.TempDir(), "shop")
	if code, _, errOut := runCLI(t, "", "new", "--defaults", dir); code != 0 {
		t.Fatal(errOut)
	}
	// Same version, same answers: nothing to do.
	code, out, _ := runCLI(t, "", "upgrade", dir)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("no-op upgrade: %d %s", code, out)
	}
	// Dry run of a changed answer: a plan with diffs, nothing written.
	code, out, _ = runCLI(t, "", "upgrade", "--dry-run", "--set", "cache=redis", dir)
	if code != 0 || !strings.Contains(out, "created      secrets") && !strings.Contains(out, "updated      compose.yaml") || !strings.Contains(out, "+  cache:") {
		t.Fatalf("dry run: %d\n%s", code, out)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "compose.yaml")); strings.Contains(string(data), "redis") {
		t.Fatal("--dry-run wrote compose.yaml")
	}
	// A conflicting edit: exit 3, JSON report, status lists the conflict.
	readme := filepath.Join(dir, "README.md")
	data, _ := os.ReadFile(readme)
	lines := strings.SplitAfter(string(data), "\n")
	lines[3] = "PostgreSQL of the platform team, run with docker compose; served at\n"
	if err := os.WriteFile(readme, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "upgrade", "--set", "cache=redis", dir)
	if code != 2 || !strings.Contains(errOut, "uncommitted changes: README.md") {
		t.Fatalf("dirty tree: %d %s", code, errOut)
	}
	gitIn(t, dir, "commit", "-qam", "edit")
	code, out, _ = runCLI(t, "", "upgrade", "--json", "--set", "cache=redis", dir)
	var res struct {
		Conflicts int `json:"conflicts"`
		Files     []struct{ Path, Action string }
	}
	if code != 3 || json.Unmarshal([]byte(out), &res) != nil || res.Conflicts != 1 {
		t.Fatalf("conflicting upgrade: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "status", dir)
	if code != 0 || !strings.Contains(out, "conflict  README.md") || !strings.Contains(out, "cache: redis") {
		t.Errorf("status after the upgrade:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets", "redis_password")); err != nil {
		t.Errorf("upgrade --set cache=redis did not add the redis secret: %v", err)
	}
}

func TestUpgradeBadInput(t *testing.T) {
	if code, _, errOut := runCLI(t, "", "upgrade", t.TempDir()); code != 1 || !strings.Contains(errOut, "not an opsready project") {
		t.Errorf("not a project: %d %s", code, errOut)
	}
	dir := filepath.Join(t.TempDir(), "p")
	if code, _, errOut := runCLI(t, "", "new", "--defaults", dir); code != 0 {
		t.Fatal(errOut)
	}
	for _, c := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--to", "9.9.9"}, `has no version "9.9.9"`},
		{[]string{"--set", "cache=memcached"}, `"memcached" is not allowed (allowed: none, redis)`},
		{[]string{"--set", "cahce=redis"}, `did you mean "cache"`},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"upgrade"}, append(c.args, dir)...)...)
		if code != 2 || !strings.Contains(errOut, c.wantErr) {
			t.Errorf("%v: exit %d %s", c.args, code, errOut)
		}
	}
}
