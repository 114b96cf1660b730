package project

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsready/opsready/blueprints"
	"github.com/opsready/opsready/generator"
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
				created, err := Create(CreateOptions{Dir: dir, Blueprint: n + "@" + v, Defaults: true, Git: true, Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				had := map[string]bool{}
				for _, f := range created.Files {
					had[f.Path] = true
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
					// A seed file is the team's once written (the backend's code): a newer
					// version's changes to it are not applied (SPEC §5).
					if f.Policy == generator.PolicySeed && had[f.Path] {
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

func changeOf(res *Upgraded, p string) FileChange {
	for _, c := range res.Changes {
		if c.Path == p {
			return c
		}
	}
	return FileChange{}
}

func modeOf(t *testing.T, dir, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// Defect 10: a file the team committed under the name the upgrade would use for a binary
// file's new version is never overwritten; the new version goes to a free name, reported.
func TestUpgradeNeverOverwritesTeamOpsreadyNew(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	write(t, dir, "logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRours")
	write(t, dir, "logo.png.opsready-new", "the team's own notes\n")
	write(t, dir, "logo.png.opsready-new.1", "more team notes\n")
	commit(t, dir)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "logo.png.opsready-new") != "the team's own notes\n" || read(t, dir, "logo.png.opsready-new.1") != "more team notes\n" {
		t.Error("the team's committed *.opsready-new files were overwritten")
	}
	if !strings.HasSuffix(read(t, dir, "logo.png.opsready-new.2"), "v2") {
		t.Error("the new version of logo.png is not at the next free name")
	}
	if c := changeOf(res, "logo.png"); c.Action != ActionConflict || !strings.Contains(c.Note, "logo.png.opsready-new.2") {
		t.Errorf("logo.png: %s %q", c.Action, c.Note)
	}
	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Conflicts, ",") != "logo.png" {
		t.Errorf("status conflicts = %v", st.Conflicts)
	}
}

// Defect 11: the executable bit is part of what the team changed: content taken from the
// new render keeps the team's mode, and the report says so.
func TestUpgradeKeepsTeamModes(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	must(t, os.Chmod(filepath.Join(dir, "run.sh"), 0o644))
	must(t, os.Chmod(filepath.Join(dir, "config.yaml"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "managed.conf"), 0o600)) // not tracked by git, but the team's
	commit(t, dir)
	res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib})
	if err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "run.sh") != "#!/bin/sh\necho v2\n" || modeOf(t, dir, "run.sh") != 0o644 {
		t.Errorf("run.sh: mode %o, want the team's 644 with the new content", modeOf(t, dir, "run.sh"))
	}
	if !strings.Contains(read(t, dir, "config.yaml"), "timeout: 60s") || modeOf(t, dir, "config.yaml") != 0o755 {
		t.Errorf("config.yaml: mode %o, want the team's 755 with the new content", modeOf(t, dir, "config.yaml"))
	}
	if !strings.Contains(read(t, dir, "managed.conf"), "managed v2") || modeOf(t, dir, "managed.conf") != 0o600 {
		t.Errorf("managed.conf: mode %o, want the team's 600", modeOf(t, dir, "managed.conf"))
	}
	for _, p := range []string{"run.sh", "config.yaml"} {
		if c := changeOf(res, p); c.Action != ActionUpdated || !strings.Contains(c.Note, "mode") {
			t.Errorf("%s: %s %q, want updated with a note on the kept mode", p, c.Action, c.Note)
		}
	}
	if s := gitCmd(t, dir, "diff", "HEAD", "--summary"); strings.Contains(s, "mode change") {
		t.Errorf("the upgrade changed modes:\n%s", s)
	}
}

// Defect 15: a team file where the new version needs a folder, and a team folder where it
// has a file, are conflicts with a clear message; nothing of the team's is lost.
func TestUpgradeFileFolderClash(t *testing.T) {
	t.Run("file where a folder is needed", func(t *testing.T) {
		dir := demoProject(t, "1.1.0", nil)
		edit(t, dir, "new-name.conf", "root /srv", "root /data")
		write(t, dir, "conf", "the team's conf file\n")
		commit(t, dir)
		res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.2.0", Set: map[string]string{"owner": "ops@example.org"}, Version: "test", Library: &demoLib})
		if err != nil {
			t.Fatal(err)
		}
		c := changeOf(res, "conf/site.conf")
		if c.Action != ActionConflict || !strings.Contains(c.Note, "`conf` is a file") {
			t.Errorf("conf/site.conf: %s %q", c.Action, c.Note)
		}
		if read(t, dir, "conf") != "the team's conf file\n" || read(t, dir, "new-name.conf") != "listen 80\nroot /data\n" {
			t.Error("the team's files were changed")
		}
		if !strings.Contains(gitCmd(t, dir, "ls-files", "-u"), "\tconf/site.conf\n") {
			t.Error("conf/site.conf is not unmerged in the git index")
		}
		if lk, _ := lock.Read(dir); lk.Files["conf/site.conf"].SHA256 != "" {
			t.Error("the lock records a file that was not written")
		}
	})
	t.Run("folder where a file is", func(t *testing.T) {
		dir := demoProject(t, "1.1.0", nil)
		write(t, dir, "redis.conf/notes.txt", "the team's notes\n")
		commit(t, dir)
		res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Set: map[string]string{"cache": "redis"}, Version: "test", Library: &demoLib})
		if err != nil {
			t.Fatal(err)
		}
		if c := changeOf(res, "redis.conf"); c.Action != ActionConflict || !strings.Contains(c.Note, "`redis.conf` is a folder") {
			t.Errorf("redis.conf: %s %q", c.Action, c.Note)
		}
		if read(t, dir, "redis.conf/notes.txt") != "the team's notes\n" {
			t.Error("the team's folder was changed")
		}
		if !strings.Contains(read(t, dir, "config.yaml"), "addr: cache:6379") {
			t.Error("the rest of the upgrade was not applied")
		}
	})
	t.Run("team file at the new name of a renamed file", func(t *testing.T) {
		dir := demoProject(t, "1.1.0", nil)
		edit(t, dir, "new-name.conf", "root /srv", "root /data")
		write(t, dir, "conf/site.conf", "the team's own site.conf\n")
		commit(t, dir)
		res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.2.0", Set: map[string]string{"owner": "ops@example.org"}, Version: "test", Library: &demoLib})
		if err != nil {
			t.Fatal(err)
		}
		if c := changeOf(res, "conf/site.conf"); c.Action != ActionConflict || !strings.Contains(c.Note, "renames new-name.conf to it") {
			t.Errorf("conf/site.conf: %s %q", c.Action, c.Note)
		}
		if read(t, dir, "conf/site.conf") != "the team's own site.conf\n" || read(t, dir, "new-name.conf") != "listen 80\nroot /data\n" {
			t.Error("the rename overwrote the team's file or lost the team's edit")
		}
	})
	t.Run("team deleted a folder and put a file there", func(t *testing.T) {
		dir := demoProject(t, "1.0.0", nil)
		must(t, os.RemoveAll(filepath.Join(dir, "app")))
		write(t, dir, "app", "the team's app file\n")
		commit(t, dir)
		if _, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.1.0", Version: "test", Library: &demoLib}); err != nil {
			t.Fatal(err)
		}
		if read(t, dir, "app") != "the team's app file\n" {
			t.Error("the team's file was changed")
		}
	})
}

// Defect 14: switching a component off keeps its seed files (reported), and the component's
// folder still builds with what remains, both ways.
func TestUpgradeSwitchedOffSeedFilesAreKept(t *testing.T) {
	for _, c := range []struct {
		from, to string
		kept     []string
	}{
		{"react", "static", []string{"frontend/package.json", "frontend/src/App.jsx", "frontend/vite.config.js"}},
		{"static", "react", []string{"frontend/css/site.css", "frontend/js/app.js", "frontend/favicon.svg"}},
	} {
		t.Run(c.from+"-to-"+c.to, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "p")
			if _, err := Create(CreateOptions{Dir: dir, Blueprint: "webapp@1.3.0", Set: map[string]string{"frontend": c.from}, Defaults: true, Git: true, Version: "test"}); err != nil {
				t.Fatal(err)
			}
			res, err := Upgrade(UpgradeOptions{Dir: dir, To: "1.3.0", Set: map[string]string{"frontend": c.to}, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range c.kept {
				if !exists(dir, p) {
					t.Errorf("%s (seed) was deleted", p)
				}
				if c := changeOf(res, p); c.Action != ActionKept || !strings.Contains(c.Note, "seed") {
					t.Errorf("%s: %s %q, want kept and reported", p, c.Action, c.Note)
				}
			}
			checkDockerfileSources(t, dir, "frontend")
		})
	}
}

// checkDockerfileSources fails when a COPY in folder/Dockerfile names a file or folder
// that is not in the build context (docker build would fail).
func checkDockerfileSources(t *testing.T, dir, folder string) {
	t.Helper()
	df := read(t, dir, folder+"/Dockerfile")
	for line := range strings.Lines(df) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if !exists(dir, filepath.Join(folder, src)) {
				t.Errorf("%s/Dockerfile copies %s, which is gone", folder, src)
			}
		}
	}
}
