package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// A metadata query that fails during the backup (here the migrations version, from a
// migrations table without a version column) stops the backup and is recorded. Before the
// fix it ran inside a jq argument, where a failing command substitution is lost, and the
// backup reported success with an empty version.
func TestBackupMariadbMetadataQueryFails(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mariadb", "mariadb-dump", "restic", "jq"} {
		e2eutil.RequireTool(t, tool)
	}
	db := e2eutil.NewScratchDB(t, "mariadb")
	user := "bmq_" + strings.TrimPrefix(db.Name, "opsready_t_")
	bmySharedRoot.exec(t, fmt.Sprintf("CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'pw'; GRANT ALL ON *.* TO '%[1]s'@'%%'", user))
	t.Cleanup(func() { bmySharedRoot.exec(t, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	bmySharedRoot.exec(t, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO items VALUES (1, 'ünï');"+
		"CREATE TABLE schema_migrations (id INT PRIMARY KEY); INSERT INTO schema_migrations VALUES (1)", db.Name)

	p := bmyNewProject(t, "logical",
		"MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+db.Name,
		"MARIADB_USER="+user, "BACKUP_STORES=mariadb:mariadb-dump")
	pw := []string{"MARIADB_PASSWORD_FILE=" + bmySecret(t, p.tmp, "pw", "pw")}
	success := "textfile/backup_mariadb_logical.prom"
	before, _ := os.ReadFile(p.path(success))
	stderr, _, _, err := p.run(pw, "backup.sh")
	p.bmfFailed(t, "migrations version query", "backup", err, stderr, success, before, "query failed", "MAX(version)")

	// With the table fixed, the same project backs up and records the version.
	bmySharedRoot.exec(t, "ALTER TABLE schema_migrations ADD COLUMN version VARCHAR(20) NOT NULL DEFAULT '0001'", db.Name)
	p.must(t, pw, "backup.sh")
	var m struct {
		Migrations struct{ Version string } `json:"migrations"`
	}
	raw := p.restic(t, "backups/restic", "dump", "latest", p.path("backups/staging/mariadb/manifest.json"))
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, raw)
	}
	if m.Migrations.Version != "0001" {
		t.Errorf("manifest's migrations version = %q, want 0001", m.Migrations.Version)
	}
}
