package roles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// rolMdWait bounds every wait: for a server to start or stop, for a script to end.
const rolMdWait = 2 * time.Minute

// The passwords of the 1.x accounts, awkward on purpose: quotes, a backslash and non-ASCII
// must survive the option file and the SQL.
const (
	rolMdRootPW = `r0ot'"\pw-ü`
	rolMdAppPW  = "app-1x-pw"
)

// rolMdAccounts are the accounts roles.sh manages, in its order.
var rolMdAccounts = []string{"app_rw", "app_migrate", "app_monitor", "app_backup"}

// rolMdServer is a private mariadbd (temporary data directory, free port, binary log on as
// on a primary with a replica) set up as webapp 1.x's image left it, and the secret files
// roles.sh reads.
type rolMdServer struct {
	t       *testing.T
	dir     string // short: the socket lives here
	datadir string
	sock    string
	port    int
	secrets string            // folder of the password files
	pw      map[string]string // account -> its password file's content
}

// rolMdScript is the script under test, as the blueprint ships it.
func rolMdScript(t *testing.T) string {
	return e2eutil.RepoPath(t, "blueprints/webapp/1.6.0/components/db-mariadb/files/ops/db/roles.sh")
}

// rolMdStart starts the server and bootstraps it as the 1.x image did: root with a password
// (also root@'%'), database app, 'app'@'%' with ALL on app.*; nothing of it logged.
func rolMdStart(t *testing.T) *rolMdServer {
	t.Helper()
	for _, tool := range []string{"mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin", "bash", "sha1sum"} {
		e2eutil.RequireTool(t, tool)
	}
	dir, err := os.MkdirTemp("", "rolmd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &rolMdServer{t: t, dir: dir, datadir: filepath.Join(dir, "data"), sock: filepath.Join(dir, "s"),
		port: e2eutil.FreePort(t), secrets: filepath.Join(dir, "secrets"), pw: map[string]string{}}
	// --skip-name-resolve: no lookup of the host name, which can fail for a moment on a busy
	// host (one run saw mariadb-install-db exit 1 here).
	install := []string{"--no-defaults", "--datadir=" + s.datadir, "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
		"--tmpdir=" + e2eutil.MariadbTmpDir(t, dir)}
	server := []string{"--no-defaults", "--datadir=" + s.datadir, "--socket=" + s.sock, "--port=" + strconv.Itoa(s.port),
		"--bind-address=127.0.0.1", "--log-error=" + filepath.Join(dir, "mysqld.log"), "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--innodb-buffer-pool-size=64M", "--log-bin=" + filepath.Join(s.datadir, "bin"), "--server-id=1"}
	if os.Geteuid() == 0 {
		install = append(install, "--user=root")
		server = append(server, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	mariadbd, _ := exec.LookPath("mariadbd")
	cmd := exec.Command(mariadbd, server...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(rolMdWait):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mysqld.log:\n%s", e2eutil.ReadFile(t, filepath.Join(dir, "mysqld.log")))
		}
	})
	deadline := time.Now().Add(rolMdWait)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+s.sock, "-uroot", "--connect-timeout=5", "ping").Run() != nil {
		select {
		case err := <-done:
			t.Fatalf("mariadbd exited: %v\n%s", err, e2eutil.ReadFile(t, filepath.Join(dir, "mysqld.log")))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbd does not answer after %s", rolMdWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	boot := fmt.Sprintf(`SET SESSION sql_log_bin = 0;
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
ALTER USER root@localhost IDENTIFIED BY %[1]s;
CREATE USER root@'%%' IDENTIFIED BY %[1]s;
GRANT ALL ON *.* TO root@'%%' WITH GRANT OPTION;
CREATE DATABASE app;
CREATE USER app@'%%' IDENTIFIED BY %[2]s;
GRANT ALL ON app.* TO app@'%%';`, rolMdLit(rolMdRootPW), rolMdLit(rolMdAppPW))
	if out, err := exec.Command("mariadb", "--no-defaults", "-uroot", "--socket="+s.sock, "--default-character-set=utf8mb4", "-e", boot).CombinedOutput(); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	if err := os.Mkdir(s.secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	s.setSecret("db_root_password", rolMdRootPW)
	for _, a := range rolMdAccounts {
		s.setSecret(rolMdSecretName(a), a+"-pw-1")
	}
	// The application's password: quotes, backslash, non-ASCII.
	s.setSecret("db_rw_password", `it's a "rw" \ pässwörd 🐬`)
	return s
}

// rolMdLit quotes s as a MariaDB string literal (default sql_mode).
func rolMdLit(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// rolMdSecretName is the secret file of an account.
func rolMdSecretName(account string) string {
	return map[string]string{"app_rw": "db_rw_password", "app_migrate": "db_migrate_password",
		"app_monitor": "db_monitor_password", "app_backup": "db_backup_password", "root": "db_root_password"}[account]
}

// setSecret writes a secret file as `opsready new` does (one line, newline-terminated).
func (s *rolMdServer) setSecret(name, value string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.secrets, name), []byte(value+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	for a := range map[string]bool{"app_rw": true, "app_migrate": true, "app_monitor": true, "app_backup": true, "root": true} {
		if rolMdSecretName(a) == name {
			s.pw[a] = value
		}
	}
}

// secretPath is the path of a secret file.
func (s *rolMdServer) secretPath(name string) string { return filepath.Join(s.secrets, name) }

// env is the environment roles.sh runs with against this server, then extra.
func (s *rolMdServer) env(extra ...string) []string {
	env := append(os.Environ(), "DB_HOST=127.0.0.1", "DB_PORT="+strconv.Itoa(s.port), "DB_WAIT_SECONDS=10",
		"DB_ADMIN_PASSWORD_FILE="+s.secretPath("db_root_password"),
		"DB_APP_PASSWORD_FILE="+s.secretPath("db_rw_password"),
		"DB_MIGRATE_PASSWORD_FILE="+s.secretPath("db_migrate_password"),
		"DB_MONITOR_PASSWORD_FILE="+s.secretPath("db_monitor_password"),
		"DB_BACKUP_PASSWORD_FILE="+s.secretPath("db_backup_password"))
	return append(env, extra...)
}

// roles runs roles.sh with the server's environment and extra; it returns stdout, stderr
// and the exit code.
func (s *rolMdServer) roles(extra ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rolMdWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, rolMdScript(s.t))
	cmd.Env = s.env(extra...)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		s.t.Fatalf("roles.sh: %v", err)
	}
	return stdout.String(), stderr.String(), 0
}

// mustRoles runs roles.sh, which must succeed without output on stdout; it returns stderr.
func (s *rolMdServer) mustRoles(extra ...string) string {
	s.t.Helper()
	stdout, stderr, code := s.roles(extra...)
	if code != 0 || stdout != "" {
		s.t.Fatalf("roles.sh exited %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	return stderr
}

// as runs q as user with password over TCP (as the compose services connect) in database
// app; it returns the rows, tab-separated, or the client's error.
func (s *rolMdServer) as(user, password, q string) (string, error) {
	return s.asIn("app", user, password, q)
}

// asIn is as in database db ("" for none).
func (s *rolMdServer) asIn(db, user, password, q string) (string, error) {
	args := []string{"--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", strconv.Itoa(s.port),
		"-u", user, "--connect-timeout=5", "--default-character-set=utf8mb4", "--batch", "--skip-column-names", "--raw"}
	if db != "" {
		args = append(args, db)
	}
	cmd := exec.Command("mariadb", args...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+password)
	cmd.Stdin = strings.NewReader(q)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w: %s", user, rolMdShort(q), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// root runs q as root; the test stops when it fails.
func (s *rolMdServer) root(q string) string {
	s.t.Helper()
	out, err := s.as("root", rolMdRootPW, q)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// user runs q as one of the managed accounts with its current password.
func (s *rolMdServer) user(account, q string) (string, error) { return s.as(account, s.pw[account], q) }

// mustUser runs q as account; the test fails (and goes on) when it fails.
func (s *rolMdServer) mustUser(account, q string) string {
	s.t.Helper()
	out, err := s.user(account, q)
	if err != nil {
		s.t.Error(err)
	}
	return out
}

// denied runs q as account and fails the test unless the server refuses it with one of
// codes (e.g. "1142"); what the error says is returned.
func (s *rolMdServer) denied(account, q string, codes ...string) {
	s.t.Helper()
	out, err := s.user(account, q)
	if err == nil {
		s.t.Errorf("%s may %s (got %q), want it refused", account, rolMdShort(q), out)
		return
	}
	for _, c := range codes {
		if strings.Contains(err.Error(), "ERROR "+c+" ") {
			return
		}
	}
	s.t.Errorf("%s: %s failed, but not with error %v: %v", account, rolMdShort(q), codes, err)
}

func rolMdShort(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 100 {
		return q[:100] + "..."
	}
	return q
}

// grants is SHOW GRANTS of every account roles.sh manages, and of app.
func (s *rolMdServer) grants() map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for _, a := range append([]string{"app"}, rolMdAccounts...) {
		g, err := s.as("root", rolMdRootPW, fmt.Sprintf("SHOW GRANTS FOR '%s'@'%%'", a))
		if err != nil {
			g = "ERROR: " + err.Error()
		}
		out[a] = g
	}
	return out
}

// snapshot is everything roles.sh may change: every account's row of mysql.global_priv (its
// password, limits, lock and password_last_changed), the database, table and routine
// privileges and the roles granted.
func (s *rolMdServer) snapshot() string {
	s.t.Helper()
	return s.root(`SELECT CONCAT_WS(' ', 'global_priv', user, host, priv) FROM mysql.global_priv
UNION ALL SELECT CONCAT_WS(' ', 'db', user, host, db, select_priv, insert_priv, create_priv, grant_priv, drop_priv) FROM mysql.db
UNION ALL SELECT CONCAT_WS(' ', 'tables_priv', user, host, db, table_name, table_priv, column_priv) FROM mysql.tables_priv
UNION ALL SELECT CONCAT_WS(' ', 'roles_mapping', user, host, role) FROM mysql.roles_mapping
ORDER BY 1`)
}

// checksums is CHECKSUM TABLE ... EXTENDED of the named tables.
func (s *rolMdServer) checksums(tables ...string) string {
	s.t.Helper()
	return s.root("CHECKSUM TABLE " + strings.Join(tables, ", ") + " EXTENDED")
}
