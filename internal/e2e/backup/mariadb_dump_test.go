package backup

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestBackupMariadbDump: logical backups of a scratch database on the local MariaDB with a
// least-privilege backup account, the restore test, a restore into a new database compared
// table by table, and a damaged off-site copy that the restore test must reject.
func TestBackupMariadbDump(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "restic", "jq"} {
		e2eutil.RequireTool(t, tool)
	}
	db := e2eutil.NewScratchDB(t, "mariadb")
	root := bmySharedRoot
	suffix := strings.TrimPrefix(db.Name, "opsready_t_")
	bk, adm, role := "bmy_bk_"+suffix, "bmy_adm_"+suffix, "bmy_role_"+suffix
	t.Cleanup(func() {
		for _, s := range []string{
			fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", bk),
			fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", adm),
			fmt.Sprintf("DROP ROLE IF EXISTS %s", role),
		} {
			if out, err := exec.Command("mariadb", append(append([]string{}, root.args...), "-e", s)...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v: %s", s, err, out)
			}
		}
	})
	// The backup account has what mariadb-dump and the account dump need, and may write the
	// canary table; the restore (the disaster path) runs as an administrator.
	root.exec(t, fmt.Sprintf(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'bk-%[4]s';
		GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, RELOAD, PROCESS ON *.* TO '%[1]s'@'%%';
		GRANT INSERT, CREATE, DELETE ON `+"`%[3]s`"+`.* TO '%[1]s'@'%%';
		CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'adm-%[4]s';
		GRANT ALL PRIVILEGES ON *.* TO '%[2]s'@'%%' WITH GRANT OPTION;
		CREATE ROLE %[5]s; GRANT SELECT ON `+"`%[3]s`"+`.* TO %[5]s;
		GRANT %[5]s TO '%[6]s'@'%%'; SET DEFAULT ROLE %[5]s FOR '%[6]s'@'%%'`,
		bk, adm, db.Name, suffix, role, db.User))
	start := time.Now()
	root.exec(t, bmyLoadSQL(16000), db.Name)
	t.Logf("loaded 20000 rows in %s", time.Since(start).Round(time.Millisecond))

	p := bmyNewProject(t, "logical",
		"MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+db.Name,
		"MARIADB_USER="+bk, "BACKUP_STORES=mariadb:mariadb-dump")
	bkPw := []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "bk.pw", "bk-"+suffix)}
	admEnv := []string{"MARIADB_USER=" + adm, "MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "adm.pw", "adm-"+suffix)}
	prom := p.path("textfile/backup_mariadb_logical.prom")

	// A backup that cannot reach the server fails, says why, and writes no success metric.
	port := e2eutil.FreePort(t)
	stderr, _, _, err := p.run(append(bkPw, "MARIADB_PORT="+strconv.Itoa(port)), "backup.sh")
	if err == nil || !strings.Contains(stderr, fmt.Sprintf("cannot connect to MariaDB at 127.0.0.1:%d", port)) {
		t.Fatalf("backup against a closed port: err=%v, want a failure naming the server:\n%s", err, stderr)
	}
	if _, err := os.Stat(prom); !os.IsNotExist(err) {
		t.Fatalf("a failed backup wrote %s (%v)", prom, err)
	}

	before := time.Now().Unix()
	out, took := p.must(t, bkPw, "backup.sh")
	t.Logf("backup.sh (first, initialises both repositories): %s", took.Round(time.Millisecond))
	if ts := bmyMetric(t, prom, `backup_last_success_timestamp_seconds{store="mariadb",kind="logical"}`); ts < float64(before) || ts > float64(time.Now().Unix()) {
		t.Errorf("backup_last_success_timestamp_seconds = %v, want the time of the backup\n%s", ts, out)
	}
	if size := bmyMetric(t, prom, `backup_last_size_bytes{store="mariadb",kind="logical"}`); size <= 0 {
		t.Errorf("backup_last_size_bytes = %v", size)
	}

	m := p.manifest(t)
	live := bmyTables(t, root, db.Name)
	if m.Store != "mariadb" || m.Method != "mariadb-dump" || m.Kind != "logical" || m.Database != db.Name ||
		!m.RowCountsExact || m.ServerMajor == "" || !strings.HasPrefix(m.ToolVersions["server"], m.ServerMajor+".") ||
		m.ToolVersions["mariadb-dump"] == "" {
		t.Errorf("manifest header: %+v", m)
	}
	var total int64
	got := map[string]int64{}
	for _, tb := range m.Tables {
		got[tb.Name] = tb.Rows
		total += tb.Rows
	}
	if fmt.Sprint(got) != fmt.Sprint(live) || total != m.RowsTotal || live["items"] != 16000 || live["orders"] != 4000 {
		t.Errorf("manifest tables %v (total %d, rows_total %d), live tables %v", got, total, m.RowsTotal, live)
	}
	if len(m.Files) < 2 || m.SizeBytes <= 0 {
		t.Errorf("manifest files %+v", m.Files)
	}
	for _, f := range m.Files {
		if len(f.Sha256) != 64 || f.Size <= 0 {
			t.Errorf("manifest file %+v", f)
		}
	}
	if c := root.exec(t, fmt.Sprintf("SELECT COUNT(*) FROM opsready_backup_canary WHERE id = '%s'", m.Canary.ID), db.Name); m.Canary.ID == "" || c != "1" {
		t.Errorf("canary %+v: %s rows in the live table", m.Canary, c)
	}
	if !slices.Contains(m.Users, db.User+"@%") || !slices.Contains(m.Users, bk+"@%") || !slices.Contains(m.Roles, role) || slices.Contains(m.Users, "root@localhost") {
		t.Errorf("manifest accounts %v roles %v, want %s and %s but no root", m.Users, m.Roles, db.User, role)
	}
	if m.Migrations == nil || m.Migrations.Version != "0002_add_orders" {
		t.Errorf("manifest migrations %+v", m.Migrations)
	}
	if s := p.restic(t, "offsite", "snapshots", "--json"); strings.Count(s, `"store=mariadb"`) != 1 {
		t.Errorf("off-site snapshots: %s", s)
	}
	dumpSize := int64(0)
	for _, f := range m.Files {
		dumpSize += f.Size
	}
	t.Logf("backup: %d tables, %d rows, dump+users %d bytes, primary repository %d bytes, off-site %d bytes",
		len(m.Tables), m.RowsTotal, dumpSize, bmySize(p.path("backups/restic")), bmySize(p.path("offsite")))
	sums := bmyChecksums(t, root, db.Name)
	objects := bmyObjects(t, root, db.Name)

	// Changes after the backup: the restore test must find the backup's state, not these.
	root.exec(t, `UPDATE items SET qty = qty + 1 WHERE id % 7 = 0; DELETE FROM items WHERE id % 10 = 0;
		INSERT INTO items (name, qty, created_at) SELECT CONCAT('late ', seq), 1, NOW() FROM seq_1_to_100;
		INSERT INTO schema_migrations (version) VALUES ('0003_later')`, db.Name)

	out, took = p.must(t, nil, "restore-test.sh")
	line := p.lastRestoreTest(t)
	t.Logf("restore-test.sh: %s: %s", took.Round(time.Millisecond), line)
	want := fmt.Sprintf("tables=%d rows=%d users=%d canary=ok migrations=0002_add_orders", len(m.Tables), m.RowsTotal, len(m.Users))
	if !strings.Contains(line, "result=passed") || !strings.Contains(line, want) {
		t.Errorf("restore-test.log: %s\nwant %s\n%s", line, want, out)
	}
	if r := bmyMetric(t, p.path("textfile/restore_test_result_mariadb.prom"), `restore_test_last_result{store="mariadb"}`); r != 1 {
		t.Errorf("restore_test_last_result = %v, want 1", r)
	}
	passed, err := os.ReadFile(p.path("textfile/restore_test_mariadb.prom"))
	if err != nil {
		t.Fatal(err)
	}

	// The disaster path: refuses a non-empty database, restores into a new one.
	stderr, _, _, err = p.run(admEnv, "restore.sh", "mariadb", "--target-db", db.Name)
	if err == nil || !strings.Contains(stderr, "is not empty") {
		t.Errorf("restore over the non-empty live database: err=%v\n%s", err, stderr)
	}
	target := e2eutil.NewScratchDB(t, "mariadb")
	// The app account and its role are dropped: --users brings them back. Accounts of other
	// tests that the backup holds and that went away meanwhile are dropped again afterwards.
	root.exec(t, fmt.Sprintf("DROP USER '%s'@'%%'; DROP ROLE %s", db.User, role))
	accounts := func() map[string]bool {
		out := map[string]bool{}
		for _, a := range strings.Split(root.exec(t, "SELECT CONCAT(user, '@', host) FROM mysql.user"), "\n") {
			out[a] = true
		}
		return out
	}
	existed := accounts()
	out, took = p.must(t, admEnv, "restore.sh", "mariadb", "--target-db", target.Name, "--users")
	t.Logf("restore.sh mariadb --target-db: %s", took.Round(time.Millisecond))
	now := accounts()
	for _, a := range m.Users {
		if now[a] && !existed[a] && a != db.User+"@%" {
			user, host, _ := strings.Cut(a, "@")
			root.exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, host))
		}
	}
	if !now[db.User+"@%"] || !now[role+"@"] {
		t.Errorf("restore --users did not recreate %s and role %s\n%s", db.User, role, out)
	} else if g := root.exec(t, fmt.Sprintf("SHOW GRANTS FOR '%s'@'%%'", db.User)); !strings.Contains(g, db.Name) || !strings.Contains(g, role) {
		t.Errorf("grants of the restored %s:\n%s", db.User, g)
	}
	if restored := bmyChecksums(t, root, target.Name); fmt.Sprint(restored) != fmt.Sprint(sums) {
		t.Errorf("restored tables differ from the backed-up ones:\nrestored %v\nbackup   %v", restored, sums)
	}
	if o := bmyObjects(t, root, target.Name); o != objects {
		t.Errorf("restored views, triggers, routines %q, want %q", o, objects)
	}

	// A second backup, whose off-site packs are then damaged: the restore test (off-site by
	// default) fails, says so and keeps the last success; the primary copy still restores.
	packs := p.packs(t, "offsite")
	p.must(t, bkPw, "backup.sh")
	m2 := p.manifest(t)
	n := p.damageNewPacks(t, "offsite", packs)
	stderr, _, took, err = p.run(nil, "restore-test.sh")
	t.Logf("restore-test.sh of a damaged backup (%d packs damaged): %s: %s", n, took.Round(time.Millisecond), p.lastRestoreTest(t))
	if err == nil || !strings.Contains(stderr, "restore test of mariadb FAILED") || !strings.Contains(stderr, "damaged") {
		t.Errorf("restore test of a damaged backup: err=%v, want a failure naming the damage:\n%s", err, stderr)
	}
	if r := bmyMetric(t, p.path("textfile/restore_test_result_mariadb.prom"), `restore_test_last_result{store="mariadb"}`); r != 0 {
		t.Errorf("restore_test_last_result = %v after a failed test, want 0", r)
	}
	if after, _ := os.ReadFile(p.path("textfile/restore_test_mariadb.prom")); string(after) != string(passed) {
		t.Errorf("a failed restore test changed restore_test_mariadb.prom:\n%s\nwas:\n%s", after, passed)
	}
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=failed") {
		t.Errorf("restore-test.log: %s", line)
	}
	p.must(t, []string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, fmt.Sprintf("rows=%d ", m2.RowsTotal)) || !strings.Contains(line, "migrations=0003_later") {
		t.Errorf("restore test of the primary copy of the second backup: %s, want rows=%d", line, m2.RowsTotal)
	}
	if out, _ := p.must(t, nil, "list.sh", "mariadb"); strings.Count(out, "\tlogical\t") != 2 {
		t.Errorf("list.sh mariadb:\n%s", out)
	}
}
