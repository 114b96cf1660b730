package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bretSynthetic adds snapshots of store taken at the given times to the primary repository
// of p, the way the scripts store them (staging path, --host, tags), two restic runs at a
// time. The staging directory is created for it and removed after.
func bretSynthetic(t *testing.T, p *brfProject, host, store string, times []time.Time) {
	t.Helper()
	stage := filepath.Join(p.env["BACKUP_DIR"], "staging", store)
	if err := os.MkdirAll(stage, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stage)
	if err := os.WriteFile(filepath.Join(stage, "manifest.json"), []byte(`{"synthetic": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, tm := range times {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := exec.Command("restic", "--cache-dir", filepath.Join(p.tmp, "restic-cache"), "backup", "--quiet",
				"--time", tm.UTC().Format("2006-01-02 15:04:05"), "--host", host,
				"--tag", "store="+store, "--tag", "kind=full", stage)
			cmd.Env = append(p.environ(nil), "RESTIC_REPOSITORY="+p.primary(),
				"RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets", "restic_password"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("restic backup --time %s: %v\n%s", tm, err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// bretHost is the restic --host of the project's backups: BACKUP_PROJECT of backup.env.
func bretHost(t *testing.T, p *brfProject) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "ops", "backup", "backup.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "BACKUP_PROJECT="); ok {
			return strings.Trim(v, "'")
		}
	}
	t.Fatal("backup.env has no BACKUP_PROJECT")
	return ""
}

// bretExpected computes, independently of restic, which snapshot times a GFS policy keeps
// the way restic's forget defines --keep-daily/--keep-weekly/--keep-monthly: newest first,
// a snapshot is kept when it opens a new day (YYYYMMDD), ISO week or month bucket of a rule
// with count left, which uses one count. It also reports whether every rule ran out of
// counts: then newer restic versions, which also keep the oldest snapshot while a rule has
// counts left, keep exactly the same set.
func bretExpected(times []time.Time, daily, weekly, monthly int) (keep map[time.Time]bool, exhausted bool) {
	sorted := append([]time.Time(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].After(sorted[j]) })
	type rule struct {
		count  int
		bucket func(time.Time) int
		last   int
	}
	rules := []*rule{
		{daily, func(d time.Time) int { return d.Year()*10000 + int(d.Month())*100 + d.Day() }, -1},
		{weekly, func(d time.Time) int { y, w := d.ISOWeek(); return y*100 + w }, -1},
		{monthly, func(d time.Time) int { return d.Year()*100 + int(d.Month()) }, -1},
	}
	keep = map[time.Time]bool{}
	for _, tm := range sorted {
		for _, r := range rules {
			if r.count > 0 {
				if b := r.bucket(tm.UTC()); b != r.last {
					r.last = b
					r.count--
					keep[tm] = true
				}
			}
		}
	}
	exhausted = true
	for _, r := range rules {
		exhausted = exhausted && r.count == 0
	}
	return keep, exhausted
}

// bretTimes returns the snapshot times of a list as sorted RFC 3339 strings.
func bretTimes(list []brfSnapshot) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Time.UTC().Format(time.RFC3339Nano))
	}
	sort.Strings(out)
	return out
}

// TestBackupRetentionGFS fills the repositories with backups of the files store spread over
// eight months (several a day recently), runs prune.sh files with 7 daily, 4 weekly and 6
// monthly, and checks that exactly the snapshots the GFS rules select survive in both the
// primary and the off-site repository, and that other stores are not touched.
func TestBackupRetentionGFS(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, true)
	p.cheapRepos(t)
	host := bretHost(t, p)

	// A real backup: the newest.
	p.mustRun(t, nil, "ops/backup/files.sh", "backup")

	today := time.Now().UTC().Truncate(24 * time.Hour)
	var times []time.Time
	for d := 1; d <= 9; d++ {
		times = append(times, today.AddDate(0, 0, -d).Add(3*time.Hour))
		if d <= 3 {
			times = append(times, today.AddDate(0, 0, -d).Add(15*time.Hour+30*time.Minute))
		}
	}
	for d := 10; d <= 70; d += 6 {
		times = append(times, today.AddDate(0, 0, -d).Add(3*time.Hour))
	}
	for d := 80; d <= 240; d += 20 {
		times = append(times, today.AddDate(0, 0, -d).Add(3*time.Hour))
	}
	start := time.Now()
	bretSynthetic(t, p, host, "files", times)
	// Another store's old backup: not the files store's to prune.
	bretSynthetic(t, p, host, "redis", []time.Time{today.AddDate(0, 0, -200)})
	t.Logf("%d synthetic snapshots: %s", len(times)+1, time.Since(start).Round(time.Millisecond))
	fromPw := "RESTIC_FROM_PASSWORD_FILE=" + filepath.Join(p.dir, "secrets", "restic_password")
	copyCmd := exec.Command("restic", "--cache-dir", filepath.Join(p.tmp, "restic-cache"), "copy", "--from-repo", p.primary())
	copyCmd.Env = append(p.environ(nil), "RESTIC_REPOSITORY="+p.offsite(), fromPw,
		"RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets", "restic_password"))
	if out, err := copyCmd.CombinedOutput(); err != nil {
		t.Fatalf("restic copy to the off-site repository: %v\n%s", err, out)
	}

	all := p.snapshots(t, p.primary(), "store=files")
	if len(all) != len(times)+1 {
		t.Fatalf("%d files snapshots in the primary repository, want %d", len(all), len(times)+1)
	}
	var allTimes []time.Time
	for _, s := range all {
		allTimes = append(allTimes, s.Time)
	}
	keep, exhausted := bretExpected(allTimes, 7, 4, 6)
	if !exhausted {
		t.Fatal("the synthetic history does not use up every retention rule; the expectation would depend on the restic version")
	}
	var want []string
	for tm := range keep {
		want = append(want, tm.UTC().Format(time.RFC3339Nano))
	}
	sort.Strings(want)
	if len(want) >= len(all) || len(want) < 7 {
		t.Fatalf("the expectation keeps %d of %d snapshots: the test data does not exercise pruning", len(want), len(all))
	}

	env := map[string]string{"BACKUP_STORES": "files:files", "BACKUP_RETENTION_DAILY": "7",
		"BACKUP_RETENTION_WEEKLY": "4", "BACKUP_RETENTION_MONTHLY": "6"}
	start = time.Now()
	p.mustRun(t, env, "ops/backup/prune.sh")
	t.Logf("prune of %d snapshots to %d in two repositories: %s", len(all), len(want), time.Since(start).Round(time.Millisecond))

	for _, repo := range []string{p.primary(), p.offsite()} {
		got := bretTimes(p.snapshots(t, repo, "store=files"))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s keeps\n%s\nwant (7 daily, 4 weekly, 6 monthly)\n%s", repo, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if n := len(p.snapshots(t, repo, "store=redis")); n != 1 {
			t.Errorf("%s: %d redis snapshots after pruning files, want 1", repo, n)
		}
	}
	// What survives still restores.
	p.mustRun(t, map[string]string{"BACKUP_STORES": "files:files"}, "ops/backup/restore-test.sh")
}

// TestBackupGuard: pruning is refused when a store has no backup at all or when its newest
// backup is older than BACKUP_MAX_AGE_HOURS, and nothing is removed then; with a limit the
// backups meet, the same prune removes what the retention says.
func TestBackupGuard(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, false)
	host := bretHost(t, p)
	p.cheapRepos(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	// Only another store has a (recent) backup.
	bretSynthetic(t, p, host, "redis", []time.Time{time.Now().Add(-time.Hour)})
	env := map[string]string{"BACKUP_STORES": "files:files", "BACKUP_RETENTION_DAILY": "1",
		"BACKUP_RETENTION_WEEKLY": "0", "BACKUP_RETENTION_MONTHLY": "0"}

	out, err := p.run(t, env, "ops/backup/prune.sh")
	if err == nil || !strings.Contains(out, "refusing to prune files") || !strings.Contains(out, "no backup") {
		t.Errorf("prune with no files backup: err %v, want a refusal:\n%s", err, out)
	}

	// Three backups, the newest at least 45 hours old.
	bretSynthetic(t, p, host, "files", []time.Time{
		today.AddDate(0, 0, -2).Add(3 * time.Hour), today.AddDate(0, 0, -3).Add(3 * time.Hour), today.AddDate(0, 0, -4).Add(3 * time.Hour)})
	before := len(p.snapshots(t, p.primary(), ""))
	env["BACKUP_MAX_AGE_HOURS"] = "26"
	out, err = p.run(t, env, "ops/backup/prune.sh", "files")
	if err == nil || !strings.Contains(out, "refusing to prune files") || !strings.Contains(out, "old (limit 26h)") {
		t.Errorf("prune with a stale newest backup: err %v, want a refusal:\n%s", err, out)
	}
	if after := len(p.snapshots(t, p.primary(), "")); after != before {
		t.Errorf("a refused prune changed the snapshots: %d before, %d after", before, after)
	}

	// The guard was the only reason: a limit the newest backup meets lets the prune run.
	env["BACKUP_MAX_AGE_HOURS"] = "100"
	p.mustRun(t, env, "ops/backup/prune.sh", "files")
	if n := len(p.snapshots(t, p.primary(), "store=files")); n != 1 {
		t.Errorf("%d files snapshots after pruning to 1 daily, want 1", n)
	}
	if n := len(p.snapshots(t, p.primary(), "store=redis")); n != 1 {
		t.Errorf("%d redis snapshots after pruning files, want 1", n)
	}
}

// TestBackupLock: while another job holds the files lock, a backup waits
// BACKUP_LOCK_TIMEOUT, fails saying so, and stores nothing; after the lock is released it
// succeeds.
func TestBackupLock(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, false)
	lockDir := filepath.Join(p.env["BACKUP_DIR"], "locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(lockDir, "files.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BACKUP_LOCK_TIMEOUT": "1"}
	start := time.Now()
	out, err := p.run(t, env, "ops/backup/files.sh", "backup")
	took := time.Since(start)
	if err == nil || !strings.Contains(out, "another job holds") {
		t.Errorf("backup under a held lock: err %v, want a failure naming the other job:\n%s", err, out)
	}
	// The lock is never released while it waits, so finishing at all shows it gave up by
	// itself; the upper bound only catches a hang (a busy machine stretches process start-up
	// to many seconds, which is not the script's doing).
	if took < time.Second || took > 2*time.Minute {
		t.Errorf("the locked-out backup took %s, want BACKUP_LOCK_TIMEOUT=1s and then a failure", took)
	}
	if _, err := os.Stat(p.primary()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the locked-out backup touched the repository (%v)", err)
	}
	if _, err := os.Stat(p.textfile("backup_files_full.prom")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the locked-out backup wrote a metric (%v)", err)
	}
	t.Logf("locked-out backup failed after %s", took.Round(time.Millisecond))

	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	p.mustRun(t, env, "ops/backup/files.sh", "backup")
	if n := len(p.snapshots(t, p.primary(), "store=files")); n != 1 {
		t.Errorf("%d files snapshots after the lock was released, want 1", n)
	}
}

// TestBackupMetricsSuccessOnly: failed backups (nothing to back up, the restic password
// missing) write no metric and leave an earlier one unchanged; a success writes all three.
func TestBackupMetricsSuccessOnly(t *testing.T) {
	t.Parallel()
	p := brfNewProject(t, nil, false)
	p.cheapRepos(t)
	prom := p.textfile("backup_files_full.prom")

	out, err := p.run(t, map[string]string{"BACKUP_FILES_PATHS": "not/here nor/there"}, "ops/backup/files.sh", "backup")
	if err == nil || !strings.Contains(out, "nothing to back up") {
		t.Errorf("backup of missing paths: err %v, want a failure:\n%s", err, out)
	}
	if _, err := os.Stat(prom); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed backup wrote %s (%v)", prom, err)
	}

	start := time.Now()
	p.mustRun(t, nil, "ops/backup/files.sh", "backup")
	end := time.Now()
	got := brfCheckBackupMetrics(t, p, "files", "full", start, end, 1)
	t.Logf("metrics after a success: %v", got)
	first, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}

	for name, env := range map[string]map[string]string{
		"password file missing": {"RESTIC_PASSWORD_FILE": filepath.Join(p.tmp, "no-such-password")},
		"nothing to back up":    {"BACKUP_FILES_PATHS": "not/here"},
	} {
		time.Sleep(1100 * time.Millisecond) // a rewrite would carry a later timestamp
		out, err := p.run(t, env, "ops/backup/files.sh", "backup")
		if err == nil {
			t.Errorf("%s: the backup succeeded:\n%s", name, out)
		}
		if name == "password file missing" && !strings.Contains(out, "RESTIC_PASSWORD_FILE") {
			t.Errorf("%s: the error does not name RESTIC_PASSWORD_FILE:\n%s", name, out)
		}
		if now, _ := os.ReadFile(prom); string(now) != string(first) {
			t.Errorf("%s: the failed backup changed %s:\n%s", name, prom, now)
		}
		// The failure is recorded: backup_last_result 0, its time, and a log line.
		res := brfParseProm(t, p.textfile("backup_result_files.prom"))
		if r := res["backup_last_result"]; len(r) != 1 || r[0].value != 0 || r[0].labels["store"] != "files" {
			t.Errorf("%s: backup_last_result %v, want 0 for store files", name, r)
		}
		if f := res["backup_last_failure_timestamp_seconds"]; len(f) != 1 || f[0].value < float64(end.Unix()) {
			t.Errorf("%s: backup_last_failure_timestamp_seconds %v, want the time of this failure", name, f)
		}
		b, _ := os.ReadFile(filepath.Join(p.env["BACKUP_LOG_DIR"], "backup-results.log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, "store=files result=failed") || !strings.Contains(last, "error=") {
			t.Errorf("%s: backup-results.log ends with %q, want a failed line with its error", name, last)
		}
	}
	if n := len(p.snapshots(t, p.primary(), "store=files")); n != 1 {
		t.Errorf("%d files snapshots, want 1 (failed backups store nothing)", n)
	}
	entries, _ := os.ReadDir(p.env["BACKUP_TEXTFILE_DIR"])
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[backup_files_full.prom backup_result_files.prom]" {
		t.Errorf("textfile directory holds %v, want only backup_files_full.prom and backup_result_files.prom (no temporary files left)", names)
	}
}
