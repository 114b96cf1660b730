package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/project"
)

// generate renders the newest webapp version into a fresh temporary directory with the
// given answers over the blueprint defaults, and returns the directory.
func generate(t *testing.T, set map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{
		Dir:       dir,
		Blueprint: "webapp",
		Set:       set,
		Defaults:  true,
		Version:   "test",
	}); err != nil {
		t.Fatalf("generate %v: %v", set, err)
	}
	return dir
}

// inCI reports whether missing tools and servers must fail rather than skip.
func inCI() bool { return os.Getenv("CI") != "" }

// requireTool returns the path of an external program; under CI a missing one fails the test.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (run `make tools`)", name)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// requireServer checks that a local server answers on 127.0.0.1:port; under CI a missing one fails.
func requireServer(t *testing.T, name string, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		msg := fmt.Sprintf("%s is not running on 127.0.0.1:%d (run `make tools`): %v", name, port, err)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
}

// freePort asks the kernel for a free TCP port on the loopback interface.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scratchDB is a database and user created for one test and dropped after it.
type scratchDB struct {
	Engine, Host, Name, User, Password string
	Port                               int
}

// newScratchDB creates a uniquely named database and an owner for it on the local
// PostgreSQL ("postgres") or MariaDB ("mariadb"), and drops both when the test ends.
func newScratchDB(t *testing.T, engine string) scratchDB {
	t.Helper()
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	db := scratchDB{Engine: engine, Host: "127.0.0.1", Name: "opsready_t_" + suffix,
		User: "opsready_u_" + suffix, Password: "pw_" + suffix}
	var admin, stmts, drops []string
	switch engine {
	case "postgres":
		db.Port = 5432
		requireServer(t, "PostgreSQL", db.Port)
		requireTool(t, "psql")
		admin = []string{"psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"}
		stmts = []string{
			fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", db.User, db.Password),
			fmt.Sprintf("CREATE DATABASE %s OWNER %s", db.Name, db.User),
		}
		drops = []string{
			fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db.Name),
			fmt.Sprintf("DROP ROLE IF EXISTS %s", db.User),
		}
	case "mariadb":
		db.Port = 3306
		requireServer(t, "MariaDB", db.Port)
		requireTool(t, "mariadb")
		admin = []string{"mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"}
		stmts = []string{
			fmt.Sprintf("CREATE DATABASE `%s`", db.Name),
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", db.User, db.Password),
			fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", db.Name, db.User),
		}
		drops = []string{
			fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", db.Name),
			fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", db.User),
		}
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	run := func(stmt string) error {
		out, err := exec.Command(admin[0], append(admin[1:], stmt)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", stmt, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	t.Cleanup(func() {
		for _, s := range drops {
			if err := run(s); err != nil {
				t.Errorf("drop scratch database: %v", err)
			}
		}
	})
	for _, s := range stmts {
		if err := run(s); err != nil {
			t.Fatalf("create scratch database: %v", err)
		}
	}
	return db
}
