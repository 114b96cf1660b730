package backup

import (
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// ---------------------------------------------------------------------------------------
// The Makefile's targets, and the files store through them for real.

func TestBackupOpsMake(t *testing.T) {
	t.Parallel()
	makeBin := e2eutil.RequireTool(t, "make")
	e2eutil.RequireTool(t, "restic")
	e2eutil.RequireTool(t, "jq")
	c := bopsCases()[1] // postgres + redis: three stores, only files has a test yet
	dir := e2eutil.Generate(t, c.set())

	// Production always uses the four files; the jobs run in the backup container.
	fakeBin := bopsFakeDocker(t)
	record := filepath.Join(t.TempDir(), "argv")
	for target, script := range map[string]string{"backup": "backup.sh", "restore-test": "restore-test.sh", "backups": "list.sh", "prune": "prune.sh"} {
		cmd := exec.Command(makeBin, "-s", target, "STORE=files", "COMPOSE="+filepath.Join(fakeBin, "docker")+" compose")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BOPS_RECORD="+record)
		out, _ := cmd.CombinedOutput() // restore-test's tail fails: no log yet
		// Interactive: make keeps the terminal, so no -T.
		want := slices.DeleteFunc(bopsJobArgs(script, "files"), func(a string) bool { return a == "-T" })
		if got := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n")[1:]; !slices.Equal(got, want) {
			t.Errorf("make %s runs docker %q, want %q\n%s", target, got, want, out)
		}
	}
	mk := bopsReadFile(t, filepath.Join(dir, "Makefile"))
	// make verify takes repositories, not stores.
	cmd := exec.Command(makeBin, "-s", "verify", "REPOSITORY=primary", "SUBSET=100%", "COMPOSE="+filepath.Join(fakeBin, "docker")+" compose")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BOPS_RECORD="+record)
	vout, _ := cmd.CombinedOutput() // its tail fails: no log yet
	want := slices.DeleteFunc(bopsJobArgs("verify.sh", "--read-data-subset=100%", "primary"), func(a string) bool { return a == "-T" })
	if got := strings.Split(strings.TrimSpace(bopsReadFile(t, record)), "\n")[1:]; !slices.Equal(got, want) {
		t.Errorf("make verify runs docker %q, want %q\n%s", got, want, vout)
	}
	for _, target := range []string{"backup", "restore-test", "backups", "prune", "verify", "install-schedule", "install-cron"} {
		if !regexp.MustCompile(`(?m)^` + target + `: ## `).MatchString(mk) {
			t.Errorf("Makefile: no documented target %s", target)
		}
	}
	if !strings.Contains(mk, "ops/systemd/*.service ops/systemd/*.timer") || !strings.Contains(mk, "verify") {
		t.Errorf("Makefile: `check` does not run systemd-analyze verify on ops/systemd")
	}

	// Plain-host mode (BACKUP_RUN empty) with the real scripts: back up the files store,
	// restore-test it from the off-site copy, list and prune it.
	offsite := filepath.Join(e2eutil.FastTempDir(t), "offsite")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(makeBin, append([]string{"-s"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BACKUP_OFFSITE_REPOSITORY="+offsite, "TMPDIR="+e2eutil.FastTempDir(t))
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %v: %v\n%s", args, err, out)
		}
		t.Logf("make %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return string(out)
	}
	policyBefore := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md"))
	run("backup", "BACKUP_RUN=", "STORE=files")
	if _, err := os.Stat(filepath.Join(dir, "var", "lib", "node-exporter", "textfile", "backup_files_full.prom")); err != nil {
		t.Errorf("no backup metric after make backup: %v", err)
	}
	out := run("restore-test", "BACKUP_RUN=", "STORE=files")
	if !regexp.MustCompile(`store=files result=passed duration_s=\d+ snapshot=`).MatchString(out) {
		t.Errorf("make restore-test does not show the passed line of restore-test.log:\n%s", out)
	}
	if out := run("backups", "BACKUP_RUN=", "STORE=files"); !regexp.MustCompile(`(?m)\bfull\b.*\b[0-9a-f]{8}`).MatchString(out) {
		t.Errorf("make backups does not list the files backup (kind full, its id):\n%s", out)
	}
	run("prune", "BACKUP_RUN=", "STORE=files")
	// The daily verification, for real: this host's restic repository and the off-site one
	// (the database is backed up with pg_dump here: no pgBackRest repository).
	out = run("verify", "BACKUP_RUN=")
	for _, repo := range []string{"primary", "offsite"} {
		if !regexp.MustCompile(`repository=` + repo + ` tool=restic result=passed duration_s=\d+`).MatchString(bopsReadFile(t, filepath.Join(dir, "var", "log", "ops", "verify.log"))) {
			t.Errorf("make verify: no passed line for the %s repository in verify.log:\n%s", repo, out)
		}
		prom := bopsReadFile(t, filepath.Join(dir, "var", "lib", "node-exporter", "textfile", "backup_verify_"+repo+".prom"))
		if !strings.Contains(prom, `backup_verify_last_success_timestamp_seconds{repository="`+repo+`",tool="restic"} `) {
			t.Errorf("make verify: backup_verify_%s.prom:\n%s", repo, prom)
		}
	}

	// The jobs never edit tracked files: the restore test's result is in its log and metrics.
	if policy := bopsReadFile(t, filepath.Join(dir, "docs", "backup-policy.md")); policy != policyBefore {
		t.Errorf("docs/backup-policy.md changed during the jobs:\n%s", policy)
	}

	// The acceptance check reads restore-test.log: files passed, the others never ran.
	item := func() (string, string) {
		t.Helper()
		out, _, code := e2eutil.RunScript(t, dir, "ops/acceptance/check.sh")
		if code != 0 {
			t.Fatalf("check.sh: exit %d\n%s", code, out)
		}
		return e2eutil.AcceptanceStatuses(t, out)[e2eutil.AcceptanceItems[2]], out
	}
	status, out := item()
	if status != "NOT MET" || !strings.Contains(out, "files: the last restore test passed") ||
		!strings.Contains(out, "postgres: no restore test recorded") || !strings.Contains(out, "redis: no restore test recorded") ||
		!strings.Contains(out, "off-site credentials still empty: secrets/offsite_s3_access_key_id secrets/offsite_s3_secret_access_key") {
		t.Errorf("check.sh after the files test: %s\n%s", status, out)
	}
	for _, f := range []string{"offsite_s3_access_key_id", "offsite_s3_secret_access_key"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", f), []byte("filled-in-"+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Every store passed, the older lines rotated away and compressed: met.
	logPath := filepath.Join(dir, "var", "log", "ops", "restore-test.log")
	rotated := bopsReadFile(t, logPath)
	f, err := os.Create(logPath + ".2.gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(rotated))
	zw.Close()
	f.Close()
	lines := "2026-01-04T03:00:00Z store=postgres result=passed duration_s=12 snapshot=abcdef12 tables=2 rows=10\n" +
		"2026-01-04T03:01:00Z store=redis result=passed duration_s=2 snapshot=abcdef13 keys=5\n"
	if err := os.WriteFile(logPath, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, out := item(); status != "MET" {
		t.Errorf("check.sh with every store passed (files in a rotated copy): %s\n%s", status, out)
	}
	// A newer failed test of a store makes it not met again.
	fail := "2099-01-01T00:00:00Z store=redis result=failed duration_s=1 error=\"the RDB does not load\"\n"
	if err := os.WriteFile(logPath, []byte(lines+fail), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, out := item(); status != "NOT MET" || !strings.Contains(out, "redis: the last restore test failed") {
		t.Errorf("check.sh after a failed test: %s\n%s", status, out)
	}
}
