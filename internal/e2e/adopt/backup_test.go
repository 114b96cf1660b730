package adopt

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The backup and restore-test scripts that `opsready adopt` writes run here on the plain host
// against the local servers, configured by the adopted ops/backup/backup.env: the tests
// override only what differs on this host (host, port and database of the servers, the
// MariaDB account, since the local root has no password; the repositories and output
// directories) and write the password into the file backup.env names (the team's
// db/password.txt or the secrets/db_password adopt copied), in the temp copy of the project. Every store of the adopted BACKUP_STORES runs (the database, the
// files and, for nextcloud, Redis). What was backed up is restored with restore.sh and
// compared by checksum with the source as it was at backup time.

// abProject is an adopted corpus project whose backup scripts run on this host.
type abProject struct {
	*adopted
	conf map[string]string // ops/backup/backup.env as adopt wrote it
	tmp  string            // repositories, metrics, logs and TMPDIR of the scripts
	env  []string
}

// abAdopt adopts a corpus project and points its scripts at scratch directories.
func abAdopt(t *testing.T, name string, tools ...string) *abProject {
	t.Helper()
	for _, tool := range append([]string{"restic", "jq", "flock", "sha256sum"}, tools...) {
		e2eutil.RequireTool(t, tool)
	}
	p := &abProject{adopted: adoptCorpus(t, name, nil), tmp: e2eutil.FastTempDir(t)}
	p.conf = abReadEnv(t, filepath.Join(p.Dir, "ops", "backup", "backup.env"))
	// PostgreSQL's scratch cluster of the restore test runs as postgres below TMPDIR.
	if err := os.Chmod(p.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p.path("tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p.path("tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	p.env = abEnv("BACKUP_DIR="+p.path("backups"), "BACKUP_OFFSITE_REPOSITORY="+p.path("offsite"),
		"BACKUP_TEXTFILE_DIR="+p.path("textfile"), "BACKUP_LOG_DIR="+p.path("log"),
		"BACKUP_LOCK_TIMEOUT=30", "TMPDIR="+p.path("tmp"))
	return p
}

func (p *abProject) path(rel string) string { return filepath.Join(p.tmp, rel) }

var abSettings = regexp.MustCompile(`^(PG|MARIADB_|MYSQL|REDIS|BACKUP_|RESTIC_|RESTORE_TEST_)`)

// abEnv is the test's environment without database, backup and restic settings (the
// machine's own must not leak in), plus extra.
func abEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !abSettings.MatchString(k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// abReadEnv reads a VAR=value file as lib.sh's load_env does (single quotes stripped).
func abReadEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(e2eutil.ReadFile(t, path), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
				v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`)
			}
			out[k] = v
		}
	}
	return out
}

// secret writes value into the password file backup.env names for variable (relative to
// the project, inside the temp copy) and returns its path.
func (p *abProject) secret(t *testing.T, variable, value string) string {
	t.Helper()
	rel := p.conf[variable]
	if rel == "" || filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		t.Fatalf("backup.env: %s=%q, want a path inside the project", variable, rel)
	}
	path := filepath.Join(p.Dir, rel)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs ops/backup/<script> in the project with extra VAR=value settings.
func (p *abProject) run(extra []string, script string, args ...string) (string, time.Duration, error) {
	cmd := exec.Command(filepath.Join(p.Dir, "ops", "backup", script), args...)
	cmd.Dir = p.Dir
	cmd.Env = append(append([]string{}, p.env...), extra...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

func (p *abProject) must(t *testing.T, extra []string, script string, args ...string) string {
	t.Helper()
	out, took, err := p.run(extra, script, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	if testing.Verbose() { // the scripts' own log has the time of each step
		t.Logf("%s %s: %s\n%s", script, strings.Join(args, " "), took.Round(time.Millisecond), out)
	}
	return out
}

// stores are the store names of the adopted BACKUP_STORES.
func (p *abProject) stores() []string {
	var out []string
	for _, pair := range strings.Fields(p.conf["BACKUP_STORES"]) {
		s, _, _ := strings.Cut(pair, ":")
		out = append(out, s)
	}
	return out
}

// metric returns the value of sample (name{labels}) in a textfile, or -1 when the file is missing.
func (p *abProject) metric(t *testing.T, file, sample string) float64 {
	t.Helper()
	b, err := os.ReadFile(p.path(filepath.Join("textfile", file)))
	if errors.Is(err, os.ErrNotExist) {
		return -1
	} else if err != nil {
		t.Fatal(err)
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

// backup runs backup.sh (every adopted store) and checks each store's success metric.
func (p *abProject) backup(t *testing.T, kinds map[string]string) string {
	t.Helper()
	before := time.Now().Unix()
	out := p.must(t, nil, "backup.sh")
	for _, s := range p.stores() {
		sample := fmt.Sprintf(`backup_last_success_timestamp_seconds{store=%q,kind=%q}`, s, kinds[s])
		if ts := p.metric(t, fmt.Sprintf("backup_%s_%s.prom", s, kinds[s]), sample); ts < float64(before) || ts > float64(time.Now().Unix()) {
			t.Errorf("%s = %v, want the time of this backup", sample, ts)
		}
	}
	return out
}

// restoreTest runs restore-test.sh and checks that every adopted store passed (log and metric).
func (p *abProject) restoreTest(t *testing.T) map[string]string {
	t.Helper()
	p.must(t, nil, "restore-test.sh")
	lines := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(e2eutil.ReadFile(t, p.path("log/restore-test.log"))), "\n") {
		if m := regexp.MustCompile(` store=(\S+) `).FindStringSubmatch(line); m != nil {
			lines[m[1]] = line
		}
	}
	for _, s := range p.stores() {
		if !strings.Contains(lines[s], " result=passed ") {
			t.Errorf("restore-test.log of %s: %q, want result=passed", s, lines[s])
		}
		if r := p.metric(t, "restore_test_result_"+s+".prom", fmt.Sprintf(`restore_test_last_result{store=%q}`, s)); r != 1 {
			t.Errorf("restore_test_last_result{store=%q} = %v, want 1", s, r)
		}
	}
	return lines
}

// wrongPassword runs `backup.sh store` with a wrong password in the adopted password file:
// it must fail, name the connection in its error and write no success metric.
func (p *abProject) wrongPassword(t *testing.T, variable, store, kind string, want []string, extra ...string) {
	t.Helper()
	p.secret(t, variable, "not-the-password")
	out, _, err := p.run(extra, "backup.sh", store)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("backup with a wrong password in %s: %v, want a failure:\n%s", p.conf[variable], err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("backup with a wrong password in %s: the output does not say %q:\n%s", p.conf[variable], w, out)
		}
	}
	if _, err := os.Stat(p.path(fmt.Sprintf("textfile/backup_%s_%s.prom", store, kind))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed backup wrote backup_%s_%s.prom (%v)", store, kind, err)
	}
	if r := p.metric(t, "backup_result_"+store+".prom", fmt.Sprintf(`backup_last_result{store=%q}`, store)); r != 0 {
		t.Errorf("backup_last_result{store=%q} = %v after a failed backup, want 0", store, r)
	}
}

// abSuffix is unique to this process and call, for the names of what a test creates.
func abSuffix() string { return fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9) }

// ---------------------------------------------------------------------------------------
// PostgreSQL

// abPsql runs sql as postgres in db of a trusting server and returns its rows, trimmed.
func abPsql(t *testing.T, host string, port int, db, sql string) string {
	t.Helper()
	out, err := abPsqlErr(host, port, db, sql, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// abPsqlErr runs sql as postgres with password (ignored where the server trusts 127.0.0.1).
func abPsqlErr(host string, port int, db, sql, password string) (string, error) {
	cmd := exec.Command("psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
		"-h", host, "-p", strconv.Itoa(port), "-U", "postgres", "-d", db)
	cmd.Env = abEnv("PGPASSWORD=" + password)
	cmd.Stdin = strings.NewReader(sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %s: %v: %s", db, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// abPgLoad is the awkward content: a non-ASCII schema, table and column names, a view
// calling a function, a trigger, NULLs, quotes and newlines, a table-level grant.
const abPgLoad = `SET ROLE %[1]s;
CREATE SCHEMA "Verlag ü";
CREATE FUNCTION "Verlag ü".brutto(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT round($1 * 1.19, 2) $$;
CREATE TABLE "Verlag ü"."Bücher" (id serial PRIMARY KEY, "Titel" text NOT NULL, preis numeric(10,2), tags text[],
	daten jsonb, geändert timestamptz);
CREATE FUNCTION "Verlag ü".stempel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.geändert := '2026-01-02 00:00:00+00'; RETURN NEW; END $$;
CREATE TRIGGER "bücher_stempel" BEFORE INSERT OR UPDATE ON "Verlag ü"."Bücher" FOR EACH ROW EXECUTE FUNCTION "Verlag ü".stempel();
INSERT INTO "Verlag ü"."Bücher" ("Titel", preis, tags, daten)
	SELECT CASE g %% 4 WHEN 0 THEN 'it''s "Buch" ' || g WHEN 1 THEN E'Zeile\nZwei\t' || g WHEN 2 THEN 'Größe ✓ 🐘 ' || g
		ELSE 'b' || g END, CASE WHEN g %% 9 = 0 THEN NULL ELSE g * 0.37 END, ARRAY['t' || g %% 7],
		jsonb_build_object('g', g, 'ä', 'ö')
	FROM generate_series(1, 3000) g;
CREATE VIEW "Verlag ü"."Bücher brutto" AS SELECT id, "Titel", "Verlag ü".brutto(preis) AS brutto FROM "Verlag ü"."Bücher";
GRANT USAGE ON SCHEMA "Verlag ü" TO %[2]s;
GRANT SELECT ON "Verlag ü"."Bücher" TO %[2]s;
`

// abPgSums is the content of db by checksum: every table's and view's rows, every function,
// trigger and view definition, and each relation's owner and grants.
func abPgSums(t *testing.T, db string) map[string]string {
	t.Helper()
	out := map[string]string{}
	defs := abPsql(t, "127.0.0.1", 5432, db, `SELECT 'rel ' || c.oid::regclass::text, c.relkind::text || ' ' || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	UNION ALL SELECT 'function ' || p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	UNION ALL SELECT 'trigger ' || tgname, md5(pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
	UNION ALL SELECT 'viewdef ' || c.oid::regclass::text, md5(pg_get_viewdef(c.oid)) FROM pg_class c WHERE c.relkind = 'v'
		AND c.relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname ~ '^pg_' OR nspname = 'information_schema')
	UNION ALL SELECT 'schema ' || nspname, pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'Verlag ü';`)
	for _, line := range strings.Split(defs, "\n") {
		k, v, _ := strings.Cut(line, "\t")
		out[k] = v
		if rel, ok := strings.CutPrefix(k, "rel "); ok {
			out["rows "+rel] = abPsql(t, "127.0.0.1", 5432, db, fmt.Sprintf(
				"SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM %s r;", rel))
		}
	}
	return out
}

// TestAdoptBackupPostgres: nginx-golang-postgres (PostgreSQL, password from the compose
// secret file db/password.txt) backs up a scratch database of the local server with its
// adopted scripts, restore-tests it and restores it into a new database, equal by checksum
// to the source at backup time; a wrong password fails the backup.
func TestAdoptBackupPostgres(t *testing.T) {
	t.Parallel()
	p := abAdopt(t, "nginx-golang-postgres", "psql", "pg_dump", "pg_dumpall", "pg_restore", "setpriv")
	db := p.Plan.Record.DB
	if db == nil || db.Engine != "postgres" || p.conf["PGUSER"] != db.User || p.conf["PGHOST"] != db.Service ||
		p.conf["PGDATABASE"] != db.Database || p.conf["PGPASSWORD_FILE"] != "db/password.txt" ||
		!strings.Contains(" "+p.conf["BACKUP_STORES"]+" ", " postgres:postgres-dump ") {
		t.Fatalf("backup.env does not configure the detected database %+v:\n%v", db, p.conf)
	}
	e2eutil.RequireServer(t, "PostgreSQL", 5432)
	major := abPsql(t, "127.0.0.1", 5432, "postgres", "SELECT current_setting('server_version_num')::int / 10000;")
	e2eutil.RequireTool(t, "/usr/lib/postgresql/"+major+"/bin/initdb")

	// The wrong password is refused by a private cluster with password authentication (the
	// shared server trusts 127.0.0.1, where any password passes).
	port := abScramCluster(t, major, "right-"+abSuffix())
	p.wrongPassword(t, "PGPASSWORD_FILE", "postgres", "logical", []string{
		fmt.Sprintf("error: cannot connect to PostgreSQL at 127.0.0.1:%d as %s", port, db.User),
		fmt.Sprintf("password authentication failed for user %q", db.User)},
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(port), "PGDATABASE=postgres")

	reader := "ab_reader_" + abSuffix()
	abPsql(t, "127.0.0.1", 5432, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'x';", reader))
	t.Cleanup(func() { // after the databases (cleanups run last-in first-out)
		if _, err := abPsqlErr("127.0.0.1", 5432, "postgres", "DROP ROLE IF EXISTS "+reader+";", "postgres"); err != nil {
			t.Error(err)
		}
	})
	src := e2eutil.NewScratchDB(t, "postgres")
	abPsql(t, "127.0.0.1", 5432, src.Name, fmt.Sprintf(abPgLoad, src.User, reader))
	// PGUSER stays the adopted one (the team's postgres superuser); the shared server
	// trusts 127.0.0.1, so the password file needs only to be there and not empty.
	p.secret(t, "PGPASSWORD_FILE", src.Password)
	p.env = append(p.env, "PGHOST=127.0.0.1", "PGPORT=5432", "PGDATABASE="+src.Name)

	p.backup(t, map[string]string{"postgres": "logical", "files": "full"})
	want := abPgSums(t, src.Name)
	// Changes after the backup must not show in what is restored.
	abPsql(t, "127.0.0.1", 5432, src.Name, `UPDATE "Verlag ü"."Bücher" SET "Titel" = 'später' WHERE id <= 100;
		CREATE OR REPLACE FUNCTION "Verlag ü".brutto(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT $1 $$;`)
	if got := abPgSums(t, src.Name); fmt.Sprint(got) == fmt.Sprint(want) {
		t.Fatal("the checksums do not see the changes made after the backup")
	}
	lines := p.restoreTest(t)
	if !strings.Contains(lines["postgres"], " tables=2 ") { // Bücher and the canary table
		t.Errorf("restore-test.log: %s", lines["postgres"])
	}

	target := e2eutil.NewScratchDB(t, "postgres")
	p.must(t, nil, "restore.sh", "postgres", "--target-db", target.Name, "--no-globals")
	got := abPgSums(t, target.Name)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the restored database differs from the source at backup time:\n got %v\nwant %v", got, want)
	}
	if len(want) < 10 || !strings.Contains(want[`rel "Verlag ü"."Bücher"`], reader+"=r/") {
		t.Errorf("the checksums miss the test's objects or grant: %v", want)
	}
}

// abScramCluster starts a private PostgreSQL cluster on 127.0.0.1 that asks for
// passwords (scram-sha-256; postgres's is password) and returns its port.
func abScramCluster(t *testing.T, major, password string) int {
	t.Helper()
	bin := "/usr/lib/postgresql/" + major + "/bin"
	base := e2eutil.FastTempDir(t)
	as := func(cmd *exec.Cmd) *exec.Cmd {
		if os.Geteuid() == 0 { // PostgreSQL refuses root
			cmd = exec.Command("setpriv", append([]string{"--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, cmd.Args...)...)
		}
		cmd.Dir = "/"
		return cmd
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the private cluster needs a user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(base, "pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, port := filepath.Join(base, "data"), e2eutil.FreePort(t)
	if out, err := as(exec.Command(bin+"/initdb", "-D", data, "-U", "postgres", "-A", "scram-sha-256", "--pwfile", pwfile,
		"--no-sync")).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories='%s' -c fsync=off", port, base)
	if out, err := as(exec.Command(bin+"/pg_ctl", "-D", data, "-l", filepath.Join(base, "log"), "-w", "-t", "60", "-s",
		"-o", opts, "start")).CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := as(exec.Command(bin+"/pg_ctl", "-D", data, "-m", "immediate", "-s", "stop")).CombinedOutput(); err != nil {
			t.Errorf("pg_ctl stop: %v\n%s", err, out)
		}
	})
	// The positive control: the right password opens it.
	if _, err := abPsqlErr("127.0.0.1", port, "postgres", "SELECT 1;", password); err != nil {
		t.Fatal(err)
	}
	return port
}

// ---------------------------------------------------------------------------------------
// MariaDB

// abMy runs sql on the local MariaDB as root (in db when given) and returns its rows.
func abMy(t *testing.T, sql string, db ...string) string {
	t.Helper()
	if strings.Contains(sql, " USER ") {
		defer e2eutil.MariadbAccounts(t, false)() // webapp 1.3.0's dump must not see accounts vanish
	}
	out, err := abMyErr(sql, db...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func abMyErr(sql string, db ...string) (string, error) {
	args := append([]string{"-h", "127.0.0.1", "-P", "3306", "-u", "root", "--default-character-set=utf8mb4",
		"--batch", "--skip-column-names", "-e", sql}, db...)
	out, err := exec.Command("mariadb", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb %.100q: %v: %s", sql, err, out)
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// abMyLoad is the awkward content: a non-ASCII table, column and trigger names, a view
// calling a function, a trigger, a foreign key, quotes, newlines, binary, a table-level grant.
const abMyLoad = "CREATE FUNCTION brutto(p DECIMAL(10,2)) RETURNS DECIMAL(12,2) DETERMINISTIC RETURN ROUND(p * 1.19, 2);\n" +
	"CREATE TABLE `Bücher` (id INT AUTO_INCREMENT PRIMARY KEY, titel VARCHAR(200) NOT NULL, preis DECIMAL(10,2),\n" +
	"  notiz TEXT, daten VARBINARY(32), `geändert` DATETIME(6)) DEFAULT CHARSET=utf8mb4;\n" +
	"CREATE TRIGGER `bücher_stempel` BEFORE INSERT ON `Bücher` FOR EACH ROW SET NEW.`geändert` = '2026-01-02 00:00:00';\n" +
	"INSERT INTO `Bücher` (titel, preis, notiz, daten) SELECT CONCAT('Buch ', seq, ' – Ä'), IF(seq % 9 = 0, NULL, seq / 7),\n" +
	"  CASE seq % 4 WHEN 0 THEN 'it''s),(\"x\"' WHEN 1 THEN 'Zeile\\nZwei\\t\\\\' WHEN 2 THEN 'Größe ✓ 🐬' ELSE NULL END,\n" +
	"  UNHEX(SHA2(seq, 256)) FROM seq_1_to_3000;\n" +
	"CREATE TABLE `Käufe` (id INT PRIMARY KEY, buch INT NOT NULL, menge INT, FOREIGN KEY (buch) REFERENCES `Bücher` (id)) ENGINE=InnoDB;\n" +
	"INSERT INTO `Käufe` SELECT seq, 1 + seq * 7 % 3000, seq % 5 FROM seq_1_to_800;\n" +
	"CREATE VIEW `Bücher brutto` AS SELECT id, titel, brutto(preis) AS brutto FROM `Bücher`;\n"

// abMySums is the content of db by checksum: CHECKSUM TABLE of every base table, the rows
// of every view, the definitions of routines, triggers and views, and the reader's grants.
func abMySums(t *testing.T, db, reader string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lit := "'" + db + "'"
	for _, n := range strings.Split(abMy(t, "SELECT table_name FROM information_schema.tables WHERE table_schema = "+lit+" AND table_type = 'BASE TABLE'"), "\n") {
		line := abMy(t, fmt.Sprintf("CHECKSUM TABLE `%s`.`%s` EXTENDED", db, n))
		_, sum, _ := strings.Cut(line, "\t")
		out["table "+n] = sum
	}
	out["view rows"] = abMy(t, "SET SESSION group_concat_max_len = 67108864; SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, titel, brutto) ORDER BY id SEPARATOR '\\n')) FROM `Bücher brutto`", db)
	out["definitions"] = abMy(t, `SELECT MD5(GROUP_CONCAT(d ORDER BY d SEPARATOR '\n')), COUNT(*) FROM (
		SELECT CONCAT('routine ', routine_name, ' ', routine_definition, ' ', definer) d FROM information_schema.routines WHERE routine_schema = `+lit+`
		UNION ALL SELECT CONCAT('trigger ', trigger_name, ' ', action_timing, ' ', event_manipulation, ' ', action_statement) FROM information_schema.triggers WHERE trigger_schema = `+lit+`
		UNION ALL SELECT CONCAT('view ', table_name, ' ', view_definition) FROM information_schema.views WHERE table_schema = `+lit+`) x`)
	grants, err := abMyErr(fmt.Sprintf("SHOW GRANTS FOR '%s'@'%%'", reader))
	if err != nil {
		grants = "none"
	}
	out["grants"] = grants
	return out
}

// abMyOthers is MARIADB_SYSTEM_USERS (the script's default list) plus every account of the
// shared server but the test's own: the backup holds only the test's accounts, so that its
// restore never brings back the dropped accounts of another test.
func abMyOthers(t *testing.T, p *abProject, mine ...string) string {
	t.Helper()
	m := regexp.MustCompile(`MARIADB_SYSTEM_USERS:=([^}]*)\}`).FindStringSubmatch(
		e2eutil.ReadFile(t, filepath.Join(p.Dir, "ops", "backup", "mariadb-dump.sh")))
	if m == nil {
		t.Fatal("mariadb-dump.sh has no default MARIADB_SYSTEM_USERS")
	}
	users := strings.Fields(m[1])
	for _, u := range strings.Split(abMy(t, "SELECT DISTINCT user FROM mysql.user"), "\n") {
		if !slices.Contains(mine, u) {
			users = append(users, u)
		}
	}
	return strings.Join(users, " ")
}

var abAll = flag.Bool("adopt-backup-all", false, "TestAdoptBackupMariadb: run the backups of every MariaDB project, not only nextcloud's")

// TestAdoptBackupMariadb: the MariaDB projects (react-express-mysql: root password from the
// compose secret file db/password.txt; nextcloud-redis-mariadb: a literal password adopt
// copied to secrets/db_password, with Redis and a data volume) back up a scratch database of
// the local server with their adopted scripts, restore-test it and restore it in place with
// its accounts (the disaster path), equal by checksum to the source at backup time; a wrong
// password fails the backup.
func TestAdoptBackupMariadb(t *testing.T) {
	t.Parallel()
	e2eutil.RequireServer(t, "MariaDB", 3306)
	for _, tc := range []struct{ name, pwFile string }{
		// The slowest (three stores) first. wordpress-mysql is adopted like nextcloud (a
		// literal password copied to secrets/db_password) and left out for time.
		{"nextcloud-redis-mariadb", "secrets/db_password"},
		{"react-express-mysql", "db/password.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tools := []string{"mariadb", "mariadb-dump", "mariadb-admin", "mariadbd", "mariadb-install-db", "perl"}
			p := abAdopt(t, tc.name, tools...)
			db := p.Plan.Record.DB
			if db == nil || db.Engine != "mariadb" || p.conf["MARIADB_USER"] != db.User || p.conf["MARIADB_HOST"] != db.Service ||
				p.conf["MARIADB_DATABASE"] != db.Database || p.conf["MARIADB_PASSWORD_FILE"] != tc.pwFile ||
				!strings.Contains(" "+p.conf["BACKUP_STORES"]+" ", " mariadb:mariadb-dump ") {
				t.Fatalf("backup.env does not configure the detected database %+v:\n%v", db, p.conf)
			}
			if tc.name != "nextcloud-redis-mariadb" && !*abAll {
				// The same scripts with the password in another file: the settings above are
				// what differs; -adopt-backup-all runs its backups too (about 2 CPU-minutes).
				return
			}
			kinds := map[string]string{"mariadb": "logical", "files": "full", "redis": "full"}
			var redis *abRedis
			if strings.Contains(p.conf["BACKUP_STORES"], "redis:redis") {
				redis = abStartRedis(t, p)
			}

			src := e2eutil.NewScratchDB(t, "mariadb")
			suffix := abSuffix()
			adm, reader := "ab_adm_"+suffix, "ab_reader_"+suffix
			t.Cleanup(func() {
				defer e2eutil.MariadbAccounts(t, false)()
				for _, u := range []string{adm, reader} {
					if _, err := abMyErr(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u)); err != nil {
						t.Error(err)
					}
				}
			})
			// The local root has no password, and backup.env's *_FILE must not be empty: the
			// backups run as an administrator of the test's instead (what root may do).
			abMy(t, fmt.Sprintf(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY 'pw-%[3]s'; GRANT ALL ON *.* TO '%[1]s'@'%%' WITH GRANT OPTION;
				CREATE USER '%[2]s'@'%%' IDENTIFIED BY 'r-%[3]s'`, adm, reader, suffix))
			abMy(t, abMyLoad+fmt.Sprintf("GRANT SELECT, UPDATE (notiz) ON `%s`.`Bücher` TO '%s'@'%%';", src.Name, reader), src.Name)
			p.env = append(p.env, "MARIADB_HOST=127.0.0.1", "MARIADB_PORT=3306", "MARIADB_DATABASE="+src.Name, "MARIADB_USER="+adm,
				"MARIADB_SYSTEM_USERS="+abMyOthers(t, p, adm, reader, src.User))

			p.wrongPassword(t, "MARIADB_PASSWORD_FILE", "mariadb", "logical", []string{fmt.Sprintf(
				"error: cannot connect to MariaDB at 127.0.0.1:3306 as %s (MARIADB_HOST, MARIADB_PORT, MARIADB_USER, MARIADB_PASSWORD_FILE): ERROR 1045", adm)})
			p.secret(t, "MARIADB_PASSWORD_FILE", "pw-"+suffix)

			backupOut := p.backup(t, kinds)
			want := abMySums(t, src.Name, reader)
			var redisWant string
			if redis != nil {
				redisWant = redis.cli(t, "DEBUG", "DIGEST")
				redis.cli(t, "SET", "später", "nach der Sicherung")
			}
			// Changes after the backup, and the reader's account gone: the restore brings
			// back the state of the backup.
			abMy(t, "UPDATE `Bücher` SET titel = 'später' WHERE id <= 100; DROP VIEW `Bücher brutto`;"+
				"CREATE VIEW `Bücher brutto` AS SELECT id, titel, preis AS brutto FROM `Bücher`;"+
				fmt.Sprintf("DROP USER '%s'@'%%'", reader), src.Name)
			if got := abMySums(t, src.Name, reader); fmt.Sprint(got) == fmt.Sprint(want) {
				t.Fatal("the checksums do not see the changes made after the backup")
			}
			lines := p.restoreTest(t)
			// users= counts every account the dump holds: ours (3) and those other tests on the
			// shared server created after this test listed MARIADB_SYSTEM_USERS.
			var users int
			if _, err := fmt.Sscanf(lines["mariadb"][strings.Index(lines["mariadb"], " users=")+1:], "users=%d", &users); err != nil ||
				!strings.Contains(lines["mariadb"], " tables=3 ") || users < 3 || !strings.Contains(lines["mariadb"], " canary=ok") {
				t.Errorf("restore-test.log: %s", lines["mariadb"])
			}

			// The disaster path: in place (--force), with the accounts and grants.
			restoreOut := p.must(t, nil, "restore.sh", "mariadb", "--force")
			if got := abMySums(t, src.Name, reader); fmt.Sprint(got) != fmt.Sprint(want) {
				// The server is shared with other packages' tests: the scripts' logs say
				// whether the dump left an account out or the restore skipped one.
				t.Errorf("the restored database differs from the source at backup time:\n got %v\nwant %v\nbackup.sh:\n%s\nrestore.sh --force:\n%s",
					got, want, backupOut, restoreOut)
			}
			if !strings.Contains(want["grants"], "GRANT SELECT, UPDATE (`notiz`) ON `"+src.Name+"`.`Bücher` TO") || len(want) != 6 {
				t.Errorf("the checksums miss the test's tables or grant: %v", want)
			}
			if redis != nil {
				redis.restored(t, p, redisWant)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// Redis: adopt found no password on the team's cache, so the test's runs without one.

type abRedis struct{ port int }

func (r *abRedis) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.port)}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(string(out), "ERR") {
		t.Fatalf("redis-cli %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// abRedisServer starts a private redis-server on dir (loading its dump.rdb, if any).
func abRedisServer(t *testing.T, dir string) *abRedis {
	t.Helper()
	r := &abRedis{port: e2eutil.FreePort(t)}
	e2eutil.StartProc(t, exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--enable-debug-command", "local"), r.port)
	for i := 0; ; i++ {
		if out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(r.port), "PING").Output(); strings.TrimSpace(string(out)) == "PONG" {
			return r
		}
		if i == 300 {
			t.Fatalf("redis-server on %d did not answer PING", r.port)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// abStartRedis starts the project's cache with data in two databases and points the
// adopted scripts at it.
func abStartRedis(t *testing.T, p *abProject) *abRedis {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli", "redis-check-rdb"} {
		e2eutil.RequireTool(t, tool)
	}
	if p.conf["REDIS_PASSWORD_FILE"] != "" {
		t.Fatalf("backup.env: REDIS_PASSWORD_FILE=%q, but the team's cache has no password", p.conf["REDIS_PASSWORD_FILE"])
	}
	dir := p.path("redis-live")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := abRedisServer(t, dir)
	for i := 0; i < 200; i++ {
		r.cli(t, "SET", fmt.Sprintf("schlüssel:%d", i), fmt.Sprintf("wert ü %d\n\"x\"", i))
	}
	r.cli(t, "HSET", "sitzung", "benutzer", "jörg", "rolle", "admin")
	r.cli(t, "RPUSH", "warteschlange", "a", "b", "a")
	r.cli(t, "ZADD", "rang", "1.5", "eins", "2", "zwei")
	r.cli(t, "-n", "3", "SET", "mit ttl", "eine Stunde", "EX", "3600")
	r.cli(t, "-n", "3", "SADD", "menge", "x", "y")
	p.env = append(p.env, "REDIS_HOST=127.0.0.1", "REDIS_PORT="+strconv.Itoa(r.port))
	return r
}

// restored restores the newest Redis backup with restore.sh into a new directory, loads it
// into a redis-server of its own and compares its DEBUG DIGEST with want.
func (r *abRedis) restored(t *testing.T, p *abProject, want string) {
	t.Helper()
	dir := p.path("redis-restored")
	p.must(t, nil, "restore.sh", "redis", "--target-dir", dir)
	if got := abRedisServer(t, dir).cli(t, "DEBUG", "DIGEST"); got != want || len(want) != 40 || strings.Trim(want, "0") == "" {
		t.Errorf("the restored Redis has digest %s, the cache at backup time %s", got, want)
	}
	if now := r.cli(t, "DEBUG", "DIGEST"); now == want {
		t.Errorf("the digest does not see the key written after the backup")
	}
}
