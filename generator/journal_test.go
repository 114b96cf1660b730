package generator

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// jrnChange is the change the kill tests make: a replaced file, a mode change, a removal, new
// nested folders, a folder entry with its own mode, and a final file.
func jrnChange() Change {
	return Change{
		Files: Files{
			{Path: "keep.txt", Data: []byte("new keep\n"), Mode: 0o644},
			{Path: "run.sh", Data: []byte("#!/bin/sh\necho new\n"), Mode: 0o755},
			{Path: "secrets", Mode: fs.ModeDir | 0o700},
			{Path: "secrets/x", Data: []byte("s3cret"), Mode: 0o644},
			{Path: "sub/deep/a.txt", Data: []byte("a\n"), Mode: 0o644},
		},
		Remove: []string{"gone.txt"},
		Final:  Files{{Path: "lock.yaml", Data: []byte("version: 2\n"), Mode: 0o644}},
	}
}

func jrnOldTree(t *testing.T, dir string) {
	t.Helper()
	for p, c := range map[string]string{"keep.txt": "old keep\n", "run.sh": "#!/bin/sh\necho old\n", "gone.txt": "gone\n", "untouched.txt": "u\n", "lock.yaml": "version: 1\n"} {
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644))
		must(t, os.Chmod(filepath.Join(dir, p), 0o644))
	}
}

// jrnSnapshot describes a tree: every path with its type, mode and content.
func jrnSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
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
			v += " " + string(b)
		}
		out[filepath.ToSlash(rel)] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jrnDiff(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "-"+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("~%s %q != %q", k, v, w))
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

// TestJournalChild is the process the kill tests start and kill; it does nothing otherwise.
func TestJournalChild(t *testing.T) {
	dir := os.Getenv("OPSREADY_JOURNAL_CHILD_DIR")
	if dir == "" {
		t.Skip("only run as the child of TestJournalSurvivesKillAtEveryPoint")
	}
	tx, err := ApplyChange(dir, jrnChange())
	if err == nil {
		err = tx.Done()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// jrnRun runs the child on dir; with at >= 0 it is SIGKILLed at that point. It returns the
// points the child passed.
func jrnRun(t *testing.T, dir string, at int) []string {
	t.Helper()
	pause := filepath.Join(t.TempDir(), "points")
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OPSREADY_JOURNAL_CHILD_DIR="+dir, "OPSREADY_TEST_PAUSE_FILE="+pause, fmt.Sprintf("OPSREADY_TEST_PAUSE_AT=%d", at))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	if at >= 0 {
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := os.Stat(pause + ".paused"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the child never reached point %d:\n%s", at, out)
			}
			time.Sleep(2 * time.Millisecond)
		}
		must(t, cmd.Process.Kill()) // SIGKILL
		_ = cmd.Wait()
	} else if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	f, err := os.Open(pause)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pts []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		pts = append(pts, sc.Text())
	}
	return pts
}

// A write SIGKILLed at any of its points is recovered to exactly the old or the new tree.
func TestJournalSurvivesKillAtEveryPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per kill point")
	}
	oldDir, newDir := t.TempDir(), t.TempDir()
	jrnOldTree(t, oldDir)
	jrnOldTree(t, newDir)
	old := jrnSnapshot(t, oldDir)
	points := jrnRun(t, newDir, -1)
	want := jrnSnapshot(t, newDir)
	if len(points) < 10 {
		t.Fatalf("only %d points: %v", len(points), points)
	}
	counts := map[string]int{}
	for n := range points {
		dir := t.TempDir()
		jrnOldTree(t, dir)
		jrnRun(t, dir, n)
		recs, err := Recover(dir, nil)
		if err != nil {
			t.Fatalf("kill at %s: recover: %v", points[n], err)
		}
		got := jrnSnapshot(t, dir)
		dir0 := "none"
		if len(recs) == 1 {
			dir0 = recs[0].Direction
		} else if len(recs) > 1 {
			t.Errorf("kill at %s: %d recoveries", points[n], len(recs))
		}
		switch {
		case jrnDiff(got, want) == "":
			counts["new/"+dir0]++
			if dir0 == DirectionBack {
				t.Errorf("kill at %s: reported rolled back, but the tree is the new one", points[n])
			}
		case jrnDiff(got, old) == "":
			counts["old/"+dir0]++
			if dir0 == DirectionForward {
				t.Errorf("kill at %s: reported rolled forward, but the tree is the old one", points[n])
			}
		default:
			t.Errorf("kill at %s: the tree is in between: against the old: %s; against the new: %s", points[n], jrnDiff(got, old), jrnDiff(got, want))
			counts["in between"]++
		}
		if again, err := Recover(dir, nil); err != nil || len(again) != 0 {
			t.Errorf("kill at %s: a second recovery found %v, %v", points[n], again, err)
		}
	}
	t.Logf("%d kill points: %v", len(points), counts)
}

// Recovery of a journal whose staged file is damaged rolls back, restoring every original.
func TestJournalDamagedStagingRollsBack(t *testing.T) {
	dir := t.TempDir()
	jrnOldTree(t, dir)
	old := jrnSnapshot(t, dir)
	pts := jrnRun(t, t.TempDir(), -1) // learn the point names on a scratch tree
	at := -1
	for i, p := range pts {
		if strings.HasSuffix(p, "move put keep.txt") {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("no point after keep.txt was moved: %v", pts)
	}
	jrnRun(t, dir, at)
	entries, _ := filepath.Glob(filepath.Join(dir, StagingPrefix+"*", "new", "*"))
	if len(entries) == 0 {
		t.Fatal("nothing staged at the kill point")
	}
	must(t, os.WriteFile(entries[len(entries)-1], []byte("damaged"), 0o644))
	recs, err := Recover(dir, nil)
	if err != nil || len(recs) != 1 || recs[0].Direction != DirectionBack {
		t.Fatalf("recover = %+v, %v; want one roll-back", recs, err)
	}
	if d := jrnDiff(jrnSnapshot(t, dir), old); d != "" {
		t.Errorf("rolled back tree differs from the old one: %s", d)
	}
}

// A staging folder of an older opsready (no marker, originals inside) is kept and reported.
func TestJournalKeepsForeignStaging(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, StagingPrefix+"123", "old"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, StagingPrefix+"123", "old", "0"), []byte("team file"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, StagingPrefix+"456"), 0o755)) // empty: removed
	recs, err := Recover(dir, nil)
	if err != nil || len(recs) != 1 || recs[0].Direction != DirectionKept {
		t.Fatalf("recover = %+v, %v", recs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, StagingPrefix+"123", "old", "0")); err != nil {
		t.Error("the older opsready's originals were removed")
	}
	if _, err := os.Stat(filepath.Join(dir, StagingPrefix+"456")); err == nil {
		t.Error("the empty staging folder was kept")
	}
}
