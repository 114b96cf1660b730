package roles

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The MariaDB side of ops/db/roles.sh (webapp 1.6.0, component db-mariadb) runs here on a
// plain host against a private mariadbd set up as webapp 1.x's image left it: the upgrade,
// a second run, a rotated secret, the refusals, and the accounts at work (mysqld_exporter,
// the generated backup scripts).

// rolMdSeed is the data the 1.x application created as app: tables with non-ASCII rows, a
// view and a trigger (whose DEFINER is app), and a table of another database that only root
// can read.
const rolMdSeed = `
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, note TEXT) DEFAULT CHARSET=utf8mb4;
INSERT INTO items (name, note) VALUES ('ünïcödé ✓ 🐬', 'it''s \\ tricky'), ('plain', NULL), ('日本語', 'x');
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item_id INT NOT NULL, at DATETIME NOT NULL);
CREATE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, at) VALUES (NEW.id, NOW());
CREATE VIEW item_names AS SELECT id, name FROM items;
INSERT INTO items (name) VALUES ('after trigger');
`

// rolMdSeedApp creates rolMdSeed as app and the table other.secret as root. 1.x had no binary
// log, 1.6.0 has one (for the replica): with it, creating a trigger takes SUPER or
// log_bin_trust_function_creators, which the seed, standing for 1.x, gets for a moment.
func rolMdSeedApp(t *testing.T, s *rolMdServer) {
	t.Helper()
	s.root("SET GLOBAL log_bin_trust_function_creators = 1")
	if _, err := s.as("app", rolMdAppPW, rolMdSeed); err != nil {
		t.Fatalf("seed as app: %v", err)
	}
	s.root("SET GLOBAL log_bin_trust_function_creators = 0")
	s.root("CREATE DATABASE other; CREATE TABLE other.secret (v VARCHAR(20)); INSERT INTO other.secret VALUES ('top')")
}

// rolMdUpgraded starts a 1.x server with rolMdSeed and a secret table in database other,
// runs roles.sh once and returns the server and its log.
func rolMdUpgraded(t *testing.T) (*rolMdServer, string) {
	t.Helper()
	s := rolMdStart(t)
	rolMdSeedApp(t, s)
	return s, s.mustRoles()
}

// TestRolMdUpgrade: a 1.x database after one run: each account can do its job and nothing
// more, app can no longer log in, the data is unchanged, and the password crossed the wire
// and the binary log only as a hash.
func TestRolMdUpgrade(t *testing.T) {
	t.Parallel()
	s := rolMdStart(t)
	rolMdSeedApp(t, s)
	tables := []string{"app.items", "app.audit", "other.secret"}
	before := s.checksums(tables...)
	start := time.Now()
	log := s.mustRoles()
	t.Logf("roles.sh on a 1.x database: %s\n%s", time.Since(start).Round(time.Millisecond), log)
	for _, want := range []string{"roles: app_rw: created", "roles: app_migrate: created", "roles: app_monitor: created",
		"roles: app_backup: created", "roles: app: locked"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, s.pw["app_rw"]) || regexp.MustCompile(`\*[0-9A-F]{40}`).MatchString(log) {
		t.Errorf("the log shows a password or its hash:\n%s", log)
	}
	if got := s.checksums(tables...); got != before {
		t.Errorf("checksums changed:\nbefore %s\nafter  %s", before, got)
	}

	// app_rw: the application's statements in app, nothing else.
	s.mustUser("app_rw", "SELECT COUNT(*) FROM items; SELECT * FROM item_names")
	s.mustUser("app_rw", "INSERT INTO items (name) VALUES ('new ✓'); UPDATE items SET note = 'u' WHERE name = 'plain'; DELETE FROM items WHERE name = '日本語'")
	if got := s.mustUser("app_rw", "SELECT COUNT(*) FROM audit WHERE item_id = (SELECT id FROM items WHERE name = 'new ✓')"); got != "1" {
		t.Errorf("the trigger of app did not run for app_rw's INSERT: %q", got)
	}
	s.denied("app_rw", "CREATE TABLE t1 (id INT)", "1142")
	s.denied("app_rw", "DROP TABLE audit", "1142")
	s.denied("app_rw", "CREATE USER x@'%'", "1227")
	s.denied("app_rw", "SELECT * FROM other.secret", "1142")
	s.denied("app_rw", "SELECT * FROM items INTO OUTFILE '/tmp/rolmd-outfile'", "1227", "1045")
	s.denied("app_rw", "GRANT SELECT ON app.* TO app_monitor@'%'", "1044", "1142")
	// LOAD_FILE without FILE answers NULL; root's answer shows that the file is readable.
	hostFile := filepath.Join(s.dir, "readable")
	if err := os.WriteFile(hostFile, []byte("readable"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := s.root(fmt.Sprintf("SELECT LOAD_FILE(%s) IS NULL", rolMdLit(hostFile))); got != "0" {
		t.Errorf("root's LOAD_FILE is NULL: the check below proves nothing")
	}
	if got := s.mustUser("app_rw", fmt.Sprintf("SELECT LOAD_FILE(%s) IS NULL", rolMdLit(hostFile))); got != "1" {
		t.Errorf("app_rw read a file with LOAD_FILE")
	}

	// app_migrate: DDL in app, not elsewhere, no accounts.
	s.mustUser("app_migrate", "CREATE TABLE m1 (id INT); ALTER TABLE m1 ADD COLUMN v TEXT; CREATE INDEX m1_v ON m1 (v(10)); DROP TABLE m1")
	s.denied("app_migrate", "CREATE TABLE other.m2 (id INT)", "1142")
	s.denied("app_migrate", "CREATE USER x@'%'", "1227")
	s.denied("app_migrate", "GRANT SELECT ON app.* TO app_monitor@'%'", "1044", "1142")

	// app: locked, and its grants: it keeps those on app.* as long as its view and trigger
	// run with them.
	if _, err := s.as("app", rolMdAppPW, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "ERROR 4151 ") {
		t.Errorf("app logs in after the upgrade (want ERROR 4151, account locked): %v", err)
	}
	if !strings.Contains(log, "roles: app: locked; keeps ALL PRIVILEGES ON `app`.* as the DEFINER of 2 ") {
		t.Errorf("the log does not say why app keeps its privileges:\n%s", log)
	}
	// Why: without them, app_rw's INSERT fails in app's trigger.
	s.root("REVOKE ALL ON app.* FROM app@'%'")
	if _, err := s.user("app_rw", "INSERT INTO items (name) VALUES ('no definer')"); err == nil {
		t.Errorf("app_rw's INSERT succeeded with the trigger's DEFINER app stripped of its privileges: keeping them is not needed")
	} else {
		t.Logf("with app's privileges revoked: %v", err)
	}
	if log := s.mustRoles(); !strings.Contains(log, "roles: app: granted ALL PRIVILEGES ON `app`.*; keeps") {
		t.Errorf("the run after the revoke does not give app its privileges back:\n%s", log)
	}
	s.mustUser("app_rw", "INSERT INTO items (name) VALUES ('definer back'); SELECT * FROM item_names")

	// A migration re-creates them as app_migrate: the next run takes app's last privileges.
	// With the binary log on, a trigger (or stored function) takes SUPER or
	// log_bin_trust_function_creators=1: no grant of app_migrate's can replace the latter.
	s.denied("app_migrate", "CREATE OR REPLACE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, at) VALUES (NEW.id, NOW())", "1419")
	s.root("SET GLOBAL log_bin_trust_function_creators = 1")
	s.mustUser("app_migrate", `CREATE OR REPLACE VIEW item_names AS SELECT id, name FROM items;
CREATE OR REPLACE TRIGGER items_ai AFTER INSERT ON items FOR EACH ROW INSERT INTO audit (item_id, at) VALUES (NEW.id, NOW())`)
	log = s.mustRoles()
	if !strings.Contains(log, "roles: app: revoked ALL PRIVILEGES ON `app`.*; no privileges\n") {
		t.Errorf("the run after the migration does not revoke app's privileges:\n%s", log)
	}
	if g := s.grants()["app"]; strings.Contains(g, "`app`.*") || !strings.HasPrefix(g, "GRANT USAGE ON *.* TO `app`@`%`") || strings.Count(g, "\n") != 0 {
		t.Errorf("app's grants: %q, want USAGE only", g)
	}
	s.mustUser("app_rw", "INSERT INTO items (name) VALUES ('migrate definer'); SELECT * FROM item_names")

	// The binary log (the replica's source) holds the accounts, with the hash only.
	var binlog []byte
	files, _ := filepath.Glob(filepath.Join(s.datadir, "bin.0*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		binlog = append(binlog, b...)
	}
	if !bytes.Contains(binlog, []byte("CREATE USER IF NOT EXISTS 'app_rw'@'%' IDENTIFIED BY PASSWORD '*")) {
		t.Errorf("the binary log of %v lacks app_rw's CREATE USER: a replica would not get it", files)
	}
	for a, pw := range s.pw {
		if a != "root" && bytes.Contains(binlog, []byte(pw)) {
			t.Errorf("the binary log holds %s's password in plain text", a)
		}
	}
}

// TestRolMdIdempotent: a second run changes nothing, not even password_last_changed; grants
// added by hand to app_rw (global, on another database, on a column, a role as default, GRANT
// OPTION) are taken away by the next run.
func TestRolMdIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := rolMdUpgraded(t)
	first, snap := s.grants(), s.snapshot()
	time.Sleep(1100 * time.Millisecond) // a password set again would get a new password_last_changed
	log := s.mustRoles()
	for _, a := range rolMdAccounts {
		if !strings.Contains(log, "roles: "+a+": unchanged\n") {
			t.Errorf("second run: log lacks %q:\n%s", "roles: "+a+": unchanged", log)
		}
	}
	if !strings.Contains(log, "roles: app: unchanged (locked, keeps ALL PRIVILEGES ON `app`.* as the DEFINER of 2 ") {
		t.Errorf("second run: app is not unchanged:\n%s", log)
	}
	for a, g := range s.grants() {
		if g != first[a] {
			t.Errorf("SHOW GRANTS FOR %s changed on the second run:\nfirst  %q\nsecond %q", a, first[a], g)
		}
	}
	if got := s.snapshot(); got != snap {
		t.Errorf("the privilege tables changed on the second run:\nfirst:\n%s\nsecond:\n%s", snap, got)
	}

	s.root(`GRANT FILE, PROCESS ON *.* TO app_rw@'%';
GRANT SELECT ON other.* TO app_rw@'%' WITH GRANT OPTION;
GRANT CREATE, DROP ON app.* TO app_rw@'%';
GRANT UPDATE (v) ON other.secret TO app_rw@'%';
CREATE ROLE rolmd_extra; GRANT SELECT ON mysql.* TO rolmd_extra; GRANT rolmd_extra TO app_rw@'%';
SET DEFAULT ROLE rolmd_extra FOR app_rw@'%'`)
	if g := s.grants()["app_rw"]; g == first["app_rw"] {
		t.Fatalf("the extra grants did not show: %q", g)
	}
	log = s.mustRoles()
	t.Logf("run after the extra grants:\n%s", log)
	if g := s.grants()["app_rw"]; g != first["app_rw"] {
		t.Errorf("app_rw after the repair:\n got %q\nwant %q", g, first["app_rw"])
	}
	if got := s.root("SELECT COUNT(*) FROM mysql.roles_mapping WHERE user = 'app_rw'"); got != "0" {
		t.Errorf("app_rw still has %s role(s)", got)
	}
	s.denied("app_rw", "SELECT * FROM other.secret", "1142")
	s.mustUser("app_rw", "SELECT COUNT(*) FROM items")
	log = s.mustRoles()
	if !strings.Contains(log, "roles: app_rw: unchanged\n") {
		t.Errorf("the run after the repair is not unchanged:\n%s", log)
	}

	// An account made a superuser by hand (ALL with GRANT OPTION on *.*) goes back too.
	s.root("GRANT ALL ON *.* TO app_monitor@'%' WITH GRANT OPTION")
	s.mustRoles()
	if g := s.grants()["app_monitor"]; g != first["app_monitor"] {
		t.Errorf("app_monitor after ALL ON *.*:\n got %q\nwant %q", g, first["app_monitor"])
	}
}

// TestRolMdRotation: a new secret file content and a run: the new password works, the old
// one no longer does; the awkward password of app_rw works as written.
func TestRolMdRotation(t *testing.T) {
	t.Parallel()
	s, _ := rolMdUpgraded(t)
	if got := s.mustUser("app_rw", "SELECT CURRENT_USER()"); got != "app_rw@%" {
		t.Errorf("app_rw with %q: %q", s.pw["app_rw"], got)
	}
	old := s.pw["app_rw"]
	s.setSecret("db_rw_password", `n€w 'rotated' \ "pw"`)
	log := s.mustRoles()
	if !strings.Contains(log, "roles: app_rw: password set\n") || !strings.Contains(log, "roles: app_migrate: unchanged\n") {
		t.Errorf("rotation log:\n%s", log)
	}
	if got := s.mustUser("app_rw", "SELECT CURRENT_USER()"); got != "app_rw@%" {
		t.Errorf("app_rw with the new password: %q", got)
	}
	if _, err := s.as("app_rw", old, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "ERROR 1045 ") {
		t.Errorf("app_rw still logs in with the old password: %v", err)
	}
	// A file without a trailing newline holds the same password.
	if err := os.WriteFile(s.secretPath("db_rw_password"), []byte(s.pw["app_rw"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if log := s.mustRoles(); !strings.Contains(log, "roles: app_rw: unchanged\n") {
		t.Errorf("the same password without a newline set it again:\n%s", log)
	}
}

// TestRolMdFaults: each refusal exits non-zero, names its cause and changes nothing.
func TestRolMdFaults(t *testing.T) {
	t.Parallel()
	s := rolMdStart(t)
	s.root("CREATE TABLE t (id INT)")
	empty := filepath.Join(s.dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(s.dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-root-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(s.dir, "no-such-file")
	cases := []struct {
		name  string
		env   []string
		want  []string
		setup func()
	}{
		{"missing password file", []string{"DB_MIGRATE_PASSWORD_FILE=" + missing}, []string{"DB_MIGRATE_PASSWORD_FILE", missing, "does not exist"}, nil},
		{"empty password file", []string{"DB_MONITOR_PASSWORD_FILE=" + empty}, []string{"DB_MONITOR_PASSWORD_FILE", empty, "is empty"}, nil},
		{"wrong admin password", []string{"DB_ADMIN_PASSWORD_FILE=" + wrong}, []string{"cannot log in", "DB_ADMIN_PASSWORD_FILE", "ERROR 1045", "Access denied for user 'root'"}, nil},
		{"no such database", []string{"DB_NAME=rolmd_nope"}, []string{"database rolmd_nope does not exist", "(DB_NAME)"}, nil},
		{"unknown backup method", []string{"DB_BACKUP_METHOD=snapshot"}, []string{"DB_BACKUP_METHOD: snapshot is not logical or physical"}, nil},
		{"same user twice", []string{"DB_BACKUP_USER=app_rw"}, []string{"DB_BACKUP_USER: app_rw is also DB_APP_USER"}, nil},
		{"read-only server", nil, []string{"is read-only"}, func() { s.root("SET GLOBAL read_only = 1") }},
	}
	before, grants := s.snapshot(), s.grants()
	for _, c := range cases {
		if c.setup != nil {
			c.setup()
		}
		stdout, stderr, code := s.roles(c.env...)
		if code == 0 {
			t.Errorf("%s: exit 0, want a refusal:\n%s", c.name, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: the message lacks %q:\n%s", c.name, w, stderr)
			}
		}
		if stdout != "" || !strings.HasPrefix(stderr, "roles: error: ") {
			t.Errorf("%s: want a \"roles: error:\" message on stderr, nothing on stdout; got %q / %q", c.name, stdout, stderr)
		}
		if got := s.snapshot(); got != before {
			t.Errorf("%s changed the privilege tables:\nbefore:\n%s\nafter:\n%s", c.name, before, got)
		}
		for a, g := range s.grants() {
			if g != grants[a] {
				t.Errorf("%s changed SHOW GRANTS FOR %s: %q -> %q", c.name, a, grants[a], g)
			}
		}
	}
	s.root("SET GLOBAL read_only = 0")

	// A server that does not answer: a refusal after DB_WAIT_SECONDS, not a hang.
	start := time.Now()
	_, stderr, code := s.roles("DB_PORT=1", "DB_WAIT_SECONDS=3")
	took := time.Since(start)
	if code == 0 || !strings.Contains(stderr, "does not answer after 3s (DB_HOST, DB_PORT, DB_WAIT_SECONDS)") || took < 3*time.Second || took > 30*time.Second {
		t.Errorf("no server: exit %d after %s:\n%s", code, took.Round(time.Millisecond), stderr)
	}

	// The control: the same server with good settings succeeds, so the refusals above were
	// about their cause.
	s.mustRoles()
	if s.snapshot() == before {
		t.Errorf("a good run changed nothing either: the snapshot cannot see a change")
	}

	// A server that answers late (compose started db-roles early): the run waits for it.
	port := e2eutil.FreePort(t)
	go rolMdLateProxy(t, port, s.port, 3*time.Second)
	start = time.Now()
	if _, stderr, code := s.roles(fmt.Sprintf("DB_PORT=%d", port), "DB_WAIT_SECONDS=60"); code != 0 || time.Since(start) < 3*time.Second {
		t.Errorf("a server that answers after 3s: exit %d after %s:\n%s", code, time.Since(start).Round(time.Millisecond), stderr)
	}
}

// rolMdLateProxy listens on port after delay and forwards each connection to target, until
// the test ends.
func rolMdLateProxy(t *testing.T, port, target int, delay time.Duration) {
	time.Sleep(delay)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Errorf("late proxy: %v", err)
		return
	}
	t.Cleanup(func() { l.Close() })
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", target), 5*time.Second)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c) }()
			_, _ = io.Copy(c, u)
		}()
	}
}

// rolMdExporterVersion is the mysqld_exporter that compose.monitoring.yaml pins.
const rolMdExporterVersion = "0.17.2"

// rolMdExporter returns mysqld_exporter from PATH at the pinned version; a missing one skips
// (fails under CI). internal/e2e/monitoring/testdata/scrapes/capture.sh says how to build it.
func rolMdExporter(t *testing.T) string {
	t.Helper()
	// The Go module proxy here refuses github.com/prometheus/mysqld_exporter, so `make tools`
	// cannot install it: without it on PATH the collectors' statements are run instead.
	bin, err := exec.LookPath("mysqld_exporter")
	if err != nil {
		t.Logf("mysqld_exporter is not on PATH: running its collectors' statements as the account instead")
		return ""
	}
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	if !strings.Contains(string(out), "version "+rolMdExporterVersion+" ") {
		t.Logf("%s is not mysqld_exporter %s (%q): running its collectors' statements instead", bin, rolMdExporterVersion, strings.SplitN(string(out), "\n", 2)[0])
		return ""
	}
	return bin
}

// rolMdCollectorSQL are the statements of mysqld_exporter 0.17.2's default collectors and
// of binlog_size (collector/global_status.go, global_variables.go, slave_status.go,
// binlog.go), as the compose runs it (the InnoDB compression collectors off).
var rolMdCollectorSQL = []string{"SHOW GLOBAL STATUS", "SHOW GLOBAL VARIABLES", "SHOW ALL SLAVES STATUS",
	"SHOW GLOBAL VARIABLES LIKE 'log_bin'", "SHOW BINARY LOGS"}

// rolMdScrape runs mysqld_exporter as account (the flags of the generated compose with a
// replica: default collectors but the InnoDB compression ones, plus binlog_size) against s, scrapes /metrics twice and returns
// the second scrape and the exporter's log.
func rolMdScrape(t *testing.T, s *rolMdServer, bin, account, password string) (string, string) {
	t.Helper()
	port := e2eutil.FreePort(t)
	cmd := exec.Command(bin, fmt.Sprintf("--mysqld.address=127.0.0.1:%d", s.port), "--mysqld.username="+account,
		"--no-collect.info_schema.innodb_cmp", "--no-collect.info_schema.innodb_cmpmem",
		"--collect.binlog_size", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "MYSQLD_EXPORTER_PASSWORD="+password)
	p := e2eutil.StartProc(t, cmd, port)
	p.WaitStatus(t, "/", 200)
	var body []byte
	for i := 0; i < 2; i++ {
		var code int
		code, body, _ = p.Do(t, "GET", "/metrics", "")
		if code != 200 {
			t.Fatalf("GET /metrics as %s: %d\n%s", account, code, body)
		}
	}
	_, _, err := p.Terminate(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return string(body), p.Out.String()
}

// TestRolMdExporter: mysqld_exporter at the pinned version, as app_monitor, with the
// generated compose's flags: mysql_up 1, the series the alert rules read, no collector
// error. The same run as app_rw shows that the check sees a missing privilege. Without the
// exporter, its collectors' statements run as the two accounts.
func TestRolMdExporter(t *testing.T) {
	t.Parallel()
	bin := rolMdExporter(t)
	s, _ := rolMdUpgraded(t)
	if bin == "" {
		for _, q := range rolMdCollectorSQL {
			if _, err := s.asIn("", "app_monitor", s.pw["app_monitor"], q); err != nil {
				t.Errorf("as app_monitor, %s: %v", q, err)
			}
		}
		for _, q := range []string{"SHOW ALL SLAVES STATUS", "SHOW BINARY LOGS"} {
			if _, err := s.asIn("", "app_rw", s.pw["app_rw"], q); err == nil {
				t.Errorf("as app_rw, %s succeeded: the check above proves nothing", q)
			}
		}
		s.denied("app_monitor", "SELECT * FROM items", "1044")
		return
	}
	metrics, log := rolMdScrape(t, s, bin, "app_monitor", s.pw["app_monitor"])
	for _, re := range []string{
		`(?m)^mysql_up 1$`,
		`(?m)^mysql_global_status_threads_connected [1-9]`,
		`(?m)^mysql_global_status_innodb_deadlocks `,
		`(?m)^mysql_global_status_slaves_connected `,
		`(?m)^mysql_global_variables_max_connections [1-9]`,
		`(?m)^mysql_binlog_size_bytes [1-9]`,
		`(?m)^mysql_binlog_files [1-9]`,
		`(?m)^mysql_exporter_collector_success\{collector="collect.slave_status"\} 1$`,
		`(?m)^mysql_exporter_collector_success\{collector="collect.binlog_size"\} 1$`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("as app_monitor: no %s in /metrics", re)
		}
	}
	if m := regexp.MustCompile(`(?m)^mysql_exporter_collector_success\{collector="[^"]+"\} 0$`).FindAllString(metrics, -1); len(m) > 0 {
		t.Errorf("as app_monitor, collectors failed: %v", m)
	}
	if regexp.MustCompile(`(?i)denied|error`).MatchString(log) {
		t.Errorf("mysqld_exporter's log as app_monitor has errors:\n%s", log)
	}
	// The replica-status collector's query itself, which the scrape of a primary answers empty.
	if _, err := s.asIn("", "app_monitor", s.pw["app_monitor"], "SHOW ALL SLAVES STATUS; SHOW BINARY LOGS"); err != nil {
		t.Error(err)
	}
	// No table of the application.
	s.denied("app_monitor", "SELECT * FROM items", "1044")
	// The cap of mysqld_exporter's README.
	if got := s.root("SELECT max_user_connections FROM mysql.user WHERE user = 'app_monitor'"); got != "3" {
		t.Errorf("app_monitor's MAX_USER_CONNECTIONS = %s, want 3", got)
	}

	// The control: app_rw lacks the privileges, and the same checks see it.
	rwMetrics, rwLog := rolMdScrape(t, s, bin, "app_rw", s.pw["app_rw"])
	if !regexp.MustCompile(`(?i)denied`).MatchString(rwLog) ||
		!regexp.MustCompile(`(?m)^mysql_exporter_collector_success\{collector="collect.slave_status"\} 0$`).MatchString(rwMetrics) {
		t.Errorf("mysqld_exporter as app_rw logs no denied privilege: the check above proves nothing:\n%s", rwLog)
	}
}

// rolMdBackupProject generates a project with the MariaDB backup method and returns it with
// the environment its backup scripts run with against s as app_backup.
func rolMdBackupProject(t *testing.T, s *rolMdServer, method string, extra ...string) (string, []string) {
	t.Helper()
	for _, tool := range []string{"restic", "jq", "perl", "mariadb-dump"} {
		e2eutil.RequireTool(t, tool)
	}
	dir := e2eutil.Generate(t, map[string]string{"db": "mariadb", "db_backup_method": method})
	tmp := e2eutil.FastTempDir(t)
	if err := os.Mkdir(filepath.Join(tmp, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"BACKUP_DIR="+filepath.Join(tmp, "backups"), "BACKUP_OFFSITE_REPOSITORY="+filepath.Join(tmp, "offsite"),
		"BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"), "BACKUP_LOG_DIR="+filepath.Join(tmp, "log"),
		"BACKUP_LOCK_TIMEOUT=30", "RESTORE_TEST_FROM=auto", "TMPDIR="+filepath.Join(tmp, "tmp"),
		"MARIADB_HOST=127.0.0.1", fmt.Sprintf("MARIADB_PORT=%d", s.port), "MARIADB_DATABASE=app",
		"MARIADB_USER=app_backup", "MARIADB_PASSWORD_FILE="+s.secretPath("db_backup_password"))
	return dir, append(env, extra...)
}

// rolMdRunBackup runs ops/backup/<script> of dir with env and returns its output.
func rolMdRunBackup(t *testing.T, dir string, env []string, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "ops", "backup", script), args...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 10*time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %v as app_backup: %s", script, args, time.Since(start).Round(time.Millisecond))
	return string(out), err
}

// rolMdBackupAndTest runs backup.sh and restore-test.sh, which must both succeed.
func rolMdBackupAndTest(t *testing.T, dir string, env []string) {
	t.Helper()
	for _, script := range []string{"backup.sh", "restore-test.sh"} {
		if out, err := rolMdRunBackup(t, dir, env, script); err != nil {
			t.Fatalf("%s as app_backup: %v\n%s", script, err, out)
		}
	}
	if log := e2eutil.ReadFile(t, filepath.Join(rolMdEnvValue(env, "BACKUP_LOG_DIR"), "restore-test.log")); !strings.Contains(log, "result=passed") {
		t.Errorf("restore-test.log: %s", log)
	}
}

// TestRolMdBackup: the generated backup scripts as app_backup. The logical method
// (mariadb-dump, the default) backs up and restore-tests a database with a view, a trigger, a
// procedure and a view that calls a function; the physical one (mariadb-backup reads the
// data directory, as the backup container does with the volume) fails with the logical set
// and succeeds after a run with DB_BACKUP_METHOD=physical.
func TestRolMdBackup(t *testing.T) {
	t.Parallel()
	s, _ := rolMdUpgraded(t)
	s.root(`SET GLOBAL log_bin_trust_function_creators = 1;
CREATE PROCEDURE app.item_count() SELECT COUNT(*) FROM app.items;
CREATE FUNCTION app.plus1(x INT) RETURNS INT DETERMINISTIC RETURN x + 1;
CREATE VIEW app.items_next AS SELECT app.plus1(id) AS next_id FROM app.items;
SET GLOBAL log_bin_trust_function_creators = 0;
CREATE TABLE app.schema_migrations (version VARCHAR(255) PRIMARY KEY); INSERT INTO app.schema_migrations VALUES ('0001')`)

	t.Run("logical", func(t *testing.T) {
		dir, env := rolMdBackupProject(t, s, "logical", "BACKUP_STORES=mariadb:mariadb-dump")
		rolMdBackupAndTest(t, dir, env)
	})
	t.Run("physical", func(t *testing.T) {
		e2eutil.RequireTool(t, "mariadb-backup")
		dir, env := rolMdBackupProject(t, s, "physical", "BACKUP_STORES=mariadb:mariadb-backup", "MARIADB_DATADIR="+s.datadir, "BACKUP_KIND=full")
		out, err := rolMdRunBackup(t, dir, env, "backup.sh")
		// mariadb-backup's privilege check fails and prints the account's grants.
		if err == nil || !strings.Contains(out, "mariadb-backup --backup failed: ") || !strings.Contains(out, "Current privileges") {
			t.Errorf("mariadb-backup with the logical set: %v, want its privilege check to fail:\n%s", err, out)
		}
		log := s.mustRoles("DB_BACKUP_METHOD=physical")
		if !strings.Contains(log, "roles: app_backup: granted BINLOG MONITOR, PROCESS, RELOAD ON *.*\n") {
			t.Errorf("DB_BACKUP_METHOD=physical:\n%s", log)
		}
		rolMdBackupAndTest(t, dir, env)
		log = s.mustRoles()
		if !strings.Contains(log, "roles: app_backup: revoked RELOAD, PROCESS, BINLOG MONITOR ON *.*\n") {
			t.Errorf("back to logical:\n%s", log)
		}
	})
}

// rolMdEnvValue is the last value of name in env.
func rolMdEnvValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}
