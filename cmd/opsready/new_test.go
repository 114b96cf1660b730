package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestNewFlags(t *testing.T) {
	for _, c := range []struct {
		name     string
		args     []string
		wantErr  string
		wantOpts newOptions
	}{
		{"defaults", []string{"--defaults", "x"}, "", newOptions{Dir: "x", Blueprint: "webapp", Flags: map[string]string{}, Defaults: true, Git: true}},
		{"question flags", []string{"--db", "mariadb", "--backend-replicas", "3", "--no-git", "d"}, "",
			newOptions{Dir: "d", Blueprint: "webapp", Flags: map[string]string{"db": "mariadb", "backend_replicas": "3"}}},
		{"set and answers", []string{"--set", "db=mariadb", "--set", "cache=redis", "--answers", "a.yaml", "--json", "--dry-run", "--force"}, "",
			newOptions{Dir: ".", Blueprint: "webapp", Flags: map[string]string{}, Sets: []string{"db=mariadb", "cache=redis"}, AnswersFile: "a.yaml", JSON: true, DryRun: true, Force: true, Git: true}},
		{"blueprint ref", []string{"--blueprint", "webapp@1.0.0", "--accessible"}, "",
			newOptions{Dir: ".", Blueprint: "webapp@1.0.0", Flags: map[string]string{}, Accessible: true, Interactive: true, Git: true}},
		{"two dirs", []string{"a", "b"}, "accepts at most 1 arg", newOptions{}},
		{"git and no-git", []string{"--git", "--no-git"}, "exclude each other", newOptions{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got *newOptions
			cmd := newNewCmd(&deps{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, func(o *newOptions) error { got = o; return nil })
			cmd.SetArgs(c.args)
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetErr(&bytes.Buffer{})
			err := cmd.Execute()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.wantOpts) {
				t.Errorf("opts = %+v\nwant   %+v", *got, c.wantOpts)
			}
		})
	}
}

func TestNewWritesProject(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	code, out, errOut := runCLI(t, "", "new", "--defaults", "--db", "mariadb", "--set", "cache=redis", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	lock, err := os.ReadFile(filepath.Join(dir, ".opsready.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"blueprint: webapp", "db: mariadb", "cache: redis", "name: shop", "sha256:"} {
		if !strings.Contains(string(lock), want) {
			t.Errorf("lock file lacks %q", want)
		}
	}
	for _, s := range []string{"db_password", "db_root_password", "redis_password"} {
		p := filepath.Join(dir, "secrets", s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("secret %s: %v", s, err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v", s, fi.Mode().Perm())
		}
		secret, _ := os.ReadFile(p)
		if len(secret) < 32 || strings.Contains(string(lock), string(secret)) {
			t.Errorf("secret %s is weak or in the lock file", s)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "secrets")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets folder: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, ".env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf(".env: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		t.Errorf("no git repository: %v", err)
	}
	code, out, _ = runCLI(t, "", "status", dir)
	if code != 0 || !strings.Contains(out, "0 modified, 0 missing, 0 added") {
		t.Errorf("status after new: %d\n%s", code, out)
	}
}

func TestNewBadInputWritesNothing(t *testing.T) {
	answers := filepath.Join(t.TempDir(), "answers.yaml")
	if err := os.WriteFile(answers, []byte("fronted: react\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"--fronted", "react"}, 2, "unknown flag `--fronted` (did you mean \"frontend\"?)"},
		{"value outside set", []string{"--defaults", "--db", "oracle"}, 2, `"oracle" is not allowed (allowed: postgres, mariadb)`},
		{"bad name", []string{"--defaults", "--name", "My App"}, 2, "`--name`: \"My App\" is not a valid name"},
		{"bad domain", []string{"--defaults", "--domain", "exa mple"}, 2, "`--domain`"},
		{"unknown set key", []string{"--defaults", "--set", "cach=redis"}, 2, `unknown key "cach" (did you mean "cache"?)`},
		{"unknown answers key", []string{"--answers", answers}, 2, `unknown key "fronted" (did you mean "frontend"?)`},
		{"unreadable answers", []string{"--answers", "/nonexistent/a.yaml"}, 2, "`--answers`"},
		{"missing answer", []string{"--name", "x"}, 2, "missing answer: `--domain` (required when not running interactively"},
		{"unknown blueprint", []string{"--defaults", "--blueprint", "webap"}, 2, `did you mean "webapp"`},
		{"unknown version", []string{"--defaults", "--blueprint", "webapp@0.1.0"}, 2, `has no version "0.1.0"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p")
			code, _, errOut := runCLI(t, "", append([]string{"new"}, append(c.args, dir)...)...)
			if code != c.wantCode || !strings.Contains(errOut, c.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, c.wantCode, c.wantErr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s was created", dir)
			}
		})
	}
}

func TestNewRefusesNonEmptyTarget(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "new", "--defaults", "--no-git", dir)
	if code != 1 || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "`--force`") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("target changed: %d entries", len(entries))
	}
	code, _, errOut = runCLI(t, "", "new", "--defaults", "--no-git", "--force", dir)
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, errOut)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "mine.txt")); string(data) != "mine" {
		t.Error("--force lost a file opsready does not generate")
	}
}

func TestNewDryRunAndJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	code, out, errOut := runCLI(t, "", "new", "--defaults", "--dry-run", "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Blueprint string `json:"blueprint"`
		DryRun    bool   `json:"dry_run"`
		Files     []struct {
			Path, Action string
		} `json:"files"`
		Answers map[string]any `json:"answers"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Blueprint != "webapp" || !res.DryRun || len(res.Files) < 10 || res.Answers["name"] != "p" {
		t.Errorf("unexpected result: %+v", res)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("--dry-run wrote files")
	}
}

func TestAccessibleWizardPrintsEquivalentCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wiz")
	// Every question at its default except the database (2 = mariadb).
	input := "\n\n\n\n2\n\n\n\n\n\n\n\n\n\n\n"
	code, out, errOut := runCLI(t, input, "new", "--accessible", "--no-git", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "Database") {
		t.Errorf("wizard did not ask on stderr:\n%s", errOut)
	}
	if !strings.Contains(out, "opsready new --name=wiz") || !strings.Contains(out, "--db=mariadb") {
		t.Errorf("no equivalent command:\n%s", out)
	}
}

func TestBlueprintsCommands(t *testing.T) {
	code, out, _ := runCLI(t, "", "blueprints")
	if code != 0 || !strings.HasPrefix(out, "webapp\t1.0.0") {
		t.Errorf("blueprints: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "blueprints", "show", "webapp@1.0.0")
	if code != 0 || !strings.Contains(out, "--db  Database") || !strings.Contains(out, "changelog:") {
		t.Errorf("show: %d %s", code, out)
	}
	code, out, _ = runCLI(t, "", "blueprints", "schema", "webapp")
	var schema map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &schema) != nil || schema["additionalProperties"] != false {
		t.Errorf("schema: %d %s", code, out)
	}
	if code, _, _ := runCLI(t, "", "blueprints", "show", "nope"); code != 2 {
		t.Errorf("unknown blueprint: exit %d", code)
	}
	code, out, _ = runCLI(t, "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "opsready") {
		t.Errorf("completion: %d", code)
	}
	code, out, _ = runCLI(t, "", "__complete", "new", "--db", "")
	if code != 0 || !strings.Contains(out, "postgres\nmariadb") {
		t.Errorf("flag completion: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "opsready ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestStatusReportsChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if code, _, errOut := runCLI(t, "", "new", "--defaults", "--no-git", dir); code != 0 {
		t.Fatal(errOut)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("changed\n"), 0o644))
	must(os.Remove(filepath.Join(dir, "README.md")))
	must(os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "Makefile"), []byte("<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n"), 0o644))
	code, out, _ := runCLI(t, "", "status", "--json", dir)
	var st struct {
		Modified, Missing, Added, Conflicts []string
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: %d %s", code, out)
	}
	want := struct{ Modified, Missing, Added, Conflicts []string }{
		[]string{"Makefile", "compose.yaml"}, []string{"README.md"}, []string{"notes.txt"}, []string{"Makefile"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status = %+v\nwant %+v", st, want)
	}
	if code, _, errOut := runCLI(t, "", "status", t.TempDir()); code != 1 || !strings.Contains(errOut, "not an opsready project") {
		t.Errorf("status of a non-project: %d %s", code, errOut)
	}
}

// A failure after the files were written (here: git cannot create its repository) must
// take every written file away again.
func TestNewFailureAfterWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".git"), []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "new", "--defaults", "--force", dir)
	if code != 1 || !strings.Contains(errOut, "git:") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != ".git" {
		t.Errorf("left behind: %v", names)
	}
}

// --force over files that are replaced: the originals wait in a staging folder until the
// commit is made, and must not end up in it.
func TestNewForceCommitsOnlyTheProject(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "new", "--defaults", "--force", dir); code != 0 {
		t.Fatal(errOut)
	}
	out, err := exec.Command("git", "-C", dir, "ls-files").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "staging") || !strings.Contains(string(out), "compose.yaml\n") || strings.Contains(string(out), "secrets/") {
		t.Errorf("committed files:\n%s", out)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".opsready-staging") {
			t.Errorf("staging folder left behind: %s", e.Name())
		}
	}
}
