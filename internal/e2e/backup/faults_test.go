package backup

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The backup fault matrix: for the stores postgres (pg_dump), redis and files, each fault is
// injected into a backup, restore test or prune of a generated project, and the run must fail
// (non-zero exit) with an error naming the cause, record the failure (a log line and a failure
// metric), leave the success metric byte for byte as it was, and the next run must be healthy.

// TestBackupFaults runs the fault matrix described above.
func TestBackupFaults(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"restic", "jq", "flock", "sha256sum", "psql", "pg_dump", "pg_dumpall", "pg_restore",
		"setpriv", "redis-server", "redis-cli", "redis-check-rdb", "mount"} {
		e2eutil.RequireTool(t, tool)
	}
	e2eutil.RequireServer(t, "PostgreSQL", 5432)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	major := bpgPsql(t, admin, "SELECT current_setting('server_version_num')::int / 10000;")
	e2eutil.RequireTool(t, fmt.Sprintf("/usr/lib/postgresql/%s/bin/initdb", major))
	dir := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_backup_method": "logical", "cache": "redis", "offsite": "local"})
	if old := os.Getenv("BFT_SCRIPTS_FROM"); old != "" {
		// Runs the matrix against other scripts, e.g. a released version's
		// (blueprints/webapp/1.3.0/files/ops/backup), to see which faults they miss.
		shs, _ := filepath.Glob(filepath.Join(old, "*.sh"))
		for _, sh := range shs {
			b, err := os.ReadFile(sh)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ops", "backup", filepath.Base(sh)), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("scripts from %s", old)
	}
	if err := os.MkdirAll(filepath.Join(dir, "var", "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "var", "uploads", "photo ✓.bin"), bytes.Repeat([]byte("upload\x00"), 4096), 0o640); err != nil {
		t.Fatal(err)
	}

	// PostgreSQL: a role with table, column and routine grants, over a scratch database.
	role := bpgRole(t)
	db := e2eutil.NewScratchDB(t, "postgres")
	conn := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db.Name}
	bpgPsql(t, conn, bftPgSQL+bftPgGrants(role))
	pw := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(pw, []byte("unused with trust auth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Redis with a password and a few hundred keys.
	const redisPW = "bft redis pass"
	r, redisPort := brfStartRedis(t, filepath.Join(t.TempDir(), "redis"), redisPW)
	for i := 0; i < 300; i++ {
		r.must(t, "SET", fmt.Sprintf("key:%d:✓", i), strings.Repeat("v", i))
	}
	r.must(t, "HSET", "hash", "f1", "v1", "f2", "ü")
	redisPWFile := filepath.Join(t.TempDir(), "redis_password")
	if err := os.WriteFile(redisPWFile, []byte(redisPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	newStore := func(name, script, kind string, extra map[string]string) *bftStore {
		// On tmpfs when there is room, and traversable by PostgreSQL's user (scratch cluster).
		p := &brfProject{dir: dir, tmp: bpgFastDir(t)}
		if err := os.MkdirAll(filepath.Join(p.tmp, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		p.env = map[string]string{
			"BACKUP_DIR":                filepath.Join(p.tmp, "backups"),
			"BACKUP_OFFSITE_REPOSITORY": filepath.Join(p.tmp, "offsite"),
			"BACKUP_TEXTFILE_DIR":       filepath.Join(p.tmp, "textfile"),
			"BACKUP_LOG_DIR":            filepath.Join(p.tmp, "log"),
			"BACKUP_PROJECT":            "bft",
			"TMPDIR":                    filepath.Join(p.tmp, "tmp"),
			"TZ":                        "UTC",
		}
		for k, v := range extra {
			p.env[k] = v
		}
		return &bftStore{name: name, script: script, kind: kind, p: p}
	}
	pg := newStore("postgres", "postgres-dump.sh", "logical", map[string]string{
		"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres", "PGDATABASE": db.Name, "PGPASSWORD_FILE": pw,
		"bft_conn": strings.Join(conn, " ")})
	// The dump waits for a lock another session holds on the partitioned table (pg_dump
	// locks it; the row counts only read its partition).
	pg.block = func(t *testing.T) func() {
		locker := exec.Command("psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, conn...)...)
		locker.Env = append(bpgEnv(), "PGAPPNAME=bft-locker")
		locker.Stdin = strings.NewReader(`BEGIN; LOCK TABLE ONLY "Schéma".parted IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);`)
		if err := locker.Start(); err != nil {
			t.Fatal(err)
		}
		bpgWaitSQL(t, conn, "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'bft-locker' AND l.mode = 'AccessExclusiveLock' AND l.granted;", "t")
		return func() {
			bpgPsql(t, admin, "SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE application_name = 'bft-locker';")
			locker.Wait()
		}
	}
	pg.dumping = func(t *testing.T) bool {
		return bpgPsql(t, admin, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%%';", db.Name)) == "1"
	}
	pg.killMidDump = func(t *testing.T) {
		q := fmt.Sprintf("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND application_name <> 'bft-locker';", db.Name)
		bpgWaitSQL(t, admin, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%%';", db.Name), "1")
		bpgPsql(t, admin, q)
	}
	rd := newStore("redis", "redis.sh", "full", map[string]string{
		"REDIS_HOST": "127.0.0.1", "REDIS_PORT": strconv.Itoa(redisPort), "REDIS_PASSWORD_FILE": redisPWFile,
		"bft_redis_pw": redisPW})
	// A slow save (1 ms per key) keeps the RDB transfer open long enough to end it.
	rd.block = func(t *testing.T) func() {
		r.must(t, "CONFIG", "SET", "rdb-key-save-delay", "10000")
		return func() {
			r.must(t, "CONFIG", "SET", "rdb-key-save-delay", "0")
			// A save still running from the slow one is waited for by the next backup.
		}
	}
	rd.dumping = func(t *testing.T) bool {
		v, _ := r.must(t, "INFO", "persistence").(string)
		return strings.Contains(v, "rdb_bgsave_in_progress:1")
	}
	rd.killMidDump = func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			v := r.must(t, "CLIENT", "KILL", "TYPE", "replica")
			if n, ok := v.(int64); ok && n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the backup never connected as a replica (redis-cli --rdb)")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fl := newStore("files", "files.sh", "full", map[string]string{
		"BACKUP_FILES_PATHS": ".env secrets ops/backup/backup.env var/uploads"})
	stores := []*bftStore{pg, rd, fl}

	res := &bftResult{}
	t.Cleanup(func() {
		sort.Strings(res.rows)
		t.Logf("backup fault matrix: %d cases tried, %d caught\n%s", res.tried, res.caught, strings.Join(res.rows, "\n"))
	})
	for _, s := range stores {
		s := s
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			bftStoreMatrix(t, s, res)
			if s.name == "postgres" {
				// The healthy path compares content: restore into a new database.
				want := bftPgSums(t, conn, role)
				target := db.Name + "_restored"
				t.Cleanup(func() { bpgPsqlErr(admin, "DROP DATABASE IF EXISTS "+target+" WITH (FORCE);") })
				s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
				s.p.mustRun(t, nil, "ops/backup/restore.sh", "postgres", "--target-db", target, "--no-globals")
				got := bftPgSums(t, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", target}, role)
				if got != want {
					t.Errorf("restored database differs:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// bftStoreMatrix runs every case of the matrix that applies to the store, one after the other.
func bftStoreMatrix(t *testing.T, s *bftStore, res *bftResult) {
	logDir := s.p.env["BACKUP_LOG_DIR"]
	successProm := map[string]string{
		"backup":       s.p.textfile(fmt.Sprintf("backup_%s_%s.prom", s.name, s.kind)),
		"restore-test": s.p.textfile("restore_test_" + s.name + ".prom"),
		"prune":        s.p.textfile(fmt.Sprintf("backup_%s_%s.prom", s.name, s.kind)),
	}
	// A healthy start: a backup and a passed restore test, so that success metrics exist.
	s.p.mustRun(t, nil, "ops/backup/"+s.script, "backup")
	s.p.mustRun(t, nil, "ops/backup/"+s.script, "restore-test")

	for _, c := range bftCases() {
		if len(c.stores) > 0 && !slices.Contains(c.stores, s.name) {
			continue
		}
		if c.generic && s.name != "files" && os.Getenv("OPSREADY_BACKUP_FAULTS") != "full" {
			continue
		}
		start := time.Now()
		ran := false // false when -run filtered the case out
		ok := t.Run(strings.ReplaceAll(c.action+" "+c.name, " ", "_"), func(t *testing.T) {
			ran = true
			before, err := os.ReadFile(successProm[c.action])
			if err != nil {
				t.Fatalf("no success metric before the fault: %v", err)
			}
			env, undo := c.inject(t, s)
			var out string
			recorded := true
			if c.run != nil {
				out, err, recorded = c.run(t, s, env)
			} else {
				out, err = s.p.run(t, env, "ops/backup/"+s.script, c.action)
			}
			undo()
			want := regexp.MustCompile(c.want)
			if c.action == "prune" {
				// The fault is the stale lock: prune must succeed and say what it removed.
				if err != nil || !want.MatchString(out) {
					t.Errorf("prune after a killed backup: err=%v, want success and %q:\n%s", err, c.want, out)
				}
			} else {
				if err == nil {
					t.Errorf("the run succeeded:\n%s", out)
				}
				if c.want != "" && !want.MatchString(out) {
					t.Errorf("the output does not name the cause (%s):\n%s", c.want, out)
				}
				if after, _ := os.ReadFile(successProm[c.action]); !bytes.Equal(after, before) {
					t.Errorf("the failed run changed %s:\n%s", successProm[c.action], after)
				}
				if recorded {
					bftCheckRecorded(t, s, c, logDir, want)
				}
			}
			// The next run is healthy.
			if out, err := s.p.run(t, nil, "ops/backup/"+s.script, c.action); err != nil {
				t.Errorf("the next %s after the fault failed: %v\n%s", c.action, err, out)
			} else if c.action == "backup" {
				if v := brfParseProm(t, s.p.textfile("backup_result_"+s.name+".prom"))["backup_last_result"]; len(v) != 1 || v[0].value != 1 {
					t.Errorf("backup_last_result after a healthy backup: %v, want 1", v)
				}
			} else if c.action == "restore-test" && brfRestoreResult(t, s.p, s.name) != 1 {
				t.Errorf("restore_test_last_result after a healthy restore test is not 1")
			}
		})
		if ran {
			res.add(s.name, c.action+": "+c.name, ok, time.Since(start))
		}
	}
}

// bftCheckRecorded checks the failure record of a faulty run: the log line with the cause and
// the failure metric.
func bftCheckRecorded(t *testing.T, s *bftStore, c bftCase, logDir string, want *regexp.Regexp) {
	t.Helper()
	switch c.action {
	case "backup":
		line := bftLastLine(filepath.Join(logDir, "backup-results.log"), s.name)
		if !strings.Contains(line, "result=failed") || (c.want != "" && !want.MatchString(line)) {
			t.Errorf("backup-results.log: %q, want result=failed naming %s", line, c.want)
		}
		v := brfParseProm(t, s.p.textfile("backup_result_"+s.name+".prom"))
		if r := v["backup_last_result"]; len(r) != 1 || r[0].value != 0 {
			t.Errorf("backup_last_result %v, want 0", r)
		}
		if f := v["backup_last_failure_timestamp_seconds"]; len(f) != 1 || time.Since(time.Unix(int64(f[0].value), 0)) > 5*time.Minute {
			t.Errorf("backup_last_failure_timestamp_seconds %v, want now", f)
		}
	case "restore-test":
		line := bftLastLine(filepath.Join(logDir, "restore-test.log"), s.name)
		if !strings.Contains(line, "result=failed") || (c.want != "" && !want.MatchString(line)) {
			t.Errorf("restore-test.log: %q, want result=failed naming %s", line, c.want)
		}
		if v := brfRestoreResult(t, s.p, s.name); v != 0 {
			t.Errorf("restore_test_last_result %v, want 0", v)
		}
	}
}
