package project

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/opsready/opsready/generator"
)

// crashOp is one opsready run in a child process: the test binary re-executed as a small
// CLI over this package (TestCrashChild), so that it can really be SIGKILLed.
type crashOp struct {
	Mode  string            `json:"mode"` // upgrade, new, status
	Dir   string            `json:"dir"`
	To    string            `json:"to,omitempty"`
	Ref   string            `json:"ref,omitempty"` // new: blueprint@version of demoLib
	Set   map[string]string `json:"set,omitempty"`
	Force bool              `json:"force,omitempty"`
	// Embedded uses the blueprints built into opsready instead of testdata/lib.
	Embedded bool `json:"embedded,omitempty"`
	// Version is the opsready version the run records in the lock file ("test" when empty).
	Version string `json:"version,omitempty"`
}

// crashResult is what the child did.
type crashResult struct {
	Points    []string // the write's points it passed ("N name")
	Out       string   // its output: "OK", "ERROR ...", "RECOVERED <direction>" lines
	Recovered []string // directions of the recoveries it did
	Killed    bool
	ExitCode  int // the child's exit status: 1 when its command failed, as the CLI's (-1 when killed)
}

// TestCrashChild is the child process of the crash tests; it does nothing otherwise.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv("OPSREADY_CRASH_CHILD")
	if spec == "" {
		t.Skip("only run as the child of the crash tests")
	}
	var op crashOp
	if err := json.Unmarshal([]byte(spec), &op); err != nil {
		t.Fatal(err)
	}
	notify := func(r Recovery) { fmt.Printf("RECOVERED %s\n", r.Direction) }
	lib := &demoLib
	if op.Embedded {
		lib = nil
	}
	version := op.Version
	if version == "" {
		version = "test"
	}
	var err error
	switch op.Mode {
	case "upgrade":
		_, err = Upgrade(UpgradeOptions{Dir: op.Dir, To: op.To, Set: op.Set, Force: op.Force, Version: version, Library: lib, OnRecover: notify})
	case "new":
		_, err = Create(CreateOptions{Dir: op.Dir, Blueprint: op.Ref, Set: op.Set, Defaults: true, Force: op.Force, Git: true, Version: version, Library: lib, OnRecover: notify})
	case "status":
		_, _, err = ReadStatusLocked(op.Dir, notify)
	default:
		t.Fatalf("unknown mode %q", op.Mode)
	}
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		t.Fail() // a failed command exits 1, as the CLI does
		return
	}
	fmt.Println("OK")
}

// crashStart starts op in a child. With at >= 0 the child stops at that point of its write
// (see generator's OPSREADY_TEST_PAUSE_*); wait for it with crashPaused.
func crashStart(t *testing.T, op crashOp, at int) (*exec.Cmd, *strings.Builder, string) {
	t.Helper()
	spec, _ := json.Marshal(op)
	pause := filepath.Join(t.TempDir(), "points")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OPSREADY_CRASH_CHILD="+string(spec), "OPSREADY_TEST_PAUSE_FILE="+pause, fmt.Sprintf("OPSREADY_TEST_PAUSE_AT=%d", at),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out, pause
}

// crashPaused waits until the child stopped at its pause point (generous: the machine is shared).
func crashPaused(t *testing.T, cmd *exec.Cmd, out *strings.Builder, pause string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(pause + ".paused"); err == nil {
			return
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child never reached its pause point:\n%s", out)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func crashCollect(t *testing.T, out *strings.Builder, pause string, killed bool) crashResult {
	t.Helper()
	r := crashResult{Out: out.String(), Killed: killed}
	if f, err := os.Open(pause); err == nil {
		for sc := bufio.NewScanner(f); sc.Scan(); {
			r.Points = append(r.Points, sc.Text())
		}
		_ = f.Close()
	}
	for _, line := range strings.Split(r.Out, "\n") {
		if d, ok := strings.CutPrefix(line, "RECOVERED "); ok {
			r.Recovered = append(r.Recovered, d)
		}
	}
	return r
}

// killAt runs op in a child process and SIGKILLs it at point at of its write (at < 0: runs it
// to the end). It is the building block of the crash tests, and meant for the upgrade property
// test too: run killAt(t, op, rand), then crashRecover, then compare crashState with the
// states before and after an unkilled run.
func killAt(t *testing.T, op crashOp, at int) crashResult {
	t.Helper()
	cmd, out, pause := crashStart(t, op, at)
	if at < 0 {
		_ = cmd.Wait()
		r := crashCollect(t, out, pause, false)
		r.ExitCode = cmd.ProcessState.ExitCode()
		return r
	}
	crashPaused(t, cmd, out, pause)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	r := crashCollect(t, out, pause, true)
	r.ExitCode = cmd.ProcessState.ExitCode()
	return r
}

// crashRecover runs `status` in a child, as a user's next command would, and returns the
// directions it recovered.
func crashRecover(t *testing.T, dir string) []string {
	t.Helper()
	r := killAt(t, crashOp{Mode: "status", Dir: dir}, -1)
	if strings.Contains(r.Out, "another opsready is writing") {
		t.Fatalf("status after a kill is blocked by the dead process:\n%s", r.Out)
	}
	return r.Recovered
}

// crashState describes a project completely: every path outside .git with its type, mode and
// content, the git index (with unmerged stages) and HEAD's tree and subject.
func crashState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		out["<no folder>"] = ""
		return out
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if rel == ".git" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + generator.HashBytes(b)
			if strings.HasPrefix(filepath.ToSlash(rel), "secrets/") && len(b) > 0 {
				v = fi.Mode().String() + " (random secret)" // new on every run
			}
		}
		out[filepath.ToSlash(rel)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		out["<git index>"], out["<git HEAD>"] = crashGit(dir)
	}
	return out
}

// crashGit lists the git index (path, stage, mode, blob) and HEAD (subject, files).
func crashGit(dir string) (string, string) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return "open: " + err.Error(), ""
	}
	var idx, head strings.Builder
	if ix, err := repo.Storer.Index(); err != nil {
		idx.WriteString("index: " + err.Error())
	} else {
		for _, e := range ix.Entries {
			fmt.Fprintf(&idx, "%s %d %s %s\n", e.Name, e.Stage, e.Mode, e.Hash)
		}
	}
	ref, err := repo.Head()
	if err != nil {
		return idx.String(), "HEAD: " + err.Error()
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return idx.String(), "HEAD: " + err.Error()
	}
	fmt.Fprintf(&head, "%s (%d parents) tree %s\n", strings.TrimSpace(c.Message), c.NumParents(), c.TreeHash)
	return idx.String(), head.String()
}

func crashDiff(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "-"+k)
		} else if v != w {
			if strings.HasPrefix(k, "<") {
				d = append(d, fmt.Sprintf("~%s:\n%s\n!=\n%s", k, v, w))
			} else {
				d = append(d, "~"+k)
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}

// crashCopy copies a project folder (with .git) as it is.
func crashCopy(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// crashUpgradeProject is TestUpgradeEveryCase's project: the upgrade to 1.1.0 creates,
// updates, merges, renames, deletes, leaves three conflicts (one binary) in the git index.
func crashUpgradeProject(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed (run `make tools`)")
		}
		t.Skip("git is not installed")
	}
	dir := demoProject(t, "1.0.0", map[string]string{"cache": "redis", "flavor": "fancy"})
	edit(t, dir, "config.yaml", "level: info", "level: debug")
	edit(t, dir, "old-name.conf", "root /srv", "root /data")
	must(t, os.Remove(filepath.Join(dir, "user-deleted.txt")))
	write(t, dir, "logo.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRours")
	edit(t, dir, "managed.conf", "line2", "line2 edited")
	write(t, dir, "added.txt", "added by the team\n")
	must(t, os.Chmod(filepath.Join(dir, "config.yaml"), 0o755)) // a team chmod, kept or rolled back with the rest
	commit(t, dir)
	return dir
}

// crashSweep kills run at every point of its write, recovers with `status` and checks that the
// tree is exactly the old or the new state. It returns the counts of outcomes.
func crashSweep(t *testing.T, template string, op func(dir string) crashOp) map[string]int {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref")
	if template != "" {
		crashCopy(t, template, ref)
	}
	old := crashState(t, ref)
	full := killAt(t, op(ref), -1)
	if !crashOK(full.Out) {
		t.Fatalf("the unkilled run failed:\n%s", full.Out)
	}
	want := crashState(t, ref)
	if crashDiff(old, want) == "" {
		t.Fatal("the run changed nothing")
	}
	if len(full.Points) < 10 {
		t.Fatalf("only %d points: %v", len(full.Points), full.Points)
	}
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for n := range full.Points {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := filepath.Join(t.TempDir(), "proj")
			if template != "" {
				crashCopy(t, template, dir)
			}
			killAt(t, op(dir), n)
			recs := crashRecover(t, dir)
			got := crashState(t, dir)
			how := "none"
			if len(recs) > 0 {
				how = strings.Join(recs, "+")
			}
			point := full.Points[n]
			switch {
			case crashDiff(got, want) == "":
				if how == generator.DirectionBack {
					t.Errorf("kill at %s: reported rolled back, but the tree is the new one", point)
				}
				how = "new/" + how
			case crashDiff(got, old) == "":
				if how == generator.DirectionForward {
					t.Errorf("kill at %s: reported rolled forward, but the tree is the old one", point)
				}
				how = "old/" + how
			default:
				t.Errorf("kill at %s (recovered %s): the tree is in between:\n  against the old: %s\n  against the new: %s", point, how, crashDiff(got, old), crashDiff(got, want))
				how = "in between"
			}
			mu.Lock()
			counts[how]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return counts
}

// An upgrade SIGKILLed at any point of its write is, after the next command, exactly the old
// or the new project: files, modes, the lock file, the git index with its unmerged entries.
func TestCrashUpgradeKilledAtEveryPoint(t *testing.T) {
	start := time.Now()
	template := crashUpgradeProject(t)
	counts := crashSweep(t, template, func(dir string) crashOp { return crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0"} })
	t.Logf("upgrade: %v in %s", counts, time.Since(start).Round(time.Millisecond))
}

// A `new` SIGKILLed at any point is, after the next command, no folder at all or the project
// committed to git.
func TestCrashNewKilledAtEveryPoint(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil && os.Getenv("CI") == "" {
		t.Skip("git is not installed")
	}
	start := time.Now()
	counts := crashSweep(t, "", func(dir string) crashOp {
		return crashOp{Mode: "new", Dir: dir, Ref: "demo@1.0.0", Set: map[string]string{"cache": "redis"}}
	})
	t.Logf("new: %v in %s", counts, time.Since(start).Round(time.Millisecond))
}

// Two upgrades at once: the second fails at once naming the first, which finishes alone; a
// SIGKILLed holder does not block the next run.
func TestCrashConcurrentUpgrades(t *testing.T) {
	template := crashUpgradeProject(t)
	ref := filepath.Join(t.TempDir(), "ref")
	crashCopy(t, template, ref)
	full := killAt(t, crashOp{Mode: "upgrade", Dir: ref, To: "1.1.0"}, -1)
	want := crashState(t, ref)
	mid := len(full.Points) / 2 // in the middle of the moves
	for i, p := range full.Points {
		if strings.HasSuffix(p, " journal committed") {
			mid = i
		}
	}
	if mid == 0 {
		t.Fatalf("no points: %v", full.Points)
	}

	t.Run("second fails at once", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "proj")
		crashCopy(t, template, dir)
		first, out, pause := crashStart(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0"}, mid)
		crashPaused(t, first, out, pause)
		for _, op := range []crashOp{{Mode: "upgrade", Dir: dir, To: "1.1.0"}, {Mode: "upgrade", Dir: dir, To: "1.1.0", Force: true}, {Mode: "new", Dir: dir, Ref: "demo@1.0.0", Force: true}, {Mode: "status", Dir: dir}} {
			t0 := time.Now()
			second := killAt(t, op, -1)
			wantMsg := fmt.Sprintf("ERROR another opsready is writing to %s (pid %d since ", dir, first.Process.Pid)
			if !strings.Contains(second.Out, wantMsg) {
				t.Errorf("%s --force=%v while another writes:\n%s\nwant %q", op.Mode, op.Force, second.Out, wantMsg)
			}
			if d := time.Since(t0); d > 30*time.Second {
				t.Errorf("%s waited %s instead of failing at once", op.Mode, d)
			}
		}
		must(t, os.WriteFile(pause+".go", nil, 0o644))
		if err := first.Wait(); err != nil || !crashOK(out.String()) {
			t.Fatalf("the first upgrade: %v\n%s", err, out)
		}
		if d := crashDiff(crashState(t, dir), want); d != "" {
			t.Errorf("after the first upgrade finished alone, the project differs from a lone upgrade: %s", d)
		}
	})

	t.Run("killed holder does not block", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "proj")
		crashCopy(t, template, dir)
		killAt(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0"}, mid)
		if _, err := os.Stat(filepath.Join(dir, WriteLockName)); err != nil {
			t.Fatalf("the killed run left no lock file, so this tests nothing: %v", err)
		}
		next := killAt(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0", Force: true}, -1)
		if !strings.Contains(next.Out, "RECOVERED forward") || !crashOK(next.Out) {
			t.Fatalf("the next upgrade after a kill:\n%s", next.Out)
		}
		if d := crashDiff(crashState(t, dir), want); d != "" {
			t.Errorf("recovered and re-run upgrade differs from a lone upgrade: %s", d)
		}
	})

	t.Run("free-running pair", func(t *testing.T) {
		for i := range 3 {
			dir := filepath.Join(t.TempDir(), "proj")
			crashCopy(t, template, dir)
			a, aout, ap := crashStart(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0", Force: true}, -1)
			b, bout, bp := crashStart(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0", Force: true}, -1)
			_, _ = a.Wait(), b.Wait()
			ra, rb := crashCollect(t, aout, ap, false), crashCollect(t, bout, bp, false)
			for _, r := range []crashResult{ra, rb} {
				if !crashOK(r.Out) && !strings.Contains(r.Out, "another opsready is writing") {
					t.Errorf("run %d: neither finished nor refused:\n%s", i, r.Out)
				}
			}
			if d := crashDiff(crashState(t, dir), want); d != "" {
				t.Errorf("run %d: two upgrades at once left a project unlike one upgrade: %s", i, d)
			}
		}
	})
}

// crashOK says whether the child's run succeeded.
func crashOK(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		if line == "OK" {
			return true
		}
	}
	return false
}

// Recovery itself may be SIGKILLed at any of its points: the command after that still ends
// with exactly the new project.
func TestCrashRecoveryKilledAtEveryPoint(t *testing.T) {
	template := crashUpgradeProject(t)
	ref := filepath.Join(t.TempDir(), "ref")
	crashCopy(t, template, ref)
	full := killAt(t, crashOp{Mode: "upgrade", Dir: ref, To: "1.1.0"}, -1)
	want := crashState(t, ref)
	at := -1
	for i, p := range full.Points {
		if strings.HasSuffix(p, " journal committed") {
			at = i + 2 // two moves made, the rest left to recovery
		}
	}
	if at < 0 {
		t.Fatalf("no journal point in %v", full.Points)
	}
	// Learn the recovery's own points on one copy.
	probe := filepath.Join(t.TempDir(), "proj")
	crashCopy(t, template, probe)
	killAt(t, crashOp{Mode: "upgrade", Dir: probe, To: "1.1.0"}, at)
	rec := killAt(t, crashOp{Mode: "status", Dir: probe}, -1)
	if len(rec.Points) < 5 || len(rec.Recovered) != 1 {
		t.Fatalf("recovery passed %d points, recovered %v:\n%s", len(rec.Points), rec.Recovered, rec.Out)
	}
	if d := crashDiff(crashState(t, probe), want); d != "" {
		t.Fatalf("recovered project differs from the new one: %s", d)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for n := range rec.Points {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := filepath.Join(t.TempDir(), "proj")
			crashCopy(t, template, dir)
			killAt(t, crashOp{Mode: "upgrade", Dir: dir, To: "1.1.0"}, at)
			killAt(t, crashOp{Mode: "status", Dir: dir}, n)
			crashRecover(t, dir)
			if d := crashDiff(crashState(t, dir), want); d != "" {
				t.Errorf("recovery killed at %s, then recovered again: differs from the new project: %s", rec.Points[n], d)
			}
		}()
	}
	wg.Wait()
	t.Logf("recovery killed at %d points", len(rec.Points))
}

// ReadStatus, not only ReadStatusLocked, leaves the write lock out of the team's added files:
// a reader that does not lock sees it while another opsready writes.
func TestReadStatusSkipsWriteLock(t *testing.T) {
	dir := demoProject(t, "1.0.0", nil)
	l, err := lockProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { must(t, l.unlock()) }()
	if _, err := os.Stat(filepath.Join(dir, WriteLockName)); err != nil {
		t.Fatalf("no lock file while locked, so this tests nothing: %v", err)
	}
	write(t, dir, "team.txt", "ours\n")
	st, err := ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(st.Added, ",") != "team.txt" {
		t.Errorf("added %v, want only the team's file", st.Added)
	}
}
