package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// bpgPostgresUser is the uid and gid PostgreSQL runs as: postgres when the test runs as
// root (PostgreSQL refuses root), else the test's own.
func bpgPostgresUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, the PostgreSQL instance needs a user postgres: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// bpgAs makes cmd run as uid:gid (when the test runs as root) in dir.
func bpgAs(cmd *exec.Cmd, uid, gid int, dir string) *exec.Cmd {
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	cmd.Dir = dir
	return cmd
}

// bpgPgCtl runs pg_ctl args as uid:gid with env.
func bpgPgCtl(uid, gid int, dir string, env []string, args ...string) error {
	cmd := bpgAs(exec.Command(filepath.Join(bpgPgBin, "pg_ctl"), args...), uid, gid, dir)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// bpgWaitSQL polls sql on conn until it returns want, for at most 3 minutes (a hang, not
// a race: pgBackRest's archive-push took several seconds on a busy machine).
func bpgWaitSQL(t *testing.T, conn []string, sql, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = bpgPsqlErr(conn, sql); err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never returned %q (last: %q, %v)", sql, want, got, err)
}

// bpgSwitchWAL closes the current WAL segment and waits until the server has archived it.
func bpgSwitchWAL(t *testing.T, conn []string) {
	t.Helper()
	// pg_switch_wal does nothing on an empty segment, and then no segment completes to wake
	// an archiver that is sleeping (60 s) after failed attempts: a commit record first
	// makes the switch real.
	bpgPsql(t, conn, "SELECT txid_current();")
	seg := bpgPsql(t, conn, "SELECT pg_walfile_name(pg_switch_wal());")
	bpgWaitSQL(t, conn, fmt.Sprintf("SELECT coalesce(last_archived_wal >= '%s', false) FROM pg_stat_archiver;", seg), "t")
}

// TestBackupPostgresPgBackRest runs its own PostgreSQL 15 with WAL archiving through the
// generated postgres-pgbackrest.sh, takes full, differential and incremental backups,
// restore-tests them (off-site copy and local repository), proves point-in-time recovery,
// and checks that a damaged newest backup fails the restore test.
func TestBackupPostgresPgBackRest(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"pgbackrest", "psql", "createdb", "restic", "jq", "flock", "setpriv",
		filepath.Join(bpgPgBin, "initdb"), filepath.Join(bpgPgBin, "pg_ctl")} {
		e2eutil.RequireTool(t, tool)
	}
	uid, gid := bpgPostgresUser(t)
	proj := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_backup_method": "physical"})
	// The server runs the project's script as archive_command: its user must reach it.
	for d := filepath.Dir(proj); d != filepath.Dir(filepath.Dir(filepath.Dir(proj))); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Short paths, so that Unix socket paths fit.
	base := bpgFastDir(t)
	data, sock, backups := filepath.Join(base, "data"), filepath.Join(base, "s"), filepath.Join(base, "backups")
	for _, d := range []string{data, sock, backups} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(backups, 0o755); err != nil {
		t.Fatal(err)
	}
	cipher, pw := filepath.Join(base, "cipher_pass"), filepath.Join(base, "db_password")
	if err := os.WriteFile(cipher, []byte("bpg-cipher-pass-0123456789abcdefghijklmnopqrstuv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, data, sock, cipher} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	port := e2eutil.FreePort(t)
	textfile, logs, offsite := filepath.Join(base, "textfile"), filepath.Join(base, "logs"), filepath.Join(base, "offsite")
	// The off-site copy goes through restic (whose primary repository the script creates
	// first): both ready, cheap to open (bspRepo).
	bspRepo(t, filepath.Join(backups, "restic"), filepath.Join(proj, "secrets", "restic_password"))
	bspRepo(t, offsite, filepath.Join(proj, "secrets", "restic_password"))
	env := bpgEnv("BACKUP_DIR="+backups, "BACKUP_OFFSITE_REPOSITORY="+offsite, "BACKUP_TEXTFILE_DIR="+textfile,
		"BACKUP_LOG_DIR="+logs, "BACKUP_STORES=postgres:postgres-pgbackrest",
		"PGBACKREST_PG1_PATH="+data, "PGBACKREST_PG1_PORT="+strconv.Itoa(port), "PGBACKREST_PG1_SOCKET_PATH="+sock,
		"PGBACKREST_CIPHER_PASS_FILE="+cipher,
		"PGHOST="+sock, "PGPORT="+strconv.Itoa(port), "PGUSER=postgres", "PGDATABASE=app", "PGPASSWORD_FILE="+pw,
		"TMPDIR="+filepath.Join(base, "tmp"))
	script := filepath.Join(proj, "ops", "backup", "postgres-pgbackrest.sh")

	initdb := bpgAs(exec.Command(filepath.Join(bpgPgBin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"), uid, gid, base)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c port=%d -c listen_addresses='' -c unix_socket_directories='%s' -c fsync=off "+
		"-c wal_level=replica -c archive_mode=on -c archive_command='%s archive-push %%p'", port, sock, script)
	if err := bpgPgCtl(uid, gid, base, env, "-D", data, "-l", filepath.Join(base, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bpgPgCtl(uid, gid, base, env, "-D", data, "-m", "immediate", "stop"); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(base, "server.log"))
			t.Logf("server.log:\n%s", b)
		}
	})
	admin := []string{"-h", sock, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres"}
	bpgPsql(t, admin, "CREATE DATABASE app;")
	conn := []string{"-h", sock, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "app"}
	const rows = 20000
	bpgPsql(t, conn, bpgLoadSQL("", rows)+"CREATE TABLE pitr (v text);")

	manifestOf := func(label string) bpgManifest {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(backups, "pgbackrest-manifests", label+".json"))
		if err != nil {
			t.Fatalf("manifest of %s: %v", label, err)
		}
		var m bpgManifest
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("manifest of %s: %v", label, err)
		}
		return m
	}
	var labels []string
	for i, kind := range []string{"auto", "diff", "incr"} {
		wantKind := map[string]string{"auto": "full"}[kind]
		if wantKind == "" {
			wantKind = kind
		}
		if i > 0 {
			bpgPsql(t, conn, fmt.Sprintf("INSERT INTO items (name) SELECT '%s ' || g FROM generate_series(1, 1000) g;", kind))
		}
		out, took := bpgMustRun(t, proj, append(env, "BACKUP_KIND="+kind), "backup.sh")
		entries, _ := filepath.Glob(filepath.Join(backups, "pgbackrest-manifests", "*.json"))
		sort.Strings(entries)
		if len(entries) != i+1 {
			t.Fatalf("after backup %d: manifests %v\n%s", i+1, entries, out)
		}
		label := strings.TrimSuffix(filepath.Base(entries[i]), ".json")
		labels = append(labels, label)
		m := manifestOf(label)
		items := int64(-1)
		for _, tb := range m.Tables {
			if tb.Name == "public.items" {
				items = tb.Rows
			}
		}
		if m.Kind != wantKind || m.Label != label || m.Method != "pgbackrest" || m.RowCountsExact ||
			items != int64(rows+1000*i) || m.Canary.ID == "" || len(m.Files) != 1 || m.ServerMajor != "15" {
			t.Errorf("backup %d (BACKUP_KIND=%s): manifest %+v, want kind %s with %d items", i+1, kind, m, wantKind, rows+1000*i)
		}
		prom := filepath.Join(textfile, "backup_postgres_"+wantKind+".prom")
		size := bpgMetric(t, prom, "backup_last_size_bytes")
		t.Logf("pgBackRest %s backup %s: %d items rows, %v bytes in the repository, backup.sh took %s",
			wantKind, label, items, size, took.Round(time.Millisecond))
	}
	out, _ := bpgMustRun(t, proj, env, "list.sh")
	for i, kind := range []string{"full", "diff", "incr"} {
		if !strings.Contains(out, "\t"+kind+"\t") || !strings.Contains(out, labels[i]) {
			t.Errorf("list.sh: want the %s backup %s:\n%s", kind, labels[i], out)
		}
	}

	// Restore tests: from the off-site copy (the default when one is configured) and from
	// the local repository.
	wantRows := strconv.Itoa(rows + 2000 + rows/4 + 3 + 10 + 3) // + 3 canary rows
	for _, from := range []string{"auto", "primary"} {
		_, took := bpgMustRun(t, proj, append(env, "RESTORE_TEST_FROM="+from), "restore-test.sh")
		line := bpgLastLine(t, filepath.Join(logs, "restore-test.log"))
		if bpgField(line, "result") != "passed" || bpgField(line, "label") != labels[2] ||
			bpgField(line, "rows") != wantRows || bpgField(line, "rows_differ") != "0" {
			t.Errorf("restore test from %s: %q, want passed on %s with rows=%s rows_differ=0", from, line, labels[2], wantRows)
		}
		if (from == "auto") != (bpgField(line, "snapshot") != "") {
			t.Errorf("restore test from %s: %q: the off-site copy is named by its snapshot", from, line)
		}
		t.Logf("pgBackRest restore test (%s): %s rows, restore-test.sh took %s", from, bpgField(line, "rows"), took.Round(time.Millisecond))
	}
	if v := bpgMetric(t, filepath.Join(textfile, "restore_test_result_postgres.prom"), "restore_test_last_result"); v != 1 {
		t.Errorf("restore_test_last_result = %v, want 1", v)
	}

	// Point in time: A committed before T, B after; restoring to T brings A back, not B.
	bpgPsql(t, conn, "INSERT INTO pitr VALUES ('A');")
	bpgSwitchWAL(t, conn)
	target := bpgPsql(t, conn, "SELECT to_char(date_trunc('second', now() AT TIME ZONE 'UTC') + interval '1 second', 'YYYY-MM-DD HH24:MI:SS') || '+00';")
	bpgWaitSQL(t, conn, fmt.Sprintf("SELECT now() > '%s'::timestamptz;", target), "t")
	bpgPsql(t, conn, "INSERT INTO pitr VALUES ('B');")
	bpgSwitchWAL(t, conn)
	pitrDir := filepath.Join(base, "pitr")
	_, took := bpgMustRun(t, proj, env, "restore.sh", "postgres", "--time", target, "--target-dir", pitrDir)
	pitrPort := e2eutil.FreePort(t)
	pitrOpts := fmt.Sprintf("-c port=%d -c listen_addresses='' -c unix_socket_directories='%s' -c archive_mode=off", pitrPort, sock)
	start := time.Now()
	if err := bpgPgCtl(uid, gid, base, env, "-D", pitrDir, "-l", filepath.Join(base, "pitr.log"), "-w", "-t", "60", "-o", pitrOpts, "start"); err != nil {
		b, _ := os.ReadFile(filepath.Join(base, "pitr.log"))
		t.Fatalf("%v\n%s", err, b)
	}
	pitrConn := []string{"-h", sock, "-p", strconv.Itoa(pitrPort), "-U", "postgres", "-d", "app"}
	bpgWaitSQL(t, pitrConn, "SELECT pg_is_in_recovery();", "f")
	got := bpgPsql(t, pitrConn, "SELECT coalesce(string_agg(v, ',' ORDER BY v), '') FROM pitr;")
	if err := bpgPgCtl(uid, gid, base, env, "-D", pitrDir, "-m", "fast", "stop"); err != nil {
		t.Error(err)
	}
	if got != "A" {
		t.Errorf("after point-in-time recovery to %s: pitr holds %q, want only A", target, got)
	}
	t.Logf("point-in-time restore to %s: restore.sh took %s, recovery and promotion %s", target,
		took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	out, _, err := bpgRun(proj, env, "restore.sh", "postgres", "--time", target, "--target-dir", pitrDir)
	if err == nil || !strings.Contains(out, "is not empty") {
		t.Errorf("restore into the non-empty %s: err=%v, want a refusal:\n%s", pitrDir, err, out)
	}

	_, took = bpgMustRun(t, proj, env, "prune.sh")
	t.Logf("prune.sh: %s", took.Round(time.Millisecond))
	if out, _ := bpgMustRun(t, proj, env, "list.sh"); strings.Count(out, "\n") < 3 || !strings.Contains(out, labels[0]) {
		t.Errorf("prune removed backups within the retention:\n%s", out)
	}

	// Damage a data file of the newest backup in the local repository.
	newest := filepath.Join(backups, "pgbackrest", "backup", "*", labels[2], "pg_data", "base", "*", "*")
	files, _ := filepath.Glob(newest)
	var biggest string
	var most int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > most {
			biggest, most = f, fi.Size()
		}
	}
	if biggest == "" {
		t.Fatalf("no data file in the newest backup (%s)", newest)
	}
	if err := os.Truncate(biggest, most/2); err != nil {
		t.Fatal(err)
	}
	success, err := os.ReadFile(filepath.Join(textfile, "restore_test_postgres.prom"))
	if err != nil {
		t.Fatal(err)
	}
	out, took, err = bpgRun(proj, append(env, "RESTORE_TEST_FROM=primary"), "restore-test.sh")
	if err == nil || !strings.Contains(out, "damaged") || !strings.Contains(out, "backup: "+labels[2]+", status: invalid") {
		t.Errorf("restore test of a damaged backup: err=%v, want a failure naming %s as damaged:\n%s", err, labels[2], out)
	}
	if v := bpgMetric(t, filepath.Join(textfile, "restore_test_result_postgres.prom"), "restore_test_last_result"); v != 0 {
		t.Errorf("restore_test_last_result = %v after a failed test, want 0", v)
	}
	if after, _ := os.ReadFile(filepath.Join(textfile, "restore_test_postgres.prom")); string(after) != string(success) {
		t.Errorf("a failed restore test changed restore_test_postgres.prom:\n%s", after)
	}
	line := bpgLastLine(t, filepath.Join(logs, "restore-test.log"))
	if bpgField(line, "result") != "failed" || !strings.Contains(line, labels[2]) {
		t.Errorf("restore-test.log after a failed test: %q", line)
	}
	t.Logf("damaged %s: restore test failed in %s: %s", strings.TrimPrefix(biggest, backups), took.Round(time.Millisecond), line)
}
