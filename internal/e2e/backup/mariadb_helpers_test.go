package backup

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

	"github.com/opsready/opsready/internal/e2e/e2eutil"
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
	p := &bmyProject{dir: e2eutil.Generate(t, map[string]string{"db": "mariadb", "db_backup_method": method}), tmp: e2eutil.FastTempDir(t)}
	p.env = append(os.Environ(),
		"BACKUP_DIR="+p.path("backups"), "BACKUP_OFFSITE_REPOSITORY="+p.path("offsite"),
		"BACKUP_TEXTFILE_DIR="+p.path("textfile"), "BACKUP_LOG_DIR="+p.path("log"),
		"BACKUP_LOCK_TIMEOUT=30", "RESTORE_TEST_FROM=auto",
		// The scripts' work space on the same file system as the rest: mariadb-backup
		// --prepare --incremental-dir renames files from the work space into the target.
		"TMPDIR="+p.path("tmp"))
	must(t, os.Mkdir(p.path("tmp"), 0o755))
	p.env = append(p.env, env...)
	return p
}

// cheapRepos creates the project's primary and off-site restic repositories with bspRepo
// (cheap to open) before its scripts first run: they find them initialised.
func (p *bmyProject) cheapRepos(t *testing.T) {
	t.Helper()
	pw := filepath.Join(p.dir, "secrets", "restic_password")
	bspRepo(t, p.path("backups/restic"), pw)
	bspRepo(t, p.path("offsite"), pw)
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
