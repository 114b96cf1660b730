package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The MariaDB backup scripts under attack (webapp 1.3.1): a data set with the awkward parts
// (table, column and routine grants, roles with default roles, non-ASCII identifiers and
// data, emoji, BLOBs, AUTO_INCREMENT, a sequence, triggers, a view calling a function,
// procedures, events) must come back identical, backed up by an account with exactly the
// documented privileges; and every injected fault must fail loudly: non-zero exit, an error
// naming the cause, the failure recorded (var/log/ops/backup-results.log and
// backup_result_mariadb.prom), the success metric byte-identical, and the next run healthy.

// bmfDocPrivs are the privileges the header of ops/backup/mariadb-dump.sh documents for the
// backup account (on *.*, plus INSERT, CREATE, DELETE on the database).
const bmfDocPrivs = "SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, EXECUTE, RELOAD, PROCESS"

// bmfTally counts the fault cases tried and caught across the tests of this file.
var bmfTally struct {
	sync.Mutex
	tried, caught int
	rows          []string
}

func bmfRecord(t *testing.T, name string, caught bool) {
	t.Helper()
	bmfTally.Lock()
	defer bmfTally.Unlock()
	bmfTally.tried++
	if caught {
		bmfTally.caught++
	}
	bmfTally.rows = append(bmfTally.rows, fmt.Sprintf("%-55s %v", name, caught))
	t.Logf("fault matrix: %d cases tried, %d caught (%s: %v)", bmfTally.tried, bmfTally.caught, name, caught)
}

// bmfQ replaces ~ by a backquote, so that SQL with quoted names reads in a Go raw string.
func bmfQ(s string) string { return strings.ReplaceAll(s, "~", "`") }

// bmfAwkwardSQL builds the data set in database db; app is the account that is DEFINER of the
// view and is granted the roles.
func bmfAwkwardSQL(db, app, role, role2 string) string {
	return bmfQ(fmt.Sprintf(`
CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(100) NOT NULL, amount DECIMAL(10,2), note TEXT)
  DEFAULT CHARSET=utf8mb4;
INSERT INTO orders (customer, amount, note) SELECT CONCAT('cust ', seq), seq / 3,
  CASE seq %% 4 WHEN 0 THEN 'emoji 🐬🎉 ✓' WHEN 1 THEN 'it''s),(x \\ back' WHEN 2 THEN 'ünï\ncödé\ttab' ELSE NULL END
  FROM seq_1_to_3000;
DELETE FROM orders WHERE id > 2990;
CREATE TABLE ~ünï_表~ (~clé~ INT PRIMARY KEY, ~名前~ VARCHAR(50), secret VARCHAR(50)) DEFAULT CHARSET=utf8mb4;
INSERT INTO ~ünï_表~ SELECT seq, CONCAT('名前 ', seq, ' 🚀'), 'x' FROM seq_1_to_500;
CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB);
INSERT INTO blobs SELECT seq, UNHEX(REPEAT(SHA2(seq, 256), 100)) FROM seq_1_to_40;
CREATE SEQUENCE order_seq START WITH 100 INCREMENT BY 5;
SELECT NEXTVAL(order_seq), NEXTVAL(order_seq);
CREATE FUNCTION tax(x DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN x * 0.2;
CREATE DEFINER=~%[1]s~@~%%~ SQL SECURITY DEFINER VIEW order_tax AS SELECT id, tax(amount) AS tax FROM orders;
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.customer = TRIM(NEW.customer);
CREATE PROCEDURE order_count() SELECT COUNT(*) FROM orders;
CREATE EVENT purge_nothing ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM orders WHERE id < 0;
GRANT SELECT ON ~%[4]s~.orders TO %[2]s;
GRANT SELECT (~clé~, ~名前~) ON ~%[4]s~.~ünï_表~ TO %[2]s;
GRANT EXECUTE ON FUNCTION ~%[4]s~.tax TO %[3]s;
GRANT EXECUTE ON PROCEDURE ~%[4]s~.order_count TO ~%[1]s~@~%%~;
GRANT SELECT, SHOW VIEW ON ~%[4]s~.order_tax TO ~%[1]s~@~%%~;
GRANT %[3]s TO %[2]s;
GRANT %[2]s TO ~%[1]s~@~%%~;
SET DEFAULT ROLE %[2]s FOR ~%[1]s~@~%%~;
`, app, role, role2, db))
}

// bmfSnapshot is what the tests compare between the backed-up and the restored database:
// table checksums, AUTO_INCREMENT and sequence state, the definitions of views, routines,
// triggers and events (with the database name replaced), and the grants of the accounts.
func bmfSnapshot(t *testing.T, c bmyConn, db string, accounts []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, sum := range bmyChecksums(t, c, db) {
		out["checksum "+name] = sum
	}
	norm := func(s string) string { return strings.ReplaceAll(s, db, "DB") }
	q := func(sql string) string { return c.exec(t, sql, db) }
	out["auto_increment"] = q("SELECT GROUP_CONCAT(table_name, '=', auto_increment ORDER BY table_name) FROM information_schema.tables WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL")
	out["sequence"] = q("SELECT next_not_cached_value, increment FROM order_seq")
	for _, o := range []string{"VIEW order_tax", "FUNCTION tax", "PROCEDURE order_count", "TRIGGER orders_bi", "EVENT purge_nothing"} {
		s := q("SHOW CREATE " + o)
		// SHOW CREATE TRIGGER ends with the creation time.
		if f := strings.Split(s, "\t"); strings.HasPrefix(o, "TRIGGER") {
			s = strings.Join(f[:len(f)-1], "\t")
		}
		out["create "+o] = norm(s)
	}
	// The column list of a column grant comes in no fixed order.
	cols := regexp.MustCompile(`\(([^()]*)\) ON `)
	for _, a := range accounts {
		lines := strings.Split(c.exec(t, "SHOW GRANTS FOR "+a), "\n")
		for i, l := range lines {
			lines[i] = cols.ReplaceAllStringFunc(l, func(m string) string {
				list := strings.Split(strings.TrimSuffix(strings.TrimPrefix(m, "("), ") ON "), ", ")
				sort.Strings(list)
				return "(" + strings.Join(list, ", ") + ") ON "
			})
		}
		sort.Strings(lines)
		out["grants "+a] = norm(strings.Join(lines, "\n"))
	}
	return out
}

func bmfDiff(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if want[k] != got[k] {
			t.Errorf("%s: %s differs:\nrestored %q\nbackup   %q", what, k, got[k], want[k])
		}
	}
}

// bmfFailed asserts what every failed job must leave: a non-zero exit, stderr naming the
// cause (each of want), a failure line in backup-results.log (restore-test.log for a restore
// test) and a failure metric, and the success metric file unchanged.
func (p *bmyProject) bmfFailed(t *testing.T, name, action string, err error, stderr string, success string, before []byte, want ...string) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		ok = false
		t.Errorf(name+": "+format, args...)
	}
	if err == nil {
		fail("exit 0, want a failure\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			fail("stderr does not name the cause %q:\n%s", w, stderr)
		}
	}
	logFile, metric := "log/backup-results.log", "textfile/backup_result_mariadb.prom"
	sample := `backup_last_result{store="mariadb"}`
	if action == "restore-test" {
		logFile, metric, sample = "log/restore-test.log", "textfile/restore_test_result_mariadb.prom", `restore_test_last_result{store="mariadb"}`
	}
	if b, rerr := os.ReadFile(p.path(logFile)); rerr != nil {
		fail("no %s: %v", logFile, rerr)
	} else if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); !strings.Contains(lines[len(lines)-1], "result=failed") {
		fail("last line of %s: %s", logFile, lines[len(lines)-1])
	} else if len(want) > 0 && !strings.Contains(lines[len(lines)-1], want[len(want)-1]) {
		fail("the failure recorded in %s does not name the cause %q: %s", logFile, want[len(want)-1], lines[len(lines)-1])
	}
	if v := bmyMetric(t, p.path(metric), sample); v != 0 {
		fail("%s = %v, want 0", sample, v)
	}
	if after, _ := os.ReadFile(p.path(success)); string(after) != string(before) {
		fail("the success metric %s changed:\n%s\nwas:\n%s", success, after, before)
	}
	return ok
}

// bmfKill starts a script in its own process group, waits until ready() holds, then kills the
// whole group with SIGKILL (what systemd or a host crash does to the job) and returns its stderr.
func (p *bmyProject) bmfKill(t *testing.T, extra []string, ready func() bool, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(p.dir, "ops/backup", script), args...)
	cmd.Dir = p.dir
	cmd.Env = append(append([]string{}, p.env...), extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var se strings.Builder
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Generous: on a loaded machine a backup takes minutes to reach its later points.
	deadline := time.Now().Add(5 * time.Minute)
	for !ready() {
		select {
		case err := <-done:
			t.Fatalf("%s ended (%v) before the kill point:\n%s", script, err, se.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Fatalf("%s never reached the kill point:\n%s", script, se.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	err := <-done
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Errorf("%s was not killed: %v", script, err)
	}
	return se.String()
}

// bmfResticWrapper writes a restic into dir that runs the real one and, when BMF_STOP_AT names
// its subcommand, freezes it (SIGSTOP) once it holds its repository lock and touches
// BMF_MARKER: a kill then leaves a real stale lock behind.
func bmfResticWrapper(t *testing.T, dir string) {
	t.Helper()
	real, err := exec.LookPath("restic")
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/usr/bin/env bash
stop=
for a in "$@"; do [[ -n ${BMF_STOP_AT:-} && $a == "$BMF_STOP_AT" ]] && stop=1; done
[[ -n $stop ]] || exec %[1]q "$@"
%[1]q "$@" &
pid=$!
for ((i = 0; i < 3000; i++)); do
	if compgen -G "$RESTIC_REPOSITORY/locks/*" >/dev/null; then kill -STOP "$pid"; touch "$BMF_MARKER"; break; fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.01
done
wait "$pid"
`, real)
	if err := os.WriteFile(filepath.Join(dir, "restic"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bmfLocker holds LOCK TABLES ... WRITE in a session of its own, so that the dump waits on
// that table: a fixed point at which to kill the dump's connection or the script.
type bmfLocker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func bmfLock(t *testing.T, db, table string) *bmfLocker {
	t.Helper()
	cmd := exec.Command("mariadb", append(append([]string{}, bmySharedRoot.args...), "--batch", "--unbuffered", db)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(stdin, "LOCK TABLES `%s` WRITE; SELECT 'locked';\n", table)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "locked") {
		t.Fatalf("LOCK TABLES %s: %q %v", table, line, err)
	}
	l := &bmfLocker{cmd: cmd, stdin: stdin}
	t.Cleanup(l.release)
	return l
}

func (l *bmfLocker) release() {
	if l.stdin == nil {
		return
	}
	fmt.Fprintln(l.stdin, "UNLOCK TABLES;")
	l.stdin.Close()
	l.stdin = nil
	_ = l.cmd.Wait()
}

// bmfWaiting returns the id of a connection of user that waits for a table lock, or "".
func bmfWaiting(t *testing.T, user string) string {
	t.Helper()
	return bmySharedRoot.exec(t, fmt.Sprintf(
		"SELECT id FROM information_schema.processlist WHERE user = '%s' AND state LIKE 'Waiting for table%%' LIMIT 1", user))
}

// TestBackupMariadbFaultsDump: the logical method (mariadb-dump.sh) on the local MariaDB.
func TestBackupMariadbFaultsDump(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "restic", "jq", "perl"} {
		requireTool(t, tool)
	}
	db := newScratchDB(t, "mariadb")
	root := bmySharedRoot
	suffix := strings.TrimPrefix(db.Name, "opsready_t_")
	bk, nx, app, role, role2, adm := "bmf_bk_"+suffix, "bmf_nx_"+suffix, "bmf_app_"+suffix, "bmf_r_"+suffix, "bmf_r2_"+suffix, "bmf_adm_"+suffix
	t.Cleanup(func() {
		for _, s := range []string{"DROP USER IF EXISTS '" + bk + "'@'%'", "DROP USER IF EXISTS '" + nx + "'@'%'", "DROP USER IF EXISTS '" + adm + "'@'%'",
			"DROP USER IF EXISTS '" + app + "'@'%'", "DROP ROLE IF EXISTS " + role, "DROP ROLE IF EXISTS " + role2} {
			if out, err := exec.Command("mariadb", append(append([]string{}, root.args...), "-e", s)...).CombinedOutput(); err != nil {
				t.Errorf("%s: %v: %s", s, err, out)
			}
		}
	})
	// bk has exactly the documented privileges; nx the same without EXECUTE.
	root.exec(t, fmt.Sprintf(bmfQ(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'bk-%[5]s';
		GRANT %[6]s ON *.* TO '%[1]s'@'%%'; GRANT INSERT, CREATE, DELETE ON ~%[4]s~.* TO '%[1]s'@'%%';
		CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'bk-%[5]s';
		GRANT %[7]s ON *.* TO '%[2]s'@'%%'; GRANT INSERT, CREATE, DELETE ON ~%[4]s~.* TO '%[2]s'@'%%';
		CREATE USER '%[3]s'@'%%' IDENTIFIED BY 'app-%[5]s';
		CREATE USER '%[10]s'@'%%' IDENTIFIED BY 'adm-%[5]s'; GRANT ALL PRIVILEGES ON *.* TO '%[10]s'@'%%' WITH GRANT OPTION;
		CREATE ROLE %[8]s; CREATE ROLE %[9]s`),
		bk, nx, app, db.Name, suffix, bmfDocPrivs, strings.Replace(bmfDocPrivs, " EXECUTE,", "", 1), role, role2, adm))
	root.exec(t, bmfAwkwardSQL(db.Name, app, role, role2), db.Name)
	accounts := []string{"'" + app + "'@'%'", role, role2}
	want := bmfSnapshot(t, root, db.Name, accounts)

	p := bmyNewProject(t, "logical", "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+db.Name,
		"MARIADB_USER="+bk, "BACKUP_STORES=mariadb:mariadb-dump")
	pw := bmySecret(t, p.tmp, "bk.pw", "bk-"+suffix)
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+pw)
	admEnv := []string{"MARIADB_USER=" + adm, "MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "adm.pw", "adm-"+suffix)}
	success := "textfile/backup_mariadb_logical.prom"

	// The documented privileges suffice (defect 7), and the backup restores with its grants
	// on a table, columns and routines (defect 1: the grants were loaded before the tables).
	start := time.Now()
	p.must(t, nil, "backup.sh")
	m := p.manifest(t)
	t.Logf("backup with the documented privileges: %s, %d rows", time.Since(start).Round(time.Millisecond), m.RowsTotal)
	if m.RowsTotal != 2990+500+40+1 {
		t.Errorf("manifest rows_total %d, want %d (orders, ünï_表, blobs, canary)", m.RowsTotal, 2990+500+40+1)
	}
	out, took := p.must(t, []string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
	t.Logf("restore-test.sh: %s: %s", took.Round(time.Millisecond), p.lastRestoreTest(t))
	if !strings.Contains(p.lastRestoreTest(t), "result=passed") {
		t.Errorf("restore test: %s\n%s", p.lastRestoreTest(t), out)
	}
	before, err := os.ReadFile(p.path(success))
	if err != nil {
		t.Fatal(err)
	}
	passed, err := os.ReadFile(p.path("textfile/restore_test_mariadb.prom"))
	if err != nil {
		t.Fatal(err)
	}

	// The disaster path with --users into a new database after the accounts are gone: the
	// data, definitions and grants come back identical.
	root.exec(t, fmt.Sprintf("DROP USER '%s'@'%%'; DROP ROLE %s; DROP ROLE %s", app, role, role2))
	target := newScratchDB(t, "mariadb")
	// The backup holds every account of the shared server, also those of tests running beside
	// this one, whose roles exist already and may not be handed out by this administrator: a
	// refused grant of those is reported (non-zero exit) but must not be one of this test's.
	// Accounts of other tests that the backup holds and that went away meanwhile come back
	// with --users: they are dropped again afterwards (ours are dropped at cleanup).
	existed := map[string]bool{}
	for _, a := range strings.Split(root.exec(t, "SELECT CONCAT(user, '@', host) FROM mysql.user"), "\n") {
		existed[a] = true
	}
	defer func() {
		for _, a := range strings.Split(root.exec(t, "SELECT CONCAT(user, '@', host) FROM mysql.user"), "\n") {
			if user, host, _ := strings.Cut(a, "@"); !existed[a] && !strings.HasSuffix(user, suffix) {
				if host == "" {
					root.exec(t, fmt.Sprintf("DROP ROLE IF EXISTS `%s`", user))
				} else {
					root.exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, host))
				}
			}
		}
	}()
	if stderr, _, _, err := p.run(admEnv, "restore.sh", "mariadb", "--target-db", target.Name, "--users"); err != nil {
		if !strings.Contains(stderr, "the data is restored, but") || strings.Contains(stderr, suffix+"`") {
			t.Fatalf("restore --users: %v\n%s", err, stderr)
		}
		t.Logf("restore --users reported grants of other tests' accounts: %s", stderr)
	}
	got := bmfSnapshot(t, root, target.Name, accounts)
	delete(got, "checksum opsready_backup_canary")
	// The restored grants name the database of the backup (db), not the target.
	for _, a := range accounts {
		got["grants "+a] = strings.ReplaceAll(got["grants "+a], db.Name, "DB")
	}
	bmfDiff(t, "restore --users", want, got)

	// Without EXECUTE, a view calling a function cannot be dumped: the backup fails and says so.
	nxEnv := []string{"MARIADB_USER=" + nx}
	stderr, _, _, err := p.run(nxEnv, "backup.sh")
	bmfRecord(t, "dump: backup account without EXECUTE", p.bmfFailed(t, "without EXECUTE", "backup", err, stderr, success, before,
		"execute command denied", "needs EXECUTE"))

	// Configuration faults.
	port := freePort(t)
	for _, c := range []struct {
		name  string
		env   []string
		wants []string
	}{
		{"dump: missing password file", []string{"MARIADB_PASSWORD_FILE=" + p.path("nope.pw")}, []string{"MARIADB_PASSWORD_FILE", "missing"}},
		{"dump: wrong password", []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "wrong.pw", "wrong")}, []string{"cannot connect", "Access denied"}},
		{"dump: unreachable server", []string{fmt.Sprintf("MARIADB_PORT=%d", port)}, []string{fmt.Sprintf("cannot connect to MariaDB at 127.0.0.1:%d", port)}},
		{"dump: missing database", []string{"MARIADB_DATABASE=" + db.Name + "_gone"}, []string{"database " + db.Name + "_gone does not exist"}},
	} {
		stderr, _, _, err := p.run(c.env, "backup.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "backup", err, stderr, success, before, c.wants...))
	}

	// The dump's connection killed by the server mid-dump (the dump waits on a locked table).
	lock := bmfLock(t, db.Name, "orders")
	killed := make(chan string, 1)
	go func() {
		defer close(killed)
		sql := fmt.Sprintf("SELECT id FROM information_schema.processlist WHERE user = '%s' AND state LIKE 'Waiting for table%%' LIMIT 1", bk)
		for i := 0; i < 3000; i++ {
			id, _ := exec.Command("mariadb", append(append([]string{}, root.args...), "-N", "-e", sql)...).Output()
			if s := strings.TrimSpace(string(id)); s != "" {
				_ = exec.Command("mariadb", append(append([]string{}, root.args...), "-e", "KILL "+s)...).Run()
				killed <- s
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stderr, _, _, err = p.run(nil, "backup.sh")
	lock.release()
	if <-killed == "" {
		t.Error("the dump's connection was never seen waiting, so never killed")
	}
	bmfRecord(t, "dump: connection killed mid-dump", p.bmfFailed(t, "connection killed", "backup", err, stderr, success, before,
		"mariadb-dump of "+db.Name+" failed"))

	// SIGKILL of the whole job at three points: waiting in the dump, in restic backup holding
	// its repository lock, in the off-site copy holding its locks. Each leaves no success
	// behind, and the next run is healthy despite the stale restic locks.
	bin := filepath.Join(p.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bmfResticWrapper(t, bin)
	marker := p.path("stopped")
	wrapped := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "BMF_MARKER=" + marker}
	for _, point := range []string{"dump", "backup", "copy"} {
		name := "dump: SIGKILL during " + point
		os.Remove(marker)
		var ready func() bool
		if point == "dump" {
			lock = bmfLock(t, db.Name, "orders")
			ready = func() bool { return bmfWaiting(t, bk) != "" }
		} else {
			ready = func() bool { _, err := os.Stat(marker); return err == nil }
		}
		p.bmfKill(t, append(wrapped, "BMF_STOP_AT="+point), ready, "backup.sh")
		if point == "dump" {
			lock.release()
		}
		after, _ := os.ReadFile(p.path(success))
		ok := string(after) == string(before)
		if !ok {
			t.Errorf("%s: the success metric changed", name)
		}
		// The next run is healthy and takes a new success.
		if _, _, _, err := p.run(wrapped, "backup.sh"); err != nil {
			ok = false
			stderr, _, _, _ := p.run(nil, "backup.sh")
			t.Errorf("%s: the next backup failed:\n%s", name, stderr)
		}
		bmfRecord(t, name, ok)
		before, _ = os.ReadFile(p.path(success))
	}

	// A full staging disk: a 128 KiB tmpfs (the dump is about 400 KiB).
	if os.Geteuid() == 0 {
		stage := p.path("smallstage")
		if err := os.MkdirAll(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", stage).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", stage).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", stage, err, out)
			}
		})
		stderr, _, _, err = p.run([]string{"BACKUP_STAGING_DIR=" + stage}, "backup.sh")
		bmfRecord(t, "dump: staging disk full", p.bmfFailed(t, "staging full", "backup", err, stderr, success, before,
			"No space left on device"))
	} else if inCI() {
		t.Error("the full-disk case needs root (mount -t tmpfs)")
	}
	p.must(t, nil, "backup.sh")
	before, _ = os.ReadFile(p.path(success))

	// Damaged backups in the repository the restore test reads: the newest snapshot replaced
	// by one whose dump is corrupted, truncated, or whose manifest is gone.
	for _, c := range []struct {
		name, want string
		damage     func(dir string)
	}{
		{"dump: corrupted dump in the repository", "damaged", func(dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "dump.sql"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("XX"), 5000); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}},
		{"dump: truncated dump in the repository", "truncated", func(dir string) {
			fi, _ := os.Stat(filepath.Join(dir, "dump.sql"))
			if err := os.Truncate(filepath.Join(dir, "dump.sql"), fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"dump: deleted manifest", "no manifest", func(dir string) {
			if err := os.Remove(filepath.Join(dir, "manifest.json")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		p.bmfReplaceNewest(t, "backups/restic", c.damage)
		stderr, _, _, err := p.run([]string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "restore-test", err, stderr, "textfile/restore_test_mariadb.prom", passed,
			"restore test of mariadb FAILED", c.want))
	}
	// The next backup and restore test are healthy.
	p.must(t, nil, "backup.sh")
	p.must(t, []string{"RESTORE_TEST_FROM=primary"}, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") {
		t.Errorf("restore test after the damaged backups: %s", line)
	}
}

// bmfReplaceNewest restores the newest snapshot of repo, damages its files and stores them as
// a newer snapshot with the same host and tags, which restore tests then pick.
func (p *bmyProject) bmfReplaceNewest(t *testing.T, repo string, damage func(dir string)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	p.restic(t, repo, "restore", "latest", "--target", dir)
	var stage string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "manifest.json" {
			stage = filepath.Dir(path)
		}
		return nil
	})
	if stage == "" {
		t.Fatalf("no manifest.json in the newest snapshot of %s", repo)
	}
	damage(stage)
	var snaps []struct {
		Hostname string   `json:"hostname"`
		Tags     []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(p.restic(t, repo, "snapshots", "--json", "latest")), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("the newest snapshot of %s: %v %+v", repo, err, snaps)
	}
	args := []string{"backup", "--host", snaps[0].Hostname}
	for _, tag := range snaps[0].Tags {
		args = append(args, "--tag", tag)
	}
	time.Sleep(1100 * time.Millisecond) // a newer snapshot time than the one replaced
	p.restic(t, repo, append(args, stage)...)
}

// bmfBackupWrapper writes a mariadb-backup into dir that, for --backup, runs the real one and
// freezes it (SIGSTOP) once it has created its target directory, touches BMF_MARKER, and
// continues it (SIGCONT) when BMF_GO appears.
func bmfBackupWrapper(t *testing.T, dir string) {
	t.Helper()
	real, err := exec.LookPath("mariadb-backup")
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/usr/bin/env bash
target=
for a in "$@"; do [[ $a == --target-dir=* ]] && target=${a#--target-dir=}; done
[[ -n ${BMF_MARKER:-} && " $* " == *" --backup "* ]] || exec %[1]q "$@"
%[1]q "$@" &
pid=$!
for ((i = 0; i < 3000; i++)); do
	if [[ -d $target ]]; then kill -STOP "$pid"; touch "$BMF_MARKER"; break; fi
	sleep 0.01
done
for ((i = 0; i < 6000; i++)); do [[ -e ${BMF_GO:-/nonexistent} ]] && break; sleep 0.01; done
kill -CONT "$pid"
wait "$pid"
`, real)
	if err := os.WriteFile(filepath.Join(dir, "mariadb-backup"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bmfServe starts mariadbd on an existing data directory (after a crash: InnoDB recovers);
// stopped at cleanup. It returns the process, for a test that kills it.
func bmfServe(t *testing.T, s bmyServer) *os.Process {
	t.Helper()
	base := filepath.Dir(s.datadir)
	args := []string{"--no-defaults", "--datadir=" + s.datadir, "--socket=" + s.sock,
		fmt.Sprintf("--port=%d", freePort(t)), "--bind-address=127.0.0.1", "--log-error=" + filepath.Join(base, "mysqld2.log"),
		"--pid-file=" + filepath.Join(base, "mysqld2.pid"), "--innodb-buffer-pool-size=64M", "--skip-log-bin"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	cmd := exec.Command(mariadbd, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "shutdown").Run()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "ping").Run() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(base, "mysqld2.log"))
			t.Fatalf("the restarted mariadbd did not answer within 60s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd.Process
}

// bmfServerPid reads the pid of the private server from its pid file.
func bmfServerPid(t *testing.T, s bmyServer, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.datadir), name))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestBackupMariadbFaultsPhysical: the physical method (mariadb-backup.sh) on a private server.
func TestBackupMariadbFaultsPhysical(t *testing.T) {
	requireFaultMatrix(t)
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-admin", "mariadbd", "mariadb-install-db", "mariadb-backup", "restic", "jq"} {
		requireTool(t, tool)
	}
	srv := bmyStartServer(t)
	srv.conn.exec(t, `CREATE DATABASE app;
		CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON app.* TO 'app'@'%';
		CREATE USER 'backup'@'localhost' IDENTIFIED BY 'backup-pw';
		GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* TO 'backup'@'localhost';
		GRANT INSERT, CREATE, DELETE ON app.* TO 'backup'@'localhost';
		CREATE USER 'app2'@'%' IDENTIFIED BY 'x'; CREATE ROLE r1; CREATE ROLE r2`)
	srv.conn.exec(t, bmfAwkwardSQL("app", "app2", "r1", "r2"), "app")

	p := bmyNewProject(t, "physical",
		"MARIADB_SOCKET="+srv.sock, "MARIADB_USER=backup", "MARIADB_DATABASE=app", "MARIADB_DATADIR="+srv.datadir,
		"BACKUP_STORES=mariadb:mariadb-backup")
	p.env = append(p.env, "MARIADB_PASSWORD_FILE="+bmySecret(t, p.tmp, "backup.pw", "backup-pw"))
	kind := func(k string) []string { return []string{"BACKUP_KIND=" + k} }

	start := time.Now()
	p.must(t, kind("full"), "backup.sh")
	srv.conn.exec(t, "INSERT INTO orders (customer) SELECT CONCAT('i1 ', seq) FROM seq_1_to_50", "app")
	p.must(t, kind("incr"), "backup.sh")
	inc1 := p.manifest(t)
	srv.conn.exec(t, "INSERT INTO orders (customer) SELECT CONCAT('i2 ', seq) FROM seq_1_to_50", "app")
	p.must(t, kind("incr"), "backup.sh")
	t.Logf("full + 2 incremental backups: %s", time.Since(start).Round(time.Millisecond))
	success := "textfile/backup_mariadb_incr.prom"
	before, err := os.ReadFile(p.path(success))
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		env   []string
		wants []string
	}{
		{"physical: missing password file", []string{"MARIADB_PASSWORD_FILE=" + p.path("nope.pw")}, []string{"MARIADB_PASSWORD_FILE", "missing"}},
		{"physical: wrong password", []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "wrong.pw", "wrong")}, []string{"cannot connect", "Access denied"}},
		{"physical: unreachable server", []string{"MARIADB_SOCKET=" + p.path("no.sock")}, []string{"cannot connect to MariaDB at " + p.path("no.sock")}},
		{"physical: unreadable data directory", []string{"MARIADB_DATADIR=" + p.path("nodata")}, []string{"is not a readable directory"}},
	} {
		stderr, _, _, err := p.run(append(kind("incr"), c.env...), "backup.sh")
		bmfRecord(t, c.name, p.bmfFailed(t, c.name, "backup", err, stderr, success, before, c.wants...))
	}

	// SIGKILL of the job while mariadb-backup copies; the next run is healthy.
	bin := filepath.Join(p.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bmfBackupWrapper(t, bin)
	marker, goFile := p.path("stopped"), p.path("go")
	wrapped := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "BMF_MARKER=" + marker, "BMF_GO=" + goFile}
	p.bmfKill(t, append(kind("incr"), wrapped...), func() bool { _, err := os.Stat(marker); return err == nil }, "backup.sh")
	ok := true
	if after, _ := os.ReadFile(p.path(success)); string(after) != string(before) {
		ok = false
		t.Error("SIGKILL during mariadb-backup: the success metric changed")
	}
	if stderr, _, _, err := p.run(kind("incr"), "backup.sh"); err != nil {
		ok = false
		t.Errorf("the backup after a SIGKILL failed:\n%s", stderr)
	}
	bmfRecord(t, "physical: SIGKILL during mariadb-backup", ok)
	before, _ = os.ReadFile(p.path(success))

	// A full staging disk.
	if os.Geteuid() == 0 {
		stage := p.path("smallstage")
		if err := os.MkdirAll(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", stage).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", stage).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", stage, err, out)
			}
		})
		stderr, _, _, err := p.run(append(kind("full"), "BACKUP_STAGING_DIR="+stage), "backup.sh")
		bmfRecord(t, "physical: staging disk full", p.bmfFailed(t, "physical staging full", "backup", err, stderr, "textfile/backup_mariadb_full.prom",
			bmfRead(p.path("textfile/backup_mariadb_full.prom")), "No space left on device"))
	}

	// A broken chain: the first incremental backup forgotten in both repositories. The
	// restore test fails and names the missing link; the next backup starts a new chain
	// instead of building on the broken one, and the restore test passes again.
	passed := bmfRead(p.path("textfile/restore_test_mariadb.prom"))
	for _, repo := range []string{"backups/restic", "offsite"} {
		var id string
		for _, line := range strings.Split(p.restic(t, repo, "snapshots", "--tag", "label="+inc1.Label, "--json"), "\n") {
			if m := regexp.MustCompile(`"id":"([0-9a-f]{64})"`).FindStringSubmatch(line); m != nil {
				id = m[1]
			}
		}
		if id == "" {
			t.Fatalf("no snapshot labelled %s in %s", inc1.Label, repo)
		}
		p.restic(t, repo, "forget", id)
	}
	stderr, _, _, err := p.run(nil, "restore-test.sh")
	bmfRecord(t, "physical: broken incremental chain", p.bmfFailed(t, "broken chain", "restore-test", err, stderr,
		"textfile/restore_test_mariadb.prom", passed, "restore test of mariadb FAILED", "its parent "+inc1.Label))
	out, _ := p.must(t, kind("incr"), "backup.sh")
	if m := p.manifest(t); m.Kind != "full" || !strings.Contains(out, "chain "+inc1.Chain+" is broken") {
		t.Errorf("the backup after a broken chain is a %s one:\n%s", m.Kind, out)
	}

	// The server killed (SIGKILL) while mariadb-backup copies: the backup fails; after the
	// server's crash recovery, the next backup and the restore test pass.
	os.Remove(marker)
	os.Remove(goFile)
	pid := bmfServerPid(t, srv, "mysqld.pid")
	before = bmfRead(p.path(success))
	done := make(chan struct{})
	var stderrKill string
	var errKill error
	go func() {
		defer close(done)
		stderrKill, _, _, errKill = p.run(append(kind("incr"), wrapped...), "backup.sh")
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadb-backup never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	bmfRecord(t, "physical: server killed mid-backup", p.bmfFailed(t, "server killed", "backup", errKill, stderrKill, success, before,
		"mariadb-backup --backup failed"))
	bmfServe(t, srv)
	p.must(t, kind("incr"), "backup.sh")
	p.must(t, nil, "restore-test.sh")
	if line := p.lastRestoreTest(t); !strings.Contains(line, "result=passed") {
		t.Errorf("restore test after the faults: %s", line)
	}
}

func bmfRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
