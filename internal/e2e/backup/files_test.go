package backup

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// brfEntry describes a file system entry for comparison: type, permissions and content or
// link target.
func brfEntry(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		return "missing"
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		return "symlink -> " + target
	case fi.IsDir():
		return fmt.Sprintf("dir %v", fi.Mode().Perm())
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("file %v %d %x", fi.Mode().Perm(), len(b), b)
	}
}

// brfTree maps each path below root/rel (for each rel) to brfEntry.
func brfTree(t *testing.T, root string, rels ...string) (map[string]string, int) {
	t.Helper()
	out, files := map[string]string{}, 0
	for _, rel := range rels {
		err := filepath.WalkDir(filepath.Join(root, rel), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(root, path)
			out[r] = brfEntry(t, path)
			if d.Type().IsRegular() {
				files++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out, files
}

// TestBackupFiles backs up .env, secrets and uploads (binary, nested, odd names, modes, a
// symlink), restores them byte for byte with their modes, and proves that a backup that
// does not match its manifest, and one whose packs are damaged, fail the restore test.
func TestBackupFiles(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, true)
	p.cheapRepos(t)
	up := filepath.Join(p.dir, "var", "uploads")
	blob := make([]byte, 256<<10)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		rel  string
		data []byte
		mode fs.FileMode
	}{
		{"a.txt", []byte("hello\n"), 0o644},
		{"img/blob.bin", blob, 0o600},
		{"img/deep/nested dir/naïve file.txt", []byte("nested\n"), 0o640},
		{"tools/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"empty", nil, 0o644},
	} {
		path := filepath.Join(up, f.rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(up, "link")); err != nil {
		t.Fatal(err)
	}
	paths := []string{".env", "secrets", "var/uploads"}
	original, nfiles := brfTree(t, p.dir, paths...)
	env := map[string]string{"BACKUP_STORES": "files:files", "BACKUP_FILES_PATHS": strings.Join(paths, " ") + " not/there"}

	start := time.Now()
	out := p.mustRun(t, env, "ops/backup/backup.sh")
	end := time.Now()
	if !strings.Contains(out, "not/there") || !strings.Contains(out, "skipped") {
		t.Errorf("a missing path was not reported as skipped:\n%s", out)
	}
	metrics := brfCheckBackupMetrics(t, p, "files", "full", start, end, float64(len(blob)))
	m := p.manifest(t, "files")
	if fmt.Sprint(m["paths"]) != fmt.Sprint(paths) || fmt.Sprint(m["skipped"]) != "[not/there]" || m["files_count"].(float64) != float64(nfiles) {
		t.Errorf("manifest paths %v skipped %v files_count %v, want %v [not/there] %d", m["paths"], m["skipped"], m["files_count"], paths, nfiles)
	}
	t.Logf("files backup: %d files, %s, %v bytes staged", nfiles, end.Sub(start).Round(time.Millisecond), metrics["backup_last_size_bytes"])

	start = time.Now()
	p.mustRun(t, env, "ops/backup/restore-test.sh")
	line := brfLastLogLine(t, p)
	for _, want := range []string{"store=files", "result=passed", fmt.Sprintf("files=%d", nfiles), "paths=3", "canary=ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("restore-test.log line %q lacks %q", line, want)
		}
	}
	t.Logf("files restore test: %s", time.Since(start).Round(time.Millisecond))
	passed, err := os.ReadFile(p.textfile("restore_test_files.prom"))
	if err != nil || brfRestoreResult(t, p, "files") != 1 {
		t.Fatalf("a passed restore test did not record success: %v", err)
	}

	// Change the originals, then restore into a new directory: equal to the backup.
	if err := os.WriteFile(filepath.Join(up, "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(p.tmp, "restored")
	p.mustRun(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target)
	got, _ := brfTree(t, target, paths...)
	if d := brfDiff(original, got); len(d) > 0 {
		t.Errorf("restored files differ from the backed-up ones: %v", d[:min(len(d), 10)])
	}
	if _, err := os.Lstat(filepath.Join(target, ".backup-canary")); err == nil {
		t.Error("the restore left the canary file in the target")
	}
	if out, err := p.run(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("a restore over existing files did not refuse (err %v):\n%s", err, out)
	}
	p.mustRun(t, nil, "ops/backup/restore.sh", "files", "--target-dir", target, "--force")
	defOut := p.mustRun(t, nil, "ops/backup/files.sh", "restore")
	if !strings.Contains(defOut, filepath.Join(p.env["BACKUP_DIR"], "restored", "files-")) {
		t.Errorf("restore without --target-dir did not use a new directory below BACKUP_DIR/restored:\n%s", defOut)
	}

	// A snapshot whose file does not match its manifest (same size, other bytes) fails.
	newest := p.snapshots(t, p.primary(), "store=files")
	tamper := filepath.Join(p.tmp, "tamper")
	p.restic(t, p.primary(), "restore", newest[len(newest)-1].ID, "--target", tamper)
	staged := filepath.Join(tamper, newest[len(newest)-1].Paths[0])
	if err := os.WriteFile(filepath.Join(staged, "tree", "var", "uploads", "a.txt"), []byte("HELLO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.restic(t, p.primary(), "backup", "--host", newest[0].Host, "--tag", "store=files", "--tag", "kind=full", staged)
	out, err = p.run(t, map[string]string{"RESTORE_TEST_FROM": "primary"}, "ops/backup/files.sh", "restore-test")
	if err == nil || !strings.Contains(out, "tree/var/uploads/a.txt has a different sha256") {
		t.Errorf("a snapshot not matching its manifest: err %v, want a failure naming the file:\n%s", err, out)
	}
	if brfRestoreResult(t, p, "files") != 0 {
		t.Error("restore_test_last_result is not 0 after a failed test")
	}

	// Damaged packs of the newest off-site backup fail the restore test.
	before := brfDataFiles(t, p.offsite())
	p.mustRun(t, env, "ops/backup/backup.sh")
	brfCorruptNew(t, p.offsite(), before)
	out, err = p.run(t, env, "ops/backup/restore-test.sh")
	if err == nil || !strings.Contains(out, "restore test of files FAILED") || !strings.Contains(out, "damaged") {
		t.Errorf("the restore test of a damaged backup: err %v, want a failure:\n%s", err, out)
	}
	if brfRestoreResult(t, p, "files") != 0 {
		t.Error("restore_test_last_result is not 0 after a failed test")
	}
	if now, _ := os.ReadFile(p.textfile("restore_test_files.prom")); !bytes.Equal(now, passed) {
		t.Error("a failed restore test changed restore_test_files.prom")
	}
}
