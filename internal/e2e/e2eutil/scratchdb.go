package e2eutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ScratchDB is a database and user created for one test and dropped after it.
type ScratchDB struct {
	Engine, Host, Name, User, Password string
	Port                               int
}

// NewScratchDB creates a uniquely named database and an owner for it on the local
// PostgreSQL ("postgres") or MariaDB ("mariadb"), and drops both when the test ends.
func NewScratchDB(t testing.TB, engine string) ScratchDB {
	t.Helper()
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	db := ScratchDB{Engine: engine, Host: "127.0.0.1", Name: "opsready_t_" + suffix,
		User: "opsready_u_" + suffix, Password: "pw_" + suffix}
	var admin, stmts, drops []string
	switch engine {
	case "postgres":
		db.Port = 5432
		RequireServer(t, "PostgreSQL", db.Port)
		RequireTool(t, "psql")
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
		RequireServer(t, "MariaDB", db.Port)
		RequireTool(t, "mariadb")
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
		if engine == "mariadb" {
			defer MariadbAccounts(t, false)()
		}
		out, err := exec.Command(admin[0], append(admin[1:], stmt)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", stmt, err, strings.TrimSpace(string(out)))
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
