package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/internal/project"
)

// TestBmsMariadbLayouts: a backup of the layout before the dump was streamed (webapp 1.3.0's
// scripts, which keep the dump beside the manifest in one snapshot) restore-tests and restores
// with the current scripts beside one of the streamed layout (the dump in snapshots of its own,
// linked by a set= tag); a failed off-site stream fails the backup; pruning keeps every kept
// backup's dump snapshot and forgets the dumps no backup names (those of failed backups).
func TestBmsMariadbLayouts(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "restic", "jq", "perl"} {
		e2eutil.RequireTool(t, tool)
	}
	db := e2eutil.NewScratchDB(t, "mariadb")
	root := bmySharedRoot
	suffix := strings.TrimPrefix(db.Name, "opsready_t_")
	adm := "bms_adm_" + suffix
	t.Cleanup(func() {
		if out, err := exec.Command("mariadb", append(append([]string{}, root.args...), "-e", "DROP USER IF EXISTS '"+adm+"'@'%'")...).CombinedOutput(); err != nil {
			t.Errorf("drop %s: %v: %s", adm, err, out)
		}
	})
	root.exec(t, fmt.Sprintf("CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'adm-%[2]s'; GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'%%' WITH GRANT OPTION", adm, suffix))
	root.exec(t, bmyLoadSQL(2000), db.Name)
	p := bmyNewProject(t, "logical", "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+db.Name,
		"MARIADB_USER="+adm, "BACKUP_STORES=mariadb:mariadb-dump")
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+bmySecret(t, p.tmp, "adm.pw", "adm-"+suffix))
	p.cheapRepos(t)

	// webapp 1.3.0's scripts (released, immutable) beside the project's own.
	old := filepath.Join(p.dir, "ops", "backup-1.3.0")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	src := e2eutil.RepoPath(t, "blueprints/webapp/1.3.0/files/ops/backup")
	shs, err := filepath.Glob(filepath.Join(src, "*.sh"))
	if err != nil || len(shs) == 0 {
		t.Fatalf("webapp 1.3.0's backup scripts in %s: %v", src, err)
	}
	for _, sh := range append(shs, filepath.Join(p.dir, "ops", "backup", "backup.env")) {
		b, err := os.ReadFile(sh)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(old, filepath.Base(sh)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	type snap struct {
		ID   string   `json:"id"`
		Tags []string `json:"tags"`
	}
	snapshots := func(repo string) []snap {
		var s []snap
		if err := json.Unmarshal([]byte(p.restic(t, repo, "snapshots", "--json")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	setOf := func(tags []string) string {
		for _, tag := range tags {
			if strings.HasPrefix(tag, "set=") {
				return tag
			}
		}
		return ""
	}

	// The old layout: one snapshot with the dump.
	unlock := e2eutil.MariadbAccounts(t, true) // 1.3.0's dump fails on an account dropped meanwhile
	p.must(t, nil, "../backup-1.3.0/mariadb-dump.sh", "backup")
	unlock()
	oldRows := bmyTables(t, root, db.Name)
	oldSnaps := snapshots("offsite")
	if len(oldSnaps) != 1 || setOf(oldSnaps[0].Tags) != "" {
		t.Fatalf("off-site after webapp 1.3.0's backup: %+v, want one snapshot without a set= tag", oldSnaps)
	}

	// The streamed layout: a manifest snapshot and a dump snapshot per repository, linked.
	root.exec(t, "INSERT INTO items (name, qty, created_at) SELECT CONCAT('new ', seq), 1, NOW() FROM seq_1_to_7", db.Name)
	p.must(t, nil, "mariadb-dump.sh", "backup")
	m := p.manifest(t)
	var set string
	for _, repo := range []string{"backups/restic", "offsite"} {
		var manifests, dumps []snap
		for _, s := range snapshots(repo) {
			if slices.Contains(s.Tags, "store=mariadb") {
				manifests = append(manifests, s)
			} else if slices.Contains(s.Tags, "data-of=mariadb") {
				dumps = append(dumps, s)
			}
		}
		if len(manifests) != 2 || len(dumps) != 1 || setOf(manifests[1].Tags) == "" && setOf(manifests[0].Tags) == "" {
			t.Fatalf("%s: manifest snapshots %+v, dump snapshots %+v", repo, manifests, dumps)
		}
		set = setOf(dumps[0].Tags)
		if set == "" || (setOf(manifests[0].Tags) != set && setOf(manifests[1].Tags) != set) {
			t.Errorf("%s: the dump snapshot %+v is not linked to a manifest snapshot %+v", repo, dumps[0], manifests)
		}
	}
	for _, f := range m.Files {
		if f.Name == "dump.sql" && f.Size <= 0 {
			t.Errorf("manifest lists the dump with size %d", f.Size)
		}
	}

	// The restore test reads the newest (streamed) backup; restores read either layout.
	p.must(t, nil, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") || !strings.Contains(line, "rows="+strconv.FormatInt(m.RowsTotal, 10)) {
		t.Errorf("restore test of the streamed backup: %s (manifest rows_total %d)", line, m.RowsTotal)
	}
	admEnv := []string{"MARIADB_USER=" + adm}
	for _, c := range []struct {
		name, snapshot string
		want           map[string]int64
	}{
		{"webapp 1.3.0's backup", oldSnaps[0].ID, oldRows},
		{"the streamed backup", "", bmyTables(t, root, db.Name)},
	} {
		target := e2eutil.NewScratchDB(t, "mariadb")
		args := []string{"mariadb", "--target-db", target.Name, "--no-users"}
		if c.snapshot != "" {
			args = append(args, "--snapshot", c.snapshot)
		}
		p.must(t, admEnv, "restore.sh", args...)
		got := bmyTables(t, root, target.Name)
		delete(got, "opsready_backup_canary")
		want := map[string]int64{}
		for k, v := range c.want {
			if k != "opsready_backup_canary" {
				want[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restore of %s: tables %v, want %v", c.name, got, want)
		}
	}

	// A failed off-site stream fails the backup and says so, and leaves in the primary
	// repository a dump snapshot that no manifest names.
	success, _ := os.ReadFile(p.path("textfile/backup_mariadb_logical.prom"))
	keys := p.path("offsite/keys")
	if err := os.Rename(keys, keys+".away"); err != nil {
		t.Fatal(err)
	}
	stderr, _, _, err := p.run(nil, "mariadb-dump.sh", "backup")
	if err := os.Rename(keys+".away", keys); err != nil {
		t.Fatal(err)
	}
	if err == nil || !strings.Contains(stderr, "storing the dump in the off-site restic repository failed") {
		t.Errorf("backup with the off-site key gone: err=%v\n%s", err, stderr)
	}
	if after, _ := os.ReadFile(p.path("textfile/backup_mariadb_logical.prom")); string(after) != string(success) {
		t.Errorf("failed backups changed the success metric:\n%s", after)
	}
	if n := len(snapshots("backups/restic")); n != 4 {
		t.Errorf("primary repository: %d snapshots, want 4 (the failed backup's dump)", n)
	}

	// Pruning to one backup a day keeps the newest (streamed) backup with its dump in both
	// repositories and nothing else; the restore test still passes.
	p.must(t, []string{"BACKUP_RETENTION_DAILY=1", "BACKUP_RETENTION_WEEKLY=0", "BACKUP_RETENTION_MONTHLY=0"}, "prune.sh")
	for _, repo := range []string{"backups/restic", "offsite"} {
		s := snapshots(repo)
		if len(s) != 2 || setOf(s[0].Tags) != set || setOf(s[1].Tags) != set {
			t.Errorf("%s after pruning: %+v, want the manifest and the dump snapshot of %s", repo, s, set)
		}
	}
	p.must(t, nil, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") {
		t.Errorf("restore test after pruning: %s", line)
	}
}

// BenchmarkBmsMariadbOverhead measures, interleaved in every iteration (the machine may be
// shared), the bare dump D (mariadb-dump with the script's options into a file), the off-site
// transfer T (restic backup of that file into a second repository, as the script stores it
// off-site) and the generated backup S end to end, and reports S/D and S/(D+T): the target is
// S <= 1.25 (D+T). ns/op is the script's time. OPSREADY_BENCH_MARIADB_ROWS scales the data set.
func BenchmarkBmsMariadbOverhead(b *testing.B) {
	db, user, pw := bmyBenchDB(b)
	dir := filepath.Join(b.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: "webapp", Defaults: true, Version: "test",
		Set: map[string]string{"db": "mariadb", "db_backup_method": "logical"}}); err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	env := append(os.Environ(), "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_USER="+user,
		"MARIADB_DATABASE="+db, "MARIADB_PASSWORD_FILE="+pw, "BACKUP_STORES=mariadb:mariadb-dump",
		"BACKUP_DIR="+filepath.Join(tmp, "backups"), "BACKUP_OFFSITE_REPOSITORY="+filepath.Join(tmp, "offsite"),
		"BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"), "BACKUP_LOG_DIR="+filepath.Join(tmp, "log"))
	resticEnv := append(os.Environ(), "RESTIC_PASSWORD_FILE="+filepath.Join(dir, "secrets", "restic_password"),
		"RESTIC_REPOSITORY="+filepath.Join(tmp, "transfer"))
	run := func(env []string, stdout *os.File, name string, args ...string) time.Duration {
		b.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
		}
		return time.Since(start)
	}
	dumpFile := filepath.Join(tmp, "dump.sql")
	bare := func() time.Duration {
		f, err := os.Create(dumpFile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		return run(os.Environ(), f, "mariadb-dump", "-h", "127.0.0.1", "-P", "3306", "-u", user, "-p"+strings.TrimSpace(bmyRead(b, pw)),
			"--single-transaction", "--quick", "--add-locks", "--routines", "--triggers", "--events", "--hex-blob",
			"--default-character-set=utf8mb4", "--skip-dump-date", db)
	}
	// Outside the measurement: both repositories of the script and the transfer repository
	// initialised and holding one backup, as on every day but the first.
	run(env, nil, filepath.Join(dir, "ops/backup/mariadb-dump.sh"), "backup")
	run(resticEnv, nil, "restic", "init")
	bare()
	run(resticEnv, nil, "restic", "backup", "--host", "bench", dumpFile)
	var d, t, s time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d += bare()
		t += run(resticEnv, nil, "restic", "backup", "--host", "bench", dumpFile)
		b.StartTimer()
		s += run(env, nil, filepath.Join(dir, "ops/backup/mariadb-dump.sh"), "backup")
	}
	b.StopTimer()
	b.ReportMetric(d.Seconds()/float64(b.N), "D-s/op")
	b.ReportMetric(t.Seconds()/float64(b.N), "T-s/op")
	b.ReportMetric(s.Seconds()/d.Seconds(), "S/D")
	b.ReportMetric(s.Seconds()/(d+t).Seconds(), "S/(D+T)")
}
