package tuning

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// tunDB is a database server of the test's own, reachable on a Unix socket.
type tunDB struct {
	engine string
	srv    *tunServer
	sock   string // PostgreSQL: the socket folder; MariaDB: the socket file
	port   int
	// errorLog is MariaDB's error log (it writes there, not to its output).
	errorLog string
}

func (d *tunDB) errorTail() string {
	if d.errorLog == "" {
		return ""
	}
	return (&tunServer{log: d.errorLog}).tail()
}

// tunStartPostgres makes a data folder and starts PostgreSQL 15 with args (the generated
// command without its program name) inside the cgroup of procs.
func tunStartPostgres(t testing.TB, procs string, args []string) *tunDB {
	t.Helper()
	e2eutil.RequireTool(t, filepath.Join(tunPgBin, "initdb"))
	base := tunDir(t, "postgres")
	data := filepath.Join(base, "data")
	initdb := exec.Command("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--",
		filepath.Join(tunPgBin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := e2eutil.FreePort(t)
	argv := append([]string{filepath.Join(tunPgBin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", base,
		"-c", "listen_addresses="}, args...)
	db := &tunDB{engine: "postgres", srv: tunStart(t, "postgres", procs, filepath.Join(base, "server.log"), argv), sock: base, port: port}
	db.wait(t, "SELECT 1")
	return db
}

// tunStartMariadb makes a data folder and starts MariaDB with args (the generated command
// without its program name) inside the cgroup of procs.
func tunStartMariadb(t testing.TB, procs string, args []string) *tunDB {
	t.Helper()
	e2eutil.RequireTool(t, "mariadb-install-db")
	e2eutil.RequireTool(t, "mariadb")
	base := tunDir(t, "mysql")
	data := filepath.Join(base, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=mysql",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--tmpdir="+e2eutil.MariadbTmpDir(t, base))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	sock := filepath.Join(base, "s.sock")
	argv := append([]string{"/usr/sbin/mariadbd", "--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--skip-networking", "--log-error=" + filepath.Join(base, "error.log")}, args...)
	db := &tunDB{engine: "mariadb", srv: tunStart(t, "mysql", procs, filepath.Join(base, "server.log"), argv), sock: sock}
	db.errorLog = filepath.Join(base, "error.log")
	db.wait(t, "SELECT 1")
	return db
}

// query runs sql and returns its output (one value per line, tab-separated columns).
func (d *tunDB) query(sql string) (string, error) {
	var cmd *exec.Cmd
	if d.engine == "postgres" {
		cmd = exec.Command("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", d.sock, "-p", strconv.Itoa(d.port), "-U", "postgres", "-d", "postgres", "-c", sql)
	} else {
		cmd = exec.Command("mariadb", "--no-defaults", "-S", d.sock, "-u", "root", "-N", "-B", "-e", sql)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// wait polls sql until the server answers, bounding a hang (a server that exits fails at once).
func (d *tunDB) wait(t testing.TB, sql string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	var err error
	for time.Now().Before(deadline) {
		if _, err = d.query(sql); err == nil {
			return
		}
		if d.srv.exited() {
			t.Fatalf("%s exited before it answered: %s\n%s%s", d.engine, d.srv.cmd.ProcessState, d.srv.tail(), d.errorTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer in 5 minutes: %v\n%s%s", d.engine, err, d.srv.tail(), d.errorTail())
}
