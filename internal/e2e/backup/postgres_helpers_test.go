package backup

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bpgPgBin holds the PostgreSQL 15 server binaries (Debian's layout) of the instance the
// pgBackRest test runs.
const bpgPgBin = "/usr/lib/postgresql/15/bin"

// bpgManifest is the part of manifest.json the tests check.
type bpgManifest struct {
	Store        string            `json:"store"`
	Method       string            `json:"method"`
	Kind         string            `json:"kind"`
	Label        string            `json:"label"`
	ServerMajor  string            `json:"server_major"`
	Database     string            `json:"database"`
	ToolVersions map[string]string `json:"tool_versions"`
	Files        []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	SizeBytes int64 `json:"size_bytes"`
	Tables    []struct {
		Name string `json:"name"`
		Rows int64  `json:"rows"`
	} `json:"tables"`
	RowCountsExact bool `json:"row_counts_exact"`
	Canary         struct {
		Table string `json:"table"`
		ID    string `json:"id"`
	} `json:"canary"`
	Roles      []string `json:"roles"`
	Migrations *struct {
		Version string `json:"version"`
	} `json:"migrations"`
}

// bpgTables are the tables the tests load, as SQL names, with their manifest names.
var bpgTables = [][2]string{
	{"public.items", "public.items"},
	{"public.orders", "public.orders"},
	{"public.schema_migrations", "public.schema_migrations"},
	{`audit."Event Log"`, "audit.Event Log"},
}

// bpgLoadSQL creates the test tables with rows items, grants role (when set) a privilege
// on them, and records three migrations.
func bpgLoadSQL(role string, rows int) string {
	sql := fmt.Sprintf(`
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], data jsonb,
	created_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
INSERT INTO items (name, price, tags, data)
	SELECT 'item ' || g, g * 0.25, ARRAY['t' || g %% 7, 'u' || g %% 3], jsonb_build_object('g', g, 'half', g / 2.0)
	FROM generate_series(1, %d) g;
CREATE TABLE orders (id bigint PRIMARY KEY, item_id int NOT NULL REFERENCES items (id), qty int);
INSERT INTO orders SELECT g, 1 + g %% %d, g %% 5 FROM generate_series(1, %d) g;
CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY, applied_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO schema_migrations (version) VALUES ('0001_create_items'), ('0002_create_orders'), ('0003_add_audit');
CREATE SCHEMA audit;
CREATE TABLE audit."Event Log" (id int, note text);
INSERT INTO audit."Event Log" SELECT g, CASE WHEN g = 3 THEN NULL ELSE 'it''s event ' || g END FROM generate_series(1, 10) g;
`, rows, rows, rows/4)
	if role != "" {
		sql += fmt.Sprintf("GRANT SELECT ON items TO %s;\nGRANT USAGE ON SCHEMA audit TO %s;\n", role, role)
	}
	return sql
}

// bpgEnv is the test's environment without libpq, backup and restic settings (so that the
// machine's own cannot leak in), plus extra (later entries win).
func bpgEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "BACKUP_") || strings.HasPrefix(k, "RESTIC_") ||
			strings.HasPrefix(k, "RESTORE_TEST_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// bpgFastDir returns a new directory, removed when the test ends, on the tmpfs /dev/shm when
// it has room, else in the default temp dir: a restore fsyncs each of its ~1,300 files, which
// costs seconds per restore on this machine's disk, and the tests prove behaviour, not disk
// speed. It is readable by all, so that PostgreSQL's user reaches what is chowned to it.
func bpgFastDir(tb testing.TB) string {
	tb.Helper()
	parent := ""
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Bavail*uint64(st.Bsize) > 4<<30 {
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "bpg")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	// A TMPDIR for the scripts, which also run as PostgreSQL's user (archive_command).
	if err := os.Mkdir(filepath.Join(d, "tmp"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(d, "tmp"), 0o777|os.ModeSticky); err != nil {
		tb.Fatal(err)
	}
	return d
}

// bpgRun runs ops/backup/script of the generated project proj with env and returns its
// combined output and how long it took.
func bpgRun(proj string, env []string, script string, args ...string) (string, time.Duration, error) {
	cmd := exec.Command(filepath.Join(proj, "ops", "backup", script), args...)
	cmd.Dir = proj
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

// bpgMustRun is bpgRun that fails the test when the script fails, and logs its duration.
func bpgMustRun(tb testing.TB, proj string, env []string, script string, args ...string) (string, time.Duration) {
	tb.Helper()
	out, took, err := bpgRun(proj, env, script, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return out, took
}

// bpgPsql runs sql (a script, from stdin) with psql as conn and returns its output, trimmed.
func bpgPsql(tb testing.TB, conn []string, sql string) string {
	tb.Helper()
	out, err := bpgPsqlErr(conn, sql)
	if err != nil {
		tb.Fatalf("psql %v: %v", conn, err)
	}
	return out
}

func bpgPsqlErr(conn []string, sql string) (string, error) {
	cmd := exec.Command("psql", append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, conn...)...)
	cmd.Env = bpgEnv()
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s\nSQL: %s", err, strings.TrimSpace(string(out)), sql)
	}
	return strings.TrimSpace(string(out)), nil
}

// bpgSums returns, per test table, the md5 of its rows in order and their count.
func bpgSums(tb testing.TB, conn []string) map[string]string {
	tb.Helper()
	sums := map[string]string{}
	for _, tbl := range bpgTables {
		sums[tbl[0]] = bpgPsql(tb, conn, fmt.Sprintf(
			"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t;", tbl[0]))
	}
	return sums
}

// bpgRole creates a uniquely named login role on the local server and drops it when the
// test ends. Create it before the scratch databases, so that it is dropped after them.
func bpgRole(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bpg_role_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	admin := []string{"-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres"}
	bpgPsql(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'bpg-secret';", name))
	t.Cleanup(func() {
		if _, err := bpgPsqlErr(admin, fmt.Sprintf("DROP ROLE IF EXISTS %s;", name)); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	return name
}

// bpgMetric returns the value of the first sample of metric in the textfile path.
func bpgMetric(tb testing.TB, path, metric string) float64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, metric+"{") || strings.HasPrefix(line, metric+" ") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				tb.Fatalf("%s: %q: %v", path, line, err)
			}
			return v
		}
	}
	tb.Fatalf("%s has no %s:\n%s", path, metric, b)
	return 0
}

// bpgLastLine returns the last line of the file at path.
func bpgLastLine(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// bpgField returns the value of key=value in a restore-test.log line.
func bpgField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// bpgFiles lists the regular files below dir.
func bpgFiles(tb testing.TB, dir string) map[string]bool {
	tb.Helper()
	files := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files[p] = true
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// bpgDamage overwrites 64 bytes in the middle of the file at path.
func bpgDamage(tb testing.TB, path string) {
	tb.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("damaged!", 8)), fi.Size()/2); err != nil {
		tb.Fatal(err)
	}
}
