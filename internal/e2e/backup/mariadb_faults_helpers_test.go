package backup

import (
	"bufio"
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

// bmfTally counts the fault cases tried and caught across the MariaDB fault tests.
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

func bmfRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
