package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/project"
)

// The MariaDB backup scripts of webapp 1.3.0 (ops/backup/mariadb-dump.sh and
// ops/backup/mariadb-backup.sh) run here against real servers: the local MariaDB for the
// logical method, a private mariadbd on a free port for the physical one (mariadb-backup
// reads the data directory). Each test backs up, changes the data, restore-tests, restores
// and then damages the newest backup, which the restore test must notice.

// bmyConn runs SQL with the mariadb client as root on one server.
type bmyConn struct{ args []string }

// bmySharedRoot is root on the local MariaDB (127.0.0.1:3306, empty password).
var bmySharedRoot = bmyConn{args: []string{"-h", "127.0.0.1", "-P", "3306", "-u", "root"}}

// exec runs sql (in database db when given) and returns the rows, tab-separated.
func (c bmyConn) exec(tb testing.TB, sql string, db ...string) string {
	tb.Helper()
	args := append(append([]string{}, c.args...), "--default-character-set=utf8mb4", "--batch", "--skip-column-names", "-e", sql)
	args = append(args, db...)
	out, err := exec.Command("mariadb", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("mariadb %q: %v\n%s", bmyShort(sql), err, out)
	}
	return strings.TrimRight(string(out), "\n")
}

func bmyShort(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// bmyLoadSQL creates ~n+n/4 rows in items and orders with awkward values (quotes,
// "),(" in strings, newlines, tabs, backslashes, non-ASCII, binary, JSON), an empty table,
// a table whose name holds a backquote, schema_migrations, a view, a trigger and procedures
// (one with an INSERT line in its body, which is not a row of the dump).
func bmyLoadSQL(n int) string {
	return fmt.Sprintf(`
CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO schema_migrations (version) VALUES ('0001_create_items'), ('0002_add_orders');
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, note TEXT,
  qty INT NOT NULL, price DECIMAL(12,2), data VARBINARY(64), created_at DATETIME(6) NOT NULL, doc JSON)
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO items (name, note, qty, price, data, created_at, doc)
  SELECT CONCAT('item ', seq),
    CASE seq %% 5 WHEN 0 THEN 'it''s),(tricky' WHEN 1 THEN 'line\nbreak\ttab \\ back' WHEN 2 THEN 'ünïcödé ✓ 🐬'
      WHEN 3 THEN NULL ELSE REPEAT('x', seq %% 300) END,
    seq %% 97, seq / 7, UNHEX(SHA2(seq, 256)), '2026-01-01' + INTERVAL seq SECOND, JSON_OBJECT('n', seq, 's', 'q"uote')
  FROM seq_1_to_%d;
CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT NOT NULL, amount INT NOT NULL,
  FOREIGN KEY (item_id) REFERENCES items (id) ON DELETE CASCADE) ENGINE=InnoDB;
INSERT INTO orders (item_id, amount) SELECT 1 + (seq * 7919) %% %d, seq %% 13 FROM seq_1_to_%d;
CREATE TABLE empty_things (id INT PRIMARY KEY);
CREATE TABLE `+"`odd ``name`"+` (k VARCHAR(10) PRIMARY KEY);
INSERT INTO `+"`odd ``name`"+` VALUES ('a'), ('b),(c'), ('d');
CREATE VIEW item_totals AS SELECT item_id, SUM(amount) AS total FROM orders GROUP BY item_id;
CREATE TRIGGER items_bi BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name);
CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items;
CREATE PROCEDURE add_odd()
INSERT INTO `+"`odd ``name`"+` VALUES ('y'), ('z');
`, n, n, n/4)
}

// bmyTables returns the base tables of db with their row counts.
func bmyTables(tb testing.TB, c bmyConn, db string) map[string]int64 {
	tb.Helper()
	names := strings.Split(c.exec(tb, fmt.Sprintf(
		"SELECT table_name FROM information_schema.tables WHERE table_schema = '%s' AND table_type = 'BASE TABLE' ORDER BY 1", db)), "\n")
	out := map[string]int64{}
	for _, n := range names {
		if n == "" {
			continue
		}
		v := c.exec(tb, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s`", db, strings.ReplaceAll(n, "`", "``")))
		rows, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			tb.Fatalf("count %s: %q", n, v)
		}
		out[n] = rows
	}
	return out
}

// bmyChecksums returns CHECKSUM TABLE ... EXTENDED of every base table of db, by name:
// equal checksums on the same server mean equal contents.
func bmyChecksums(tb testing.TB, c bmyConn, db string) map[string]string {
	tb.Helper()
	var quoted []string
	for n := range bmyTables(tb, c, db) {
		quoted = append(quoted, fmt.Sprintf("`%s`.`%s`", db, strings.ReplaceAll(n, "`", "``")))
	}
	sort.Strings(quoted)
	out := map[string]string{}
	for _, line := range strings.Split(c.exec(tb, "CHECKSUM TABLE "+strings.Join(quoted, ", ")+" EXTENDED"), "\n") {
		name, sum, _ := strings.Cut(line, "\t")
		out[strings.TrimPrefix(name, db+".")] = sum
	}
	return out
}

// bmyObjects counts the views, triggers and routines of db.
func bmyObjects(tb testing.TB, c bmyConn, db string) string {
	tb.Helper()
	return c.exec(tb, fmt.Sprintf(`SELECT
		(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = '%[1]s'),
		(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = '%[1]s'),
		(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = '%[1]s')`, db))
}

// bmyManifest is what the tests read of manifest.json.
type bmyManifest struct {
	Store          string            `json:"store"`
	Method         string            `json:"method"`
	Kind           string            `json:"kind"`
	Database       string            `json:"database"`
	ServerMajor    string            `json:"server_major"`
	ToolVersions   map[string]string `json:"tool_versions"`
	RowCountsExact bool              `json:"row_counts_exact"`
	RowsTotal      int64             `json:"rows_total"`
	SizeBytes      int64             `json:"size_bytes"`
	Files          []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		Sha256 string `json:"sha256"`
	} `json:"files"`
	Tables []struct {
		Name string `json:"name"`
		Rows int64  `json:"rows"`
	} `json:"tables"`
	Canary struct {
		Table string `json:"table"`
		ID    string `json:"id"`
	} `json:"canary"`
	Users      []string `json:"users"`
	Roles      []string `json:"roles"`
	Migrations *struct {
		Version string `json:"version"`
	} `json:"migrations"`
	Chain  string  `json:"chain"`
	Label  string  `json:"label"`
	Parent *string `json:"parent"`
	Lsn    struct {
		From int64 `json:"from"`
		To   int64 `json:"to"`
	} `json:"lsn"`
}

// bmyProject is a generated project and the environment its backup scripts run with.
type bmyProject struct {
	dir, tmp string
	env      []string
}

func (p *bmyProject) path(rel string) string { return filepath.Join(p.tmp, rel) }

// run runs ops/backup/<script> with extra VAR=value settings and returns its stderr
// (where the scripts log) and stdout.
func (p *bmyProject) run(extra []string, script string, args ...string) (stderr, stdout string, took time.Duration, err error) {
	cmd := exec.Command(filepath.Join(p.dir, "ops/backup", script), args...)
	cmd.Dir = p.dir
	cmd.Env = append(append([]string{}, p.env...), extra...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err = cmd.Run()
	return se.String(), so.String(), time.Since(start), err
}

// must runs a script that has to succeed.
func (p *bmyProject) must(t *testing.T, extra []string, script string, args ...string) (string, time.Duration) {
	t.Helper()
	stderr, stdout, took, err := p.run(extra, script, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\nstderr:\n%s\nstdout:\n%s", script, args, err, stderr, stdout)
	}
	return stderr + stdout, took
}

// restic runs restic on one of the project's repositories ("backups/restic" or "offsite").
func (p *bmyProject) restic(t *testing.T, repo string, args ...string) string {
	t.Helper()
	cmd := exec.Command("restic", append([]string{"--no-cache", "-r", p.path(repo)}, args...)...)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD_FILE="+filepath.Join(p.dir, "secrets/restic_password"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restic %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// manifest reads manifest.json of the newest snapshot of the primary repository.
func (p *bmyProject) manifest(t *testing.T) bmyManifest {
	t.Helper()
	var m bmyManifest
	raw := p.restic(t, "backups/restic", "dump", "latest", p.path("backups/staging/mariadb/manifest.json"))
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, raw)
	}
	return m
}

// bmyNewProject generates a project and points its scripts at temporary directories.
func bmyNewProject(t *testing.T, method string, env ...string) *bmyProject {
	t.Helper()
	p := &bmyProject{dir: generate(t, map[string]string{"db": "mariadb", "db_backup_method": method}), tmp: t.TempDir()}
	p.env = append(os.Environ(),
		"BACKUP_DIR="+p.path("backups"), "BACKUP_OFFSITE_REPOSITORY="+p.path("offsite"),
		"BACKUP_TEXTFILE_DIR="+p.path("textfile"), "BACKUP_LOG_DIR="+p.path("log"),
		"BACKUP_LOCK_TIMEOUT=30", "RESTORE_TEST_FROM=auto")
	p.env = append(p.env, env...)
	return p
}

// bmySecret writes a password file and returns its path.
func bmySecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// bmyMetric returns the value of a sample of a textfile, or -1 when the file or sample is missing.
func bmyMetric(t *testing.T, file, sample string) float64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no sample %s:\n%s", file, sample, b)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// lastRestoreTest returns the last line of the restore-test log.
func (p *bmyProject) lastRestoreTest(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.path("log/restore-test.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// damageNewPacks overwrites bytes in the middle of the pack files of repo that are not in
// before (those the newest backup added) and returns how many it damaged. (Truncated packs
// fail as well, but restic retries reading them for about 45 s.)
func (p *bmyProject) damageNewPacks(t *testing.T, repo string, before map[string]bool) int {
	t.Helper()
	n := 0
	for path := range p.packs(t, repo) {
		if before[path] {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt([]byte("opsready-test-damage"), fi.Size()/2)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("the newest backup added no pack files to %s", repo)
	}
	return n
}

// packs lists the pack files of a repository.
func (p *bmyProject) packs(t *testing.T, repo string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(p.path(filepath.Join(repo, "data")), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[path] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bmySize is the total size of the files below dir.
func bmySize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestBackupMariadbDump: logical backups of a scratch database on the local MariaDB with a
// least-privilege backup account, the restore test, a restore into a new database compared
// table by table, and a damaged off-site copy that the restore test must reject.
func TestBackupMariadbDump(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "restic", "jq"} {
		requireTool(t, tool)
	}
	db := newScratchDB(t, "mariadb")
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
	port := freePort(t)
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
	if !contains(m.Users, db.User+"@%") || !contains(m.Users, bk+"@%") || !contains(m.Roles, role) || contains(m.Users, "root@localhost") {
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
	target := newScratchDB(t, "mariadb")
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

// bmyServer is a private mariadbd on a free port with its own data directory and socket.
type bmyServer struct {
	datadir, sock string
	conn          bmyConn
}

// bmyStartServer installs and starts a mariadbd in a temporary directory; stopped at cleanup.
func bmyStartServer(t *testing.T) bmyServer {
	t.Helper()
	base := t.TempDir()
	s := bmyServer{datadir: filepath.Join(base, "data"), sock: filepath.Join(base, "mysqld.sock")}
	s.conn = bmyConn{args: []string{"--no-defaults", "--socket=" + s.sock, "-u", "root"}}
	install := []string{"--no-defaults", "--datadir=" + s.datadir, "--auth-root-authentication-method=normal", "--skip-test-db"}
	server := []string{"--no-defaults", "--datadir=" + s.datadir, "--socket=" + s.sock,
		"--port=" + strconv.Itoa(freePort(t)), "--bind-address=127.0.0.1", "--log-error=" + filepath.Join(base, "mysqld.log"),
		"--pid-file=" + filepath.Join(base, "mysqld.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin"}
	if os.Geteuid() == 0 {
		install = append(install, "--user=root")
		server = append(server, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	cmd := exec.Command(mariadbd, server...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").Run()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "ping").Run() != nil {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(base, "mysqld.log"))
			t.Fatalf("mariadbd exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadbd did not answer within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// TestBackupMariadbPhysical: mariadb-backup chains on a private server: full, writes, incr,
// writes, incr; the restore test prepares the whole chain and finds the last writes; restore
// prepares an older point; a differential backup builds on the full; a new full and pruning
// drop the old chain; a damaged newest backup fails the restore test.
func TestBackupMariadbPhysical(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-admin", "mariadbd", "mariadb-install-db", "mariadb-backup", "restic", "jq"} {
		requireTool(t, tool)
	}
	srv := bmyStartServer(t)
	srv.conn.exec(t, `CREATE DATABASE app;
		CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO 'app'@'%';
		CREATE USER 'backup'@'localhost' IDENTIFIED BY 'backup-pw';
		GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* TO 'backup'@'localhost';
		GRANT INSERT, CREATE, DELETE ON app.* TO 'backup'@'localhost'`)
	srv.conn.exec(t, bmyLoadSQL(4000), "app")

	p := bmyNewProject(t, "physical",
		"MARIADB_SOCKET="+srv.sock, "MARIADB_USER=backup", "MARIADB_DATABASE=app", "MARIADB_DATADIR="+srv.datadir,
		"BACKUP_STORES=mariadb:mariadb-backup")
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+bmySecret(t, p.tmp, "backup.pw", "backup-pw"))
	kind := func(k string) []string { return []string{"BACKUP_KIND=" + k} }

	_, took := p.must(t, kind("full"), "backup.sh")
	full := p.manifest(t)
	t.Logf("full backup: %s, %d bytes, LSN %d", took.Round(time.Millisecond), full.SizeBytes, full.Lsn.To)
	if full.Kind != "full" || full.Method != "mariadb-backup" || full.Chain != full.Label || full.Parent != nil ||
		full.RowCountsExact || !contains(full.Users, "app@%") {
		t.Errorf("full manifest: %+v", full)
	}

	srv.conn.exec(t, `INSERT INTO items (name, qty, created_at) SELECT CONCAT('inc1 ', seq), 1, NOW() FROM seq_1_to_300;
		DELETE FROM orders WHERE id % 3 = 0`, "app")
	_, took = p.must(t, kind("incr"), "backup.sh")
	inc1 := p.manifest(t)
	srv.conn.exec(t, `INSERT INTO items (name, qty, created_at) SELECT CONCAT('inc2 ', seq), 2, NOW() FROM seq_1_to_200;
		UPDATE items SET qty = 0 WHERE id % 5 = 0; INSERT INTO schema_migrations (version) VALUES ('0003_inc2')`, "app")
	_, took2 := p.must(t, kind("incr"), "backup.sh")
	inc2 := p.manifest(t)
	t.Logf("incremental backups: %s (%d bytes), %s (%d bytes)", took.Round(time.Millisecond), inc1.SizeBytes, took2.Round(time.Millisecond), inc2.SizeBytes)
	if inc1.Kind != "incr" || inc1.Chain != full.Label || inc1.Parent == nil || *inc1.Parent != full.Label || inc1.Lsn.From != full.Lsn.To ||
		inc2.Kind != "incr" || inc2.Chain != full.Label || inc2.Parent == nil || *inc2.Parent != inc1.Label || inc2.Lsn.From != inc1.Lsn.To {
		t.Errorf("chain: full %s (lsn %+v), incr %s parent %v (lsn %+v), incr %s parent %v (lsn %+v)",
			full.Label, full.Lsn, inc1.Label, inc1.Parent, inc1.Lsn, inc2.Label, inc2.Parent, inc2.Lsn)
	}
	live := bmyTables(t, srv.conn, "app")
	var liveTotal int64
	for _, n := range live {
		liveTotal += n
	}
	if inc2.RowsTotal != liveTotal || inc2.RowsTotal == inc1.RowsTotal {
		t.Errorf("rows: incr 1 %d, incr 2 %d, live %d", inc1.RowsTotal, inc2.RowsTotal, liveTotal)
	}
	for _, k := range []string{"full", "incr"} {
		if v := bmyMetric(t, p.path("textfile/backup_mariadb_"+k+".prom"), `backup_last_size_bytes{store="mariadb",kind="`+k+`"}`); v <= 0 {
			t.Errorf("backup_mariadb_%s.prom: size %v", k, v)
		}
	}

	// The restore test prepares full + incr + incr from the off-site copy.
	out, took := p.must(t, nil, "restore-test.sh")
	line := p.lastRestoreTest(t)
	t.Logf("restore-test.sh of the chain: %s: %s", took.Round(time.Millisecond), line)
	want := fmt.Sprintf("chain=%s backups=3 tables=%d rows=%d users=%d canary=ok migrations=0003_inc2", full.Label, len(live), liveTotal, len(inc2.Users))
	if !strings.Contains(line, "result=passed") || !strings.Contains(line, want) {
		t.Errorf("restore-test.log: %s\nwant %s\n%s", line, want, out)
	}

	// restore prepares an older point of the chain (full + the first incremental), picked by
	// its id in list.sh, into a new directory.
	out, _ = p.must(t, nil, "list.sh", "mariadb")
	var inc1ID string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Split(l, "\t"); len(f) >= 5 && f[4] == inc1.Label {
			inc1ID = f[3]
		}
	}
	if inc1ID == "" || strings.Count(out, "\tincr\t") != 2 || strings.Count(out, "\tfull\t") != 1 {
		t.Fatalf("list.sh mariadb has no line for %s:\n%s", inc1.Label, out)
	}
	restored := p.path("restored")
	out, took = p.must(t, nil, "restore.sh", "mariadb", "--snapshot", inc1ID, "--target-dir", restored)
	t.Logf("restore.sh mariadb --snapshot (full + 1 incremental): %s", took.Round(time.Millisecond))
	if cp, err := os.ReadFile(filepath.Join(restored, "xtrabackup_checkpoints")); err != nil || !strings.Contains(string(cp), "backup_type = log-applied") ||
		!strings.Contains(out, restored) {
		t.Errorf("restore --target-dir: %v\n%s\n%s", err, cp, out)
	}
	if _, err := os.Stat(filepath.Join(restored, "app", "items.ibd")); err != nil {
		t.Errorf("restored data directory: %v", err)
	}

	// restore refuses a non-empty target directory before fetching anything.
	busy := p.path("busy")
	if err := os.MkdirAll(filepath.Join(busy, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if stderr, _, _, err := p.run(nil, "restore.sh", "mariadb", "--target-dir", busy); err == nil || !strings.Contains(stderr, "is not empty") {
		t.Errorf("restore into a non-empty directory: err=%v\n%s", err, stderr)
	}

	// A differential backup builds on the full, not on the incrementals.
	srv.conn.exec(t, "INSERT INTO items (name, qty, created_at) SELECT CONCAT('diff ', seq), 3, NOW() FROM seq_1_to_100", "app")
	_, took = p.must(t, kind("diff"), "backup.sh")
	diff := p.manifest(t)
	t.Logf("differential backup: %s (%d bytes)", took.Round(time.Millisecond), diff.SizeBytes)
	if diff.Kind != "diff" || diff.Parent == nil || *diff.Parent != full.Label || diff.Lsn.From != full.Lsn.To || diff.Chain != full.Label {
		t.Errorf("diff backup: kind %s parent %v lsn %+v, want parent %s from %d", diff.Kind, diff.Parent, diff.Lsn, full.Label, full.Lsn.To)
	}
	if v := bmyMetric(t, p.path("textfile/backup_mariadb_diff.prom"), `backup_last_size_bytes{store="mariadb",kind="diff"}`); v <= 0 {
		t.Errorf("backup_mariadb_diff.prom: size %v", v)
	}

	// A second full starts a new chain; pruning with one daily backup kept forgets the first
	// full and, with it, the incremental and differential backups of its chain, in both
	// repositories.
	packs := p.packs(t, "offsite")
	srv.conn.exec(t, "INSERT INTO items (name, qty, created_at) SELECT CONCAT('full2 ', seq), 4, NOW() FROM seq_1_to_100", "app")
	p.must(t, kind("full"), "backup.sh")
	full2 := p.manifest(t)
	_, took = p.must(t, []string{"BACKUP_RETENTION_DAILY=1", "BACKUP_RETENTION_WEEKLY=0", "BACKUP_RETENTION_MONTHLY=0"}, "prune.sh")
	t.Logf("prune.sh: %s", took.Round(time.Millisecond))
	for _, repo := range []string{"backups/restic", "offsite"} {
		var snaps []struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal([]byte(p.restic(t, repo, "snapshots", "--json")), &snaps); err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 1 || !contains(snaps[0].Tags, "label="+full2.Label) {
			t.Errorf("%s after pruning: %+v, want only the full backup %s", repo, snaps, full2.Label)
		}
	}

	// Damage the newest backup off-site (the packs it and the pruning wrote): the restore
	// test fails and says why.
	n := p.damageNewPacks(t, "offsite", packs)
	stderr, _, took, err := p.run(nil, "restore-test.sh")
	t.Logf("restore-test.sh of a damaged chain (%d packs damaged): %s: %s", n, took.Round(time.Millisecond), p.lastRestoreTest(t))
	if err == nil || !strings.Contains(stderr, "restore test of mariadb FAILED") || !strings.Contains(stderr, "damaged") {
		t.Errorf("restore test of a damaged chain: err=%v\n%s", err, stderr)
	}
	if r := bmyMetric(t, p.path("textfile/restore_test_result_mariadb.prom"), `restore_test_last_result{store="mariadb"}`); r != 0 {
		t.Errorf("restore_test_last_result = %v after a failed test, want 0", r)
	}
}

// bmyBenchDB creates a database with ~100k rows on the local MariaDB for the benchmarks and
// a backup account with a password; both are dropped at cleanup.
func bmyBenchDB(b *testing.B) (db, user, pwFile string) {
	b.Helper()
	if _, err := exec.LookPath("mariadb-dump"); err != nil {
		b.Skip("mariadb-dump is not installed")
	}
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	db, user = "opsready_bench_"+suffix, "bmy_bench_"+suffix
	bmySharedRoot.exec(b, fmt.Sprintf("CREATE DATABASE `%[1]s`; CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO '%[2]s'@'%%'", db, user))
	b.Cleanup(func() {
		bmySharedRoot.exec(b, fmt.Sprintf("DROP DATABASE IF EXISTS `%s`; DROP USER IF EXISTS '%s'@'%%'", db, user))
	})
	bmySharedRoot.exec(b, bmyLoadSQL(80000), db)
	pwFile = filepath.Join(b.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	return db, user, pwFile
}

// BenchmarkBackupMariadbDumpScript runs the generated backup (dump with row counting,
// accounts, manifest, restic into the primary repository and the off-site copy).
func BenchmarkBackupMariadbDumpScript(b *testing.B) {
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
	run := func() {
		cmd := exec.Command(filepath.Join(dir, "ops/backup/mariadb-dump.sh"), "backup")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("backup: %v\n%s", err, out)
		}
	}
	run() // initialises the repositories outside the measurement
	repo := filepath.Join(tmp, "backups", "restic")
	before := bmySize(repo)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	b.StopTimer()
	size, err := os.ReadFile(filepath.Join(tmp, "textfile", "backup_mariadb_logical.prom"))
	if err != nil {
		b.Fatal(err)
	}
	if m := regexp.MustCompile(`backup_last_size_bytes\{[^}]*\} (\d+)`).FindSubmatch(size); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		b.ReportMetric(v, "staged-bytes")
	}
	b.ReportMetric(float64(bmySize(repo)-before)/float64(b.N), "repo-growth-bytes/op")
	b.ReportMetric(float64(before), "repo-first-bytes")
}

// BenchmarkBackupMariadbBareDump is the baseline: mariadb-dump with the same options into a file.
func BenchmarkBackupMariadbBareDump(b *testing.B) {
	db, user, pw := bmyBenchDB(b)
	out := filepath.Join(b.TempDir(), "dump.sql")
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("mariadb-dump", "-h", "127.0.0.1", "-P", "3306", "-u", user, "-p"+strings.TrimSpace(bmyRead(b, pw)),
			"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob", db)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = f, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("mariadb-dump: %v\n%s", err, stderr.String())
		}
		f.Close()
		fi, _ := os.Stat(out)
		size = fi.Size()
	}
	b.ReportMetric(float64(size), "dump-bytes")
}

func bmyRead(b *testing.B, path string) string {
	v, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return string(v)
}
