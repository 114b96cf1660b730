package backup

import (
	"bytes"
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
)

// TestBackupPostgresLogical backs up a scratch database of the local server with the
// generated postgres-dump.sh (through backup.sh), restore-tests it, restores it into a new
// database and compares every row, and checks that a failed backup writes no metrics and
// that a damaged backup fails the restore test.
func TestBackupPostgresLogical(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "pg_restore", "restic", "jq", "flock", "setpriv"} {
		e2eutil.RequireTool(t, tool)
	}
	e2eutil.RequireServer(t, "PostgreSQL", 5432)
	// The restore test runs a scratch cluster of the server's major version.
	major := bpgPsql(t, []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"},
		"SELECT current_setting('server_version_num')::int / 10000;")
	e2eutil.RequireTool(t, fmt.Sprintf("/usr/lib/postgresql/%s/bin/initdb", major))
	role := bpgRole(t)
	db := e2eutil.NewScratchDB(t, "postgres")
	proj := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_backup_method": "logical"})
	tmp := bpgFastDir(t)
	pw := filepath.Join(tmp, "db_password")
	if err := os.WriteFile(pw, []byte("unused with trust auth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backupDir, offsite := filepath.Join(tmp, "backups"), filepath.Join(tmp, "offsite")
	textfile, logs := filepath.Join(tmp, "textfile"), filepath.Join(tmp, "logs")
	bspRepo(t, filepath.Join(backupDir, "restic"), filepath.Join(proj, "secrets", "restic_password"))
	bspRepo(t, offsite, filepath.Join(proj, "secrets", "restic_password"))
	env := bpgEnv("PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres", "PGDATABASE="+db.Name, "PGPASSWORD_FILE="+pw,
		"BACKUP_DIR="+backupDir, "BACKUP_OFFSITE_REPOSITORY="+offsite, "BACKUP_TEXTFILE_DIR="+textfile,
		"BACKUP_LOG_DIR="+logs, "BACKUP_STORES=postgres:postgres-dump", "TMPDIR="+filepath.Join(tmp, "tmp"))
	conn := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", db.Name}
	const rows = 20000
	bpgPsql(t, conn, bpgLoadSQL(role, rows))

	// A backup that cannot reach the server fails and writes no metrics.
	failedTextfile := filepath.Join(tmp, "textfile-failed")
	out, _, err := bpgRun(proj, append(env, "PGPORT="+strconv.Itoa(e2eutil.FreePort(t)), "BACKUP_TEXTFILE_DIR="+failedTextfile), "backup.sh")
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
	if !slices.Contains(m.Roles, role) || !slices.Contains(m.Roles, "postgres") {
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
	target := e2eutil.NewScratchDB(t, "postgres")
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
