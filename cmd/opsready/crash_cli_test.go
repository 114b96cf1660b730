package main

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
	"testing"
	"time"

	"github.com/opsready/opsready/generator"
)

// TestCLIChild is opsready itself when re-executed by the CLI crash tests; otherwise nothing.
func TestCLIChild(t *testing.T) {
	spec := os.Getenv("OPSREADY_CLI_CHILD")
	if spec == "" {
		t.Skip("only run as the child of the CLI crash tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(spec), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
}

type cliRun struct {
	cmd         *exec.Cmd
	out, errOut strings.Builder
	pause       string
}

// cliStart runs `opsready args...` as a child process; with at >= 0 it stops at that point of
// its write (see generator's OPSREADY_TEST_PAUSE_*).
func cliStart(t *testing.T, at int, args ...string) *cliRun {
	t.Helper()
	spec, _ := json.Marshal(args)
	r := &cliRun{pause: filepath.Join(t.TempDir(), "points")}
	r.cmd = exec.Command(os.Args[0], "-test.run=^TestCLIChild$", "-test.count=1")
	r.cmd.Env = append(os.Environ(), "OPSREADY_CLI_CHILD="+string(spec), "OPSREADY_TEST_PAUSE_FILE="+r.pause, fmt.Sprintf("OPSREADY_TEST_PAUSE_AT=%d", at))
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errOut
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		_ = r.cmd.Wait()
		return r
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		if _, err := os.Stat(r.pause + ".paused"); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
			t.Fatalf("opsready %v never reached point %d:\n%s%s", args, at, &r.out, &r.errOut)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *cliRun) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = r.cmd.Wait()
}

func (r *cliRun) points(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(r.pause)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		out = append(out, sc.Text())
	}
	return out
}

// cliState lists every file outside .git with its mode and content hash, and the git index.
func cliState(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".git" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := filepath.ToSlash(rel) + " " + fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + generator.HashBytes(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	cmd := exec.Command("git", "ls-files", "-s")
	cmd.Dir = dir
	idx, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git ls-files: %v %s", err, idx)
	}
	return strings.Join(lines, "\n") + "\n--- index\n" + string(idx)
}

func cliCopy(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return to
}

// The real CLI, SIGKILLed at sampled points of an upgrade of the webapp blueprint: the next
// `opsready status` says which way it recovered and the project is the old or the new one;
// while an upgrade runs, a second one and `status` fail at once naming it.
func TestCLIKilledUpgradeIsRecovered(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is not installed (run `make tools`)")
		}
		t.Skip("git is not installed")
	}
	base := filepath.Join(t.TempDir(), "shop")
	if code, _, errOut := runCLI(t, "", "new", "--defaults", "--blueprint", "webapp@1.3.0", base); code != 0 {
		t.Fatal(errOut)
	}
	upgrade := []string{"upgrade", "--to", "1.3.0", "--set", "domain=shop2.example.org"}
	old := cliState(t, base)
	ref := cliCopy(t, base)
	full := cliStart(t, -1, append(upgrade, ref)...)
	if full.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("upgrade: %s%s", &full.out, &full.errOut)
	}
	want := cliState(t, ref)
	pts := full.points(t)
	journal := -1
	for i, p := range pts {
		if strings.HasSuffix(p, " journal committed") {
			journal = i
		}
	}
	if journal < 0 || journal+3 >= len(pts) {
		t.Fatalf("points: %v", pts)
	}
	t.Logf("%d points, journal committed at %d", len(pts), journal)
	for _, at := range []int{journal - 1, journal + (len(pts)-journal)/2, len(pts) - 1} {
		dir := cliCopy(t, base)
		cliStart(t, at, append(upgrade, dir)...).kill(t)
		st := cliStart(t, -1, "status", dir)
		if st.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("status after a kill at %s: %s%s", pts[at], &st.out, &st.errOut)
			continue
		}
		got := cliState(t, dir)
		stderr, stdout := st.errOut.String(), st.out.String()
		switch {
		case got == want:
			if !strings.Contains(stderr, "opsready: "+dir+": finished a write that was interrupted") &&
				!strings.Contains(stderr, "opsready: "+dir+": a write that was interrupted had finished") ||
				!strings.Contains(stdout, "recovered: ") {
				t.Errorf("kill at %s: the project was completed, but status did not say so:\n%s%s", pts[at], stdout, stderr)
			}
		case got == old:
			if strings.Contains(stderr, "finished") {
				t.Errorf("kill at %s: status says rolled forward, the project is the old one:\n%s", pts[at], stderr)
			}
		default:
			t.Errorf("kill at %s: the project is neither the old nor the new one after `opsready status`", pts[at])
		}
		if code, out, errOut := runCLI(t, "", "status", dir); code != 0 || strings.Contains(out+errOut, "recovered") {
			t.Errorf("second status after a kill at %s: %d\n%s%s", pts[at], code, out, errOut)
		}
	}

	dir := cliCopy(t, base)
	holder := cliStart(t, journal+2, append(upgrade, dir)...)
	for _, args := range [][]string{append(upgrade, dir), {"status", dir}, {"new", "--defaults", "--force", dir}} {
		code, _, errOut := runCLI(t, "", args...)
		wantMsg := fmt.Sprintf("opsready: another opsready is writing to %s (pid %d since ", dir, holder.cmd.Process.Pid)
		if code != exitError || !strings.Contains(errOut, wantMsg) {
			t.Errorf("%v while an upgrade writes: exit %d\n%s\nwant exit 1 and %q", args[0], code, errOut, wantMsg)
		}
	}
	holder.kill(t)
	if code, out, errOut := runCLI(t, "", "status", dir); code != 0 || !strings.Contains(out, "recovered: finished") {
		t.Errorf("status after the holder was killed: %d\n%s%s", code, out, errOut)
	}
	if got := cliState(t, dir); got != want {
		t.Error("the project is not the upgraded one after recovery")
	}
	if out, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=all").CombinedOutput(); err != nil || strings.Contains(string(out), "opsready-staging") || strings.Contains(string(out), ".opsready.lock") {
		t.Errorf("git status after recovery shows opsready's own files: %v\n%s", err, out)
	}
}
