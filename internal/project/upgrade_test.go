package project

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/internal/lock"
	"github.com/opsready/opsready/prompts"
)

var demoLib = blueprints.New(os.DirFS("testdata/lib"))

// demoProject generates the test blueprint at a version into a committed git repository.
func demoProject(t *testing.T, version string, set map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	_, err := Create(CreateOptions{Dir: dir, Blueprint: "demo@" + version, Set: set, Defaults: true, Git: true, Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed (run `make tools`)")
		}
		t.Skip("git is not installed")
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func write(t *testing.T, dir, p, content string) {
	t.Helper()
	full := filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(dir, p string) bool {
	_, err := os.Lstat(filepath.Join(dir, p))
	return err == nil
}

func edit(t *testing.T, dir, p, old, new string) {
	t.Helper()
	s := read(t, dir, p)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", p, old)
	}
	write(t, dir, p, strings.Replace(s, old, new, 1))
}

func commit(t *testing.T, dir string) {
	t.Helper()
	gitCmd(t, dir, "add", "-A")
	gitCmd(t, dir, "commit", "-q", "--allow-empty", "-m", "team edits")
}

func actions(res *Upgraded) map[string]string {
	m := map[string]string{}
	for _, c := range res.Changes {
		m[c.Path] = c.Action
	}
	return m
}

func TestUpgradeEveryCase(t *testing.T) {
	dir := demoProject(t, "1.0.0", map[string]string{"cache": "redis", "flavor": "fancy"})
	edit(t, dir, "config.yaml", "level: info", "level: debug")           // not overlapping the blueprint's edits
	edit(t, dir, "old-name.conf", "root /srv", "root /data")             // renamed by the blueprint
	must(t, os.Remove(filepath.Join(dir, "user-deleted.txt")))           // deleted by the team
	write(t, dir, "logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRours") // binary, both changed
	write(t, dir, "app/main.txt", "our app code\n")                      // seed
	edit(t, dir, "managed.conf", "line2", "line2 edited")                // managed with a local edit
	write(t, dir, "added.txt", "added by the team\n")                    // add/add
	commit(t, dir)

	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"config.yaml":      ActionMerged,
		"new-name.conf":    ActionUnchanged,
		"obsolete.txt":     ActionDeleted,
		"user-deleted.txt": ActionLeftDeleted,
		"logo.png":         ActionConflict,
		"app/main.txt":     ActionUnchanged,
		"managed.conf":     ActionConflict,
		"added.txt":        ActionConflict,
		"run.sh":           ActionUpdated,
		"redis.conf":       ActionUnchanged,
	}
	got := actions(res)
	for p, a := range want {
		if got[p] != a {
			t.Errorf("%s: %s, want %s", p, got[p], a)
		}
	}
	if res.Conflicts != 3 {
		t.Errorf("conflicts = %d, want 3", res.Conflicts)
	}
	cfg := read(t, dir, "config.yaml")
	for _, s := range []string{"level: debug", "timeout: 60s", "memory: 1g", "variant: fancy", "region eu-1", "cache:"} {
		if !strings.Contains(cfg, s) {
			t.Errorf("merged config.yaml lacks %q:\n%s", s, cfg)
		}
	}
	if exists(dir, "old-name.conf") || read(t, dir, "new-name.conf") != "listen 80\nroot /data\n" {
		t.Error("the rename lost the team's edit or left the old file")
	}
	if exists(dir, "obsolete.txt") || exists(dir, "user-deleted.txt") {
		t.Error("deleted files came back")
	}
	if !strings.HasSuffix(read(t, dir, "logo.png"), "ours") || !strings.HasSuffix(read(t, dir, "logo.png.opsready-new"), "v2") {
		t.Error("binary conflict: ours must stay, theirs beside it")
	}
	if read(t, dir, "app/main.txt") != "our app code\n" {
		t.Error("seed file touched")
	}
	for _, p := range []string{"managed.conf", "added.txt"} {
		s := read(t, dir, p)
		if !strings.Contains(s, "<<<<<<< ours (your project)\n") || !strings.Contains(s, ">>>>>>> theirs (demo 1.1.0)\n") {
			t.Errorf("%s has no conflict markers:\n%s", p, s)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "run.sh")); fi.Mode().Perm() != 0o755 || read(t, dir, "run.sh") != "#!/bin/sh\necho v2\n" {
		t.Errorf("run.sh not updated with its mode")
	}
	lk, err := lock.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lk.Version != "1.1.0" || lk.Answers["variant"] != "fancy" || lk.Answers["region"] != "eu-1" || lk.Answers["flavor"] != nil {
		t.Errorf("lock: %s %v", lk.Version, lk.Answers)
	}
	unmerged := gitCmd(t, dir, "ls-files", "-u")
	for _, p := range []string{"managed.conf", "added.txt", "logo.png"} {
		if !strings.Contains(unmerged, "\t"+p+"\n") {
			t.Errorf("%s not unmerged in the git index:\n%s", p, unmerged)
		}
	}
	if !strings.Contains(gitCmd(t, dir, "status", "--porcelain"), "UU managed.conf") {
		t.Errorf("git status does not show the conflict:\n%s", gitCmd(t, dir, "status", "--porcelain"))
	}
	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Conflicts, ",") != "added.txt,logo.png,managed.conf" {
		t.Errorf("status conflicts = %v", st.Conflicts)
	}
}

func TestUpgradeOverlappingEditIsAConflict(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	edit(t, dir, "config.yaml", "timeout: 30s", "timeout: 45s")
	commit(t, dir)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if actions(res)["config.yaml"] != ActionConflict {
		t.Fatalf("config.yaml: %s", actions(res)["config.yaml"])
	}
	s := read(t, dir, "config.yaml")
	want := "<<<<<<< ours (your project)\n  timeout: 45s\n||||||| base (demo 1.0.0)\n  timeout: 30s\n=======\n  timeout: 60s\n>>>>>>> theirs (demo 1.1.0)\n"
	if !strings.Contains(s, want) {
		t.Errorf("conflict block:\n%s", s)
	}
	if !strings.Contains(s, "memory: 1g") {
		t.Error("the non-conflicting part of the blueprint's change was not applied")
	}
}

func TestUpgradeChangedAnswers(t *testing.T) {
	dir := demoProject(t, "1.1.0", nil)
	if exists(dir, "redis.conf") {
		t.Fatal("redis.conf without redis")
	}
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Set: map[string]string{"cache": "redis"}, Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(res); a["redis.conf"] != ActionCreated || a["config.yaml"] != ActionUpdated {
		t.Errorf("actions: %v", a)
	}
	if !strings.Contains(read(t, dir, "config.yaml"), "addr: cache:6379") {
		t.Error("config.yaml did not get the cache section")
	}
	// Back to none: an unmodified file goes, a modified one is kept and reported.
	edit(t, dir, "redis.conf", "100mb", "200mb")
	commit(t, dir)
	res, err = Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Set: map[string]string{"cache": "none"}, Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if a := actions(res)["redis.conf"]; a != ActionKept || !exists(dir, "redis.conf") {
		t.Errorf("modified redis.conf: %s", a)
	}
	if strings.Contains(read(t, dir, "config.yaml"), "cache:") {
		t.Error("config.yaml still has the cache section")
	}
	lk, _ := lock.Read(dir)
	if lk.Answers["cache"] != "none" {
		t.Errorf("lock answers: %v", lk.Answers)
	}
}

func TestUpgradeSameVersionIsANoop(t *testing.T) {
	dir := demoProject(t, "1.1.0", nil)
	before := read(t, dir, lock.FileName)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "other", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NothingToDo {
		t.Errorf("not a no-op: %+v", res.Changes)
	}
	if read(t, dir, lock.FileName) != before || gitCmd(t, dir, "status", "--porcelain") != "" {
		t.Error("a no-op upgrade changed the tree")
	}
}

func TestUpgradeTwiceIsANoop(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	edit(t, dir, "config.yaml", "level: info", "level: debug")
	commit(t, dir)
	if _, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib}); err != nil {
		t.Fatal(err)
	}
	commit(t, dir)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NothingToDo || gitCmd(t, dir, "status", "--porcelain") != "" {
		t.Errorf("second upgrade did something: %+v", res.Changes)
	}
}

func TestUpgradeRefusesDirtyTree(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	edit(t, dir, "config.yaml", "level: info", "level: debug")
	_, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err == nil || !strings.Contains(err.Error(), "uncommitted changes: config.yaml") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Force: true, Version: "test", Library: &demoLib}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if !strings.Contains(read(t, dir, "config.yaml"), "level: debug") {
		t.Error("--force lost the uncommitted edit")
	}
}

func TestUpgradeDryRunWritesNothing(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", DryRun: true, Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	var diff string
	for _, c := range res.Changes {
		if c.Path == "config.yaml" {
			diff = c.Diff
		}
	}
	if !strings.Contains(diff, "-  timeout: 30s\n+  timeout: 60s\n") {
		t.Errorf("dry-run diff:\n%s", diff)
	}
	if gitCmd(t, dir, "status", "--porcelain") != "" {
		t.Error("--dry-run changed the tree")
	}
}

func TestUpgradeRefusesDowngrade(t *testing.T) {
	dir := demoProject(t, "1.1.0", nil)
	if _, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.0.0", Version: "test", Library: &demoLib}); err == nil || !strings.Contains(err.Error(), "downgrades are not supported") {
		t.Errorf("err = %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// 1.0.0 -> 1.2.0 in one step: both versions' migrations apply in order (old-name.conf ->
// new-name.conf -> conf/site.conf), and the new question without a default must be answered.
func TestUpgradeAcrossVersions(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	edit(t, dir, "old-name.conf", "root /srv", "root /data")
	commit(t, dir)
	_, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.2.0", Version: "test", Library: &demoLib})
	var ie InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "missing answer: `--owner`") {
		t.Fatalf("err = %v", err)
	}
	if gitCmd(t, dir, "status", "--porcelain") != "" {
		t.Fatal("a refused upgrade changed the tree")
	}
	asked := ""
	ask := func(q prompts.Question, def any) (any, error) { asked = q.Key; return "ops@example.org", nil }
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.2.0", Ask: ask, Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if asked != "owner" || read(t, dir, "OWNER") != "owner: ops@example.org\n" {
		t.Errorf("asked %q, OWNER %q", asked, read(t, dir, "OWNER"))
	}
	if exists(dir, "old-name.conf") || exists(dir, "new-name.conf") || read(t, dir, "conf/site.conf") != "listen 80\nroot /data\n" {
		t.Errorf("chained renames lost the edit: %v", actions(res))
	}
}

// Every released version of every embedded blueprint upgrades to the newest: without team
// edits there is no conflict and the tree equals a fresh render of the newest version.
func TestUpgradeFromEveryReleasedVersion(t *testing.T) {
	lib := blueprints.Embedded()
	names, _ := lib.Names()
	for _, n := range names {
		vs, _ := lib.Versions(n)
		for _, v := range vs {
			t.Run(n+"@"+v, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "p")
				if _, err := Create(CreateOptions{Dir: dir, Blueprint: n + "@" + v, Defaults: true, Git: true, Version: "test"}); err != nil {
					t.Fatal(err)
				}
				res, err := Upgrade(UpgradeOptions{Dir: dir, Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				if res.Conflicts != 0 {
					t.Errorf("%d conflicts without edits", res.Conflicts)
				}
				newest, _ := lib.Open(n, "")
				files, err := RenderProject(newest, res.Answers, "test")
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range files {
					if f.Path == lock.FileName {
						continue
					}
					if got := read(t, dir, f.Path); got != string(f.Data) {
						t.Errorf("%s differs from a fresh render of %s", f.Path, newest.Version)
					}
				}
			})
		}
	}
}
