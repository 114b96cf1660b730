package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
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

	"github.com/opsready/opsready/internal/project"
)

// bpgPgBin holds the PostgreSQL 15 server binaries (Debian's layout) of the instance the
// pgBackRest test runs.
const bpgPgBin = "/usr/lib/postgresql/15/bin"

// bpgManifest is the part of manifest.json the tests check.
type bpgManifest struct {
	Store        string            `json:"store"`
	Method       string            `json:"method"`
	Kind         string            `json:"kind"`
	Label        string            `json:"label"`
	ServerMajor  string            `json:"server_major"`
	Database     string            `json:"database"`
	ToolVersions map[string]string `json:"tool_versions"`
	Files        []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	SizeBytes int64 `json:"size_bytes"`
	Tables    []struct {
		Name string `json:"name"`
		Rows int64  `json:"rows"`
	} `json:"tables"`
	RowCountsExact bool `json:"row_counts_exact"`
	Canary         struct {
		Table string `json:"table"`
		ID    string `json:"id"`
	} `json:"canary"`
	Roles      []string `json:"roles"`
	Migrations *struct {
		Version string `json:"version"`
	} `json:"migrations"`
}

// bpgTables are the tables the tests load, as SQL names, with their manifest names.
var bpgTables = [][2]string{
	{"public.items", "public.items"},
	{"public.orders", "public.orders"},
	{"public.schema_migrations", "public.schema_migrations"},
	{`audit."Event Log"`, "audit.Event Log"},
}

// bpgLoadSQL creates the test tables with rows items, grants role (when set) a privilege
// on them, and records three migrations.
func bpgLoadSQL(role string, rows int) string {
	sql := fmt.Sprintf(`
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], data jsonb,
	created_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
INSERT INTO items (name, price, tags, data)
	SELECT 'item ' || g, g * 0.25, ARRAY['t' || g %% 7, 'u' || g %% 3], jsonb_build_object('g', g, 'half', g / 2.0)
	FROM generate_series(1, %d) g;
CREATE TABLE orders (id bigint PRIMARY KEY, item_id int NOT NULL REFERENCES items (id), qty int);
INSERT INTO orders SELECT g, 1 + g %% %d, g %% 5 FROM generate_series(1, %d) g;
CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY, applied_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO schema_migrations (version) VALUES ('0001_create_items'), ('0002_create_orders'), ('0003_add_audit');
CREATE SCHEMA audit;
CREATE TABLE audit."Event Log" (id int, note text);
INSERT INTO audit."Event Log" SELECT g, CASE WHEN g = 3 THEN NULL ELSE 'it''s event ' || g END FROM generate_series(1, 10) g;
`, rows, rows, rows/4)
	if role != "" {
		sql += fmt.Sprintf("GRANT SELECT ON items TO %s;\nGRANT USAGE ON SCHEMA audit TO %s;\n", role, role)
	}
	return sql
}

// bpgEnv is the test's environment without libpq, backup and restic settings (so that the
// machine's own cannot leak in), plus extra (later entries win).
func bpgEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "BACKUP_") || strings.HasPrefix(k, "RESTIC_") ||
			strings.HasPrefix(k, "RESTORE_TEST_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// bpgFastDir returns a new directory, removed when the test ends, on the tmpfs /dev/shm when
// it has room, else in the default temp dir: a restore fsyncs each of its ~1,300 files, which
// costs seconds per restore on this machine's disk, and the tests prove behaviour, not disk
// speed. It is readable by all, so that PostgreSQL's user reaches what is chowned to it.
func bpgFastDir(tb testing.TB) string {
	tb.Helper()
	parent := ""
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Bavail*uint64(st.Bsize) > 4<<30 {
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "bpg")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	// A TMPDIR for the scripts, which also run as PostgreSQL's user (archive_command).
	if err := os.Mkdir(filepath.Join(d, "tmp"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(d, "tmp"), 0o777|os.ModeSticky); err != nil {
		tb.Fatal(err)
	}
	return d
}

// bpgRun runs ops/backup/script of the generated project proj with env and returns its
// combined output and how long it took.
func bpgRun(proj string, env []string, script string, args ...string) (string, time.Duration, error) {
	cmd := exec.Command(filepath.Join(proj, "ops", "backup", script), args...)
	cmd.Dir = proj
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

// bpgMustRun is bpgRun that fails the test when the script fails, and logs its duration.
func bpgMustRun(tb testing.TB, proj string, env []string, script string, args ...string) (string, time.Duration) {
	tb.Helper()
	out, took, err := bpgRun(proj, env, script, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return out, took
}

// bpgPsql runs sql (a script, from stdin) with psql as conn and returns its output, trimmed.
func bpgPsql(tb testing.TB, conn []string, sql string) string {
	tb.Helper()
	out, err := bpgPsqlErr(conn, sql)
	if err != nil {
		tb.Fatalf("psql %v: %v", conn, err)
	}
	return out
}

func bpgPsqlErr(conn []string, sql string) (string, error) {
	cmd := exec.Command("psql", append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, conn...)...)
	cmd.Env = bpgEnv()
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s\nSQL: %s", err, strings.TrimSpace(string(out)), sql)
	}
	return strings.TrimSpace(string(out)), nil
}

// bpgSums returns, per test table, the md5 of its rows in order and their count.
func bpgSums(tb testing.TB, conn []string) map[string]string {
	tb.Helper()
	sums := map[string]string{}
	for _, tbl := range bpgTables {
		sums[tbl[0]] = bpgPsql(tb, conn, fmt.Sprintf(
			"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t;", tbl[0]))
	}
	return sums
}

// bpgRole creates a uniquely named login role on the local server and drops it when the
// test ends. Create it before the scratch databases, so that it is dropped after them.
func bpgRole(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bpg_role_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	bpgPsql(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'bpg-secret';", name))
	t.Cleanup(func() {
		if _, err := bpgPsqlErr(admin, fmt.Sprintf("DROP ROLE IF EXISTS %s;", name)); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	return name
}

// bpgMetric returns the value of the first sample of metric in the textfile path.
func bpgMetric(tb testing.TB, path, metric string) float64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, metric+"{") || strings.HasPrefix(line, metric+" ") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				tb.Fatalf("%s: %q: %v", path, line, err)
			}
			return v
		}
	}
	tb.Fatalf("%s has no %s:\n%s", path, metric, b)
	return 0
}

// bpgLastLine returns the last line of the file at path.
func bpgLastLine(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// bpgField returns the value of key=value in a restore-test.log line.
func bpgField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// bpgFiles lists the regular files below dir.
func bpgFiles(tb testing.TB, dir string) map[string]bool {
	tb.Helper()
	files := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files[p] = true
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// bpgDamage overwrites 64 bytes in the middle of the file at path.
func bpgDamage(tb testing.TB, path string) {
	tb.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("damaged!", 8)), fi.Size()/2); err != nil {
		tb.Fatal(err)
	}
}

// TestBackupPostgresLogical backs up a scratch database of the local server with the
// generated postgres-dump.sh (through backup.sh), restore-tests it, restores it into a new
// database and compares every row, and checks that a failed backup writes no metrics and
// that a damaged backup fails the restore test.
func TestBackupPostgresLogical(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "pg_restore", "restic", "jq", "flock", "setpriv"} {
		requireTool(t, tool)
	}
	requireServer(t, "PostgreSQL", 5432)
	// The restore test runs a scratch cluster of the server's major version.
	major := bpgPsql(t, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"},
		"SELECT current_setting('server_version_num')::int / 10000;")
	requireTool(t, fmt.Sprintf("/usr/lib/postgresql/%s/bin/initdb", major))
	role := bpgRole(t)
	db := newScratchDB(t, "postgres")
	proj := generate(t, map[string]string{"db": "postgres", "db_backup_method": "logical"})
	tmp := bpgFastDir(t)
	pw := filepath.Join(tmp, "db_password")
	if err := os.WriteFile(pw, []byte("unused with trust auth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backupDir, offsite := filepath.Join(tmp, "backups"), filepath.Join(tmp, "offsite")
	textfile, logs := filepath.Join(tmp, "textfile"), filepath.Join(tmp, "logs")
	env := bpgEnv("PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres", "PGDATABASE="+db.Name, "PGPASSWORD_FILE="+pw,
		"BACKUP_DIR="+backupDir, "BACKUP_OFFSITE_REPOSITORY="+offsite, "BACKUP_TEXTFILE_DIR="+textfile,
		"BACKUP_LOG_DIR="+logs, "BACKUP_STORES=postgres:postgres-dump", "TMPDIR="+filepath.Join(tmp, "tmp"))
	conn := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db.Name}
	const rows = 20000
	bpgPsql(t, conn, bpgLoadSQL(role, rows))

	// A backup that cannot reach the server fails and writes no metrics.
	failedTextfile := filepath.Join(tmp, "textfile-failed")
	out, _, err := bpgRun(proj, append(env, "PGPORT="+strconv.Itoa(freePort(t)), "BACKUP_TEXTFILE_DIR="+failedTextfile), "backup.sh")
	if err == nil || !strings.Contains(out, "cannot connect to PostgreSQL") {
		t.Errorf("backup against a closed port: err=%v, want a failure naming the connection:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(failedTextfile, "backup_postgres_logical.prom")); !os.IsNotExist(err) {
		t.Errorf("a failed backup wrote backup_postgres_logical.prom (stat: %v)", err)
	}

	want := bpgSums(t, conn)
	before := time.Now().Unix()
	_, took := bpgMustRun(t, proj, env, "backup.sh")
	prom := filepath.Join(textfile, "backup_postgres_logical.prom")
	if ts := bpgMetric(t, prom, "backup_last_success_timestamp_seconds"); int64(ts) < before || int64(ts) > time.Now().Unix() {
		t.Errorf("backup_last_success_timestamp_seconds = %v, want the time of this backup", ts)
	}
	size := bpgMetric(t, prom, "backup_last_size_bytes")

	// The manifest, as stored off-site.
	cmd := exec.Command("restic", "--cache-dir", filepath.Join(tmp, "cache"), "-r", offsite,
		"--password-file", filepath.Join(proj, "secrets", "restic_password"),
		"dump", "latest", filepath.Join(backupDir, "staging", "postgres", "manifest.json"))
	mb, err := cmd.Output()
	if err != nil {
		t.Fatalf("restic dump manifest.json from the off-site repository: %v", err)
	}
	var m bpgManifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, mb)
	}
	rowsOf := map[string]int64{}
	var total int64
	for _, tb := range m.Tables {
		rowsOf[tb.Name] = tb.Rows
		total += tb.Rows
	}
	wantRows := map[string]int64{"public.items": rows, "public.orders": rows / 4, "public.schema_migrations": 3,
		"audit.Event Log": 10, "public.opsready_backup_canary": 1}
	for name, n := range wantRows {
		if rowsOf[name] != n {
			t.Errorf("manifest: table %s has %d rows, want %d (tables %+v)", name, rowsOf[name], n, m.Tables)
		}
	}
	if len(m.Tables) != len(wantRows) || !m.RowCountsExact || m.Store != "postgres" || m.Kind != "logical" ||
		m.Method != "pg_dump" || m.Database != db.Name || m.ServerMajor != major || m.ToolVersions["pg_dump"] == "" ||
		m.Migrations == nil || m.Migrations.Version != "0003_add_audit" || m.Canary.Table != "opsready_backup_canary" ||
		m.Canary.ID == "" || len(m.Files) != 2 || m.SizeBytes != int64(size) {
		t.Errorf("manifest: %s", mb)
	}
	if !contains(m.Roles, role) || !contains(m.Roles, "postgres") {
		t.Errorf("manifest roles %v, want %s and postgres among them", m.Roles, role)
	}
	if got := bpgPsql(t, conn, fmt.Sprintf("SELECT count(*) FROM opsready_backup_canary WHERE id = '%s';", m.Canary.ID)); got != "1" {
		t.Errorf("canary %s rows in the live database: %s, want 1", m.Canary.ID, got)
	}
	t.Logf("logical backup: %d rows in %d tables, dump+globals %d bytes, backup.sh took %s", total, len(m.Tables), m.SizeBytes, took.Round(time.Millisecond))

	// Later changes must not show in what the backup restores.
	bpgPsql(t, conn, `DELETE FROM orders WHERE id <= 1000; UPDATE items SET name = 'changed' WHERE id <= 500;
		DELETE FROM audit."Event Log" WHERE id > 5; INSERT INTO schema_migrations (version) VALUES ('0004_later');`)

	// libpq warns on stderr about a password file others can read; the canary check must not
	// take the warning for its answer. The restore test edits no tracked file (a deploy
	// would reset it): docs/backup-policy.md stays as generated.
	passfile := filepath.Join(tmp, "pgpass")
	if err := os.WriteFile(passfile, []byte("nohost:5432:*:nobody:x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(filepath.Join(proj, "docs", "backup-policy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, took = bpgMustRun(t, proj, append(env, "PGPASSFILE="+passfile), "restore-test.sh")
	if after, _ := os.ReadFile(filepath.Join(proj, "docs", "backup-policy.md")); !bytes.Equal(after, policy) {
		t.Errorf("the restore test edited docs/backup-policy.md, a tracked file")
	}
	line := bpgLastLine(t, filepath.Join(logs, "restore-test.log"))
	if bpgField(line, "result") != "passed" || bpgField(line, "tables") != strconv.Itoa(len(wantRows)) ||
		bpgField(line, "rows") != strconv.FormatInt(total, 10) || bpgField(line, "store") != "postgres" {
		t.Errorf("restore-test.log: %q, want result=passed tables=%d rows=%d", line, len(wantRows), total)
	}
	resultProm := filepath.Join(textfile, "restore_test_result_postgres.prom")
	successProm := filepath.Join(textfile, "restore_test_postgres.prom")
	if v := bpgMetric(t, resultProm, "restore_test_last_result"); v != 1 {
		t.Errorf("restore_test_last_result = %v after a passed test, want 1", v)
	}
	t.Logf("logical restore test: %s rows, restore-test.sh took %s (%s)", bpgField(line, "rows"), took.Round(time.Millisecond), line)

	// The disaster path: into a new database, every row as it was at backup time.
	target := newScratchDB(t, "postgres")
	_, took = bpgMustRun(t, proj, env, "restore.sh", "postgres", "--target-db", target.Name, "--no-globals")
	targetConn := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", target.Name}
	if got := bpgSums(t, targetConn); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("restored database differs from the original at backup time:\n got %v\nwant %v", got, want)
	}
	if got := bpgPsql(t, targetConn, fmt.Sprintf("SELECT has_table_privilege('%s', 'public.items', 'SELECT');", role)); got != "t" {
		t.Errorf("the restored database lost the grant to %s", role)
	}
	t.Logf("logical restore into a new database: %s", took.Round(time.Millisecond))

	// A database that is not empty is refused without --force, and replaced with it.
	out, _, err = bpgRun(proj, env, "restore.sh", "postgres", "--no-globals")
	if err == nil || !strings.Contains(out, "is not empty") {
		t.Errorf("restore over the non-empty %s: err=%v, want a refusal:\n%s", db.Name, err, out)
	}
	bpgMustRun(t, proj, env, "restore.sh", "postgres", "--no-globals", "--force")
	if got := bpgSums(t, conn); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("--force restore: the database differs from the backup:\n got %v\nwant %v", got, want)
	}

	// Damage what the newest backup wrote off-site: the restore test must fail and say so.
	packs := bpgFiles(t, filepath.Join(offsite, "data"))
	bpgPsql(t, conn, "INSERT INTO items (name) SELECT 'later ' || g FROM generate_series(1, 3000) g;")
	bpgMustRun(t, proj, env, "backup.sh")
	var damaged []string
	for p := range bpgFiles(t, filepath.Join(offsite, "data")) {
		if !packs[p] {
			bpgDamage(t, p)
			damaged = append(damaged, p)
		}
	}
	if len(damaged) == 0 {
		t.Fatal("the second backup wrote no pack files off-site")
	}
	success, err := os.ReadFile(successProm)
	if err != nil {
		t.Fatal(err)
	}
	out, took, err = bpgRun(proj, env, "restore-test.sh")
	if err == nil || !strings.Contains(out, "damaged") {
		t.Errorf("restore test of a damaged backup: err=%v, want a failure saying it is damaged:\n%s", err, out)
	}
	if v := bpgMetric(t, resultProm, "restore_test_last_result"); v != 0 {
		t.Errorf("restore_test_last_result = %v after a failed test, want 0", v)
	}
	if after, _ := os.ReadFile(successProm); string(after) != string(success) {
		t.Errorf("a failed restore test changed restore_test_postgres.prom:\n%s", after)
	}
	line = bpgLastLine(t, filepath.Join(logs, "restore-test.log"))
	if bpgField(line, "result") != "failed" || !strings.Contains(line, "damaged") {
		t.Errorf("restore-test.log after a failed test: %q", line)
	}
	t.Logf("damaged %d off-site pack files: restore test failed in %s: %s", len(damaged), took.Round(time.Millisecond), line)
}

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

// bpgWaitSQL polls sql on conn until it returns want, for at most 60 seconds.
func bpgWaitSQL(t *testing.T, conn []string, sql, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
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
		requireTool(t, tool)
	}
	uid, gid := bpgPostgresUser(t)
	proj := generate(t, map[string]string{"db": "postgres", "db_backup_method": "physical"})
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
	port := freePort(t)
	textfile, logs, offsite := filepath.Join(base, "textfile"), filepath.Join(base, "logs"), filepath.Join(base, "offsite")
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
	pitrPort := freePort(t)
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

// bpgGenerate is generate for benchmarks.
func bpgGenerate(b *testing.B, set map[string]string) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: "webapp", Set: set, Defaults: true, Version: "test"}); err != nil {
		b.Fatalf("generate %v: %v", set, err)
	}
	return dir
}

// bpgBenchDB creates a database of about 100k rows on the local server for a benchmark and
// drops it afterwards.
func bpgBenchDB(b *testing.B) string {
	b.Helper()
	missing := func(format string, args ...any) {
		if inCI() {
			b.Fatalf(format, args...)
		}
		b.Skipf(format, args...)
	}
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "restic", "jq", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing("%s is not installed (run `make tools`)", tool)
		}
	}
	name := fmt.Sprintf("opsready_bpg_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	if _, err := bpgPsqlErr(admin, "CREATE DATABASE "+name+";"); err != nil {
		missing("local PostgreSQL on 127.0.0.1:5432: %v", err)
	}
	b.Cleanup(func() {
		if _, err := bpgPsqlErr(admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE);"); err != nil {
			b.Errorf("drop %s: %v", name, err)
		}
	})
	bpgPsql(b, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", name}, bpgLoadSQL("", 80000))
	return name
}

// BenchmarkBackupPostgresDumpScript measures a whole backup by the generated script
// (canary, snapshot row counts, pg_dump, globals, manifest, restic) of a ~100k-row database;
// compare with BenchmarkBackupPostgresBarePgDump for the script's overhead.
func BenchmarkBackupPostgresDumpScript(b *testing.B) {
	name := bpgBenchDB(b)
	proj := bpgGenerate(b, map[string]string{"db": "postgres", "db_backup_method": "logical", "offsite": "none"})
	tmp := b.TempDir()
	pw := filepath.Join(tmp, "pw")
	if err := os.WriteFile(pw, []byte("unused\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	env := bpgEnv("PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres", "PGDATABASE="+name, "PGPASSWORD_FILE="+pw,
		"BACKUP_DIR="+filepath.Join(tmp, "backups"), "BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"),
		"BACKUP_LOG_DIR="+filepath.Join(tmp, "logs"))
	bpgMustRun(b, proj, env, "postgres-dump.sh", "backup") // initialises the restic repository
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bpgMustRun(b, proj, env, "postgres-dump.sh", "backup")
	}
	b.StopTimer()
	b.ReportMetric(bpgMetric(b, filepath.Join(tmp, "textfile", "backup_postgres_logical.prom"), "backup_last_size_bytes"), "backup-bytes")
	b.ReportMetric(100000, "rows")
}

// BenchmarkBackupPostgresBarePgDump measures `pg_dump -Fc` alone of the same database.
func BenchmarkBackupPostgresBarePgDump(b *testing.B) {
	name := bpgBenchDB(b)
	out := filepath.Join(b.TempDir(), "db.dump")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("pg_dump", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-Fc", "-f", out, name)
		cmd.Env = bpgEnv()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_dump: %v\n%s", err, o)
		}
	}
	b.StopTimer()
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size()), "backup-bytes")
	b.ReportMetric(100000, "rows")
}
