package e2eutil

import (
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
)

// PGInstance is a PostgreSQL server of this host's binaries, owned by one test: created the
// way the postgres image creates one (the superuser and the first database named like its
// POSTGRES_USER and POSTGRES_DB, passwords over TCP), listening on 127.0.0.1 and a free port,
// its data in a temporary directory; stopped (immediate) when the test ends.
type PGInstance struct {
	Host, Superuser, Password string
	Port                      int
	BinDir, Data              string
	uid, gid                  int
}

// PGBinDir is the bin directory of the newest PostgreSQL installed here (Debian's layout);
// under CI a host without one fails the test.
func PGBinDir(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		Unavailable(t, "no PostgreSQL server binaries in /usr/lib/postgresql (run `make tools`)")
	}
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) < pgMajor(dirs[j]) })
	return filepath.Dir(dirs[len(dirs)-1])
}

func pgMajor(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// StartPostgres creates and starts an instance with superuser/password and the databases
// dbs (owned by the superuser, as POSTGRES_DB is).
func StartPostgres(t testing.TB, superuser, password string, dbs ...string) *PGInstance {
	t.Helper()
	RequireTool(t, "psql")
	p := &PGInstance{Host: "127.0.0.1", Superuser: superuser, Password: password, BinDir: PGBinDir(t),
		uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, a PostgreSQL instance needs a user postgres: %v", err)
		}
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
	}
	base := FastTempDir(t)
	if err := os.Chown(base, p.uid, p.gid); err != nil {
		t.Fatal(err)
	}
	p.Data = filepath.Join(base, "data")
	pwFile := filepath.Join(base, "initdb-pw")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(pwFile, p.uid, p.gid); err != nil {
		t.Fatal(err)
	}
	if out, err := p.as(exec.Command(filepath.Join(p.BinDir, "initdb"), "-D", p.Data, "-U", superuser,
		"--pwfile="+pwFile, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8",
		"--locale=C.UTF-8")).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Port = FreePort(t)
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", p.Port, base)
	if out, err := p.as(exec.Command(filepath.Join(p.BinDir, "pg_ctl"), "-D", p.Data, "-l", p.Data+".log", "-w",
		"-t", "300", "-o", opts, "start")).CombinedOutput(); err != nil {
		t.Fatalf("start PostgreSQL on port %d: %v\n%s\n%s", p.Port, err, out, p.Log())
	}
	t.Cleanup(func() {
		_ = p.as(exec.Command(filepath.Join(p.BinDir, "pg_ctl"), "-D", p.Data, "-m", "immediate", "-w", "stop")).Run()
	})
	for _, db := range dbs {
		p.MustSQL(t, superuser, password, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	}
	return p
}

func (p *PGInstance) as(cmd *exec.Cmd) *exec.Cmd {
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}}
	}
	cmd.Dir = os.TempDir()
	return cmd
}

// Log is the server's log so far.
func (p *PGInstance) Log() string {
	b, _ := os.ReadFile(p.Data + ".log")
	return string(b)
}

// SQL runs sql (any number of statements, stopping at the first error) over TCP as
// user/password on database db, and returns psql's unaligned, tuples-only output.
func (p *PGInstance) SQL(user, password, db, sql string) (string, error) {
	cmd := exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-w", "-h", p.Host,
		"-p", strconv.Itoa(p.Port), "-U", user, "-d", db)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGCONNECT_TIMEOUT=10", "PGPASSWORD=" + password}
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("psql as %s on %s: %v: %s", user, db, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// MustSQL is SQL that fails the test on an error.
func (p *PGInstance) MustSQL(t testing.TB, user, password, db, sql string) string {
	t.Helper()
	out, err := p.SQL(user, password, db, sql)
	if err != nil {
		t.Fatalf("%v\nSQL: %s", err, sql)
	}
	return out
}

// WaitSQL polls sql until it returns want, for at most 3 minutes (a bound on a hang).
func (p *PGInstance) WaitSQL(t testing.TB, user, password, db, sql, want string) {
	t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = p.SQL(user, password, db, sql); err == nil && got == want {
			return
		}
	}
	t.Fatalf("%s never returned %q (last: %q, %v)", sql, want, got, err)
}
