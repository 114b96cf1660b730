package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// rolPg is one test's instance, set up as a database of opsready 1.5 or older: the image's
// superuser app owns the database app and everything the migrations created in it.
type rolPg struct {
	t    *testing.T
	in   *e2eutil.PGInstance
	proj string
	dir  string            // this test's copies of the secret files
	pw   map[string]string // role -> password
	env  []string
}

func rolPgNew(t *testing.T) *rolPg {
	t.Helper()
	e2eutil.RequireTool(t, "psql")
	proj := e2eutil.Generate(t, map[string]string{"db": "postgres"})
	c := &rolPg{t: t, proj: proj, dir: t.TempDir(), pw: map[string]string{}}
	// Awkward passwords: SQL quotes, a backslash, psql's variable syntax, non-ASCII.
	for role, file := range map[string]string{"app": "db_password", "app_rw": "db_rw_password",
		"app_migrate": "db_migrate_password", "app_monitor": "db_monitor_password"} {
		pw := strings.TrimSpace(e2eutil.ReadFile(t, filepath.Join(proj, "secrets", file)))
		if role != "app" {
			pw += `'q"\:x ü`
		}
		c.pw[role] = pw
		c.writeSecret(file, pw+"\n")
	}
	c.in = e2eutil.StartPostgres(t, "app", c.pw["app"], "app", "other")
	c.env = []string{"PATH=" + os.Getenv("PATH"), "DB_HOST=127.0.0.1", fmt.Sprintf("DB_PORT=%d", c.in.Port),
		"DB_ADMIN_PASSWORD_FILE=" + filepath.Join(c.dir, "db_password"),
		"DB_APP_PASSWORD_FILE=" + filepath.Join(c.dir, "db_rw_password"),
		"DB_MIGRATE_PASSWORD_FILE=" + filepath.Join(c.dir, "db_migrate_password"),
		"DB_MONITOR_PASSWORD_FILE=" + filepath.Join(c.dir, "db_monitor_password"),
		"DB_WAIT_SECONDS=20"}
	return c
}

func (c *rolPg) writeSecret(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// super runs sql as the superuser.
func (c *rolPg) super(db, sql string) string {
	c.t.Helper()
	return c.in.MustSQL(c.t, "app", c.pw["app"], db, sql)
}

// as runs sql as role (its current password) and returns the error.
func (c *rolPg) as(role, db, sql string) (string, error) {
	return c.in.SQL(role, c.pw[role], db, sql)
}

// roles runs the generated ops/db/roles.sh with the test's settings and extra.
func (c *rolPg) roles(extra ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command("bash", filepath.Join(c.proj, "ops", "db", "roles.sh"))
	cmd.Env = append(append([]string{}, c.env...), extra...)
	cmd.Dir = c.dir
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("roles.sh did not finish in 5 minutes:\n%s", out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("roles.sh: %v", err)
	}
	return string(out), 0
}

func (c *rolPg) mustRoles(extra ...string) string {
	c.t.Helper()
	out, code := c.roles(extra...)
	if code != 0 {
		c.t.Fatalf("roles.sh exited %d:\n%s", code, out)
	}
	return out
}

// rolPgLegacySQL is what a 1.x project had: the migrations and the application, all as the
// superuser app, with objects that are awkward to move: a view calling a function, a trigger,
// an identity column, a serial, an enum, a domain, a materialized view, a large object,
// non-ASCII data, an extension's objects (which must stay the extension's).
const rolPgLegacySQL = `
CREATE EXTENSION pg_trgm;
CREATE TYPE mood AS ENUM ('ok', 'bad');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, mood mood DEFAULT 'ok', qty posint DEFAULT 1,
	updated timestamptz);
CREATE TABLE audit (id int GENERATED ALWAYS AS IDENTITY, item bigint, at text);
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) || '!' $$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated := '2026-01-01'; INSERT INTO audit (item, at) VALUES (NEW.id, 'touched'); RETURN NEW; END $$;
CREATE TRIGGER items_touch BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW loud_items AS SELECT id, shout(name) AS name FROM items;
CREATE MATERIALIZED VIEW item_count AS SELECT count(*) AS n FROM items;
CREATE TABLE schema_migrations (version bigint PRIMARY KEY);
INSERT INTO schema_migrations VALUES (1), (2);
INSERT INTO items (name) SELECT 'Ёлка №' || g || ' 🎄' FROM generate_series(1, 500) g;
SELECT lo_from_bytea(424242, convert_to('большой объект', 'UTF8'));
`

// rolPgSumSQL is a checksum of the content of every table of schema public (and the large
// objects), not of row counts.
const rolPgSumSQL = `SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
	SELECT 'items:' || md5(string_agg(i::text, ',' ORDER BY i.id)) AS t FROM items i
	UNION ALL SELECT 'audit:' || md5(string_agg(a::text, ',' ORDER BY a.id)) FROM audit a
	UNION ALL SELECT 'migrations:' || md5(string_agg(version::text, ',' ORDER BY version)) FROM schema_migrations
	UNION ALL SELECT 'lo:' || md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid)) FROM pg_largeobject_metadata) s`

// rolPgCatalogSQL snapshots everything roles.sh may change but passwords: role attributes and
// memberships, database and schema ACLs, owners and ACLs of every object of schema public,
// default privileges and large objects' owners.
const rolPgCatalogSQL = `SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	SELECT 'role ' || rolname || ' ' || rolsuper || rolcreaterole || rolcreatedb || rolcanlogin || rolreplication || rolbypassrls || rolconnlimit
		|| coalesce(rolvaliduntil::text, '-') FROM pg_roles WHERE rolname !~ '^pg_'
	UNION ALL SELECT 'member ' || m.rolname || ' in ' || g.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid
	UNION ALL SELECT 'db ' || datname || ' ' || pg_get_userbyid(datdba) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(datacl) a), '-') FROM pg_database
	UNION ALL SELECT 'schema ' || nspname || ' ' || pg_get_userbyid(nspowner) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(nspacl) a), '-') FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
	UNION ALL SELECT 'rel ' || c.relname || ' ' || pg_get_userbyid(c.relowner) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a), '-') FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
	UNION ALL SELECT 'proc ' || p.oid::regprocedure || ' ' || pg_get_userbyid(p.proowner) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a), '-') FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
	UNION ALL SELECT 'type ' || t.typname || ' ' || pg_get_userbyid(t.typowner) FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace
	UNION ALL SELECT 'default ' || pg_get_userbyid(defaclrole) || ' ' || defaclobjtype::text || ' ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(defaclacl) a) FROM pg_default_acl
	UNION ALL SELECT 'lo ' || oid || ' ' || pg_get_userbyid(lomowner) || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(lomacl) a), '-') FROM pg_largeobject_metadata) s(x)`

// rolPgMust asserts that sql as role on db succeeds, and returns its output.
func (c *rolPg) must(role, db, sql string) string {
	c.t.Helper()
	out, err := c.as(role, db, sql)
	if err != nil {
		c.t.Errorf("as %s on %s, %q failed: %v", role, db, sql, err)
	}
	return out
}

// refused asserts that sql as role on db fails with an error containing want.
func (c *rolPg) refused(role, db, sql, want string) {
	c.t.Helper()
	out, err := c.as(role, db, sql)
	if err == nil {
		c.t.Errorf("as %s on %s, %q succeeded (%q); it must be refused", role, db, sql, out)
	} else if !strings.Contains(err.Error(), want) {
		c.t.Errorf("as %s on %s, %q: %v; want an error containing %q", role, db, sql, err, want)
	}
}

// TestRolPgUpgradeFrom1x runs roles.sh on a database as opsready 1.5 left it, and checks
// what each role can and cannot do, that no data changed, that a second run changes nothing
// and that privileges granted by hand do not survive a run.
func TestRolPgUpgradeFrom1x(t *testing.T) {
	t.Parallel()
	c := rolPgNew(t)
	c.super("app", rolPgLegacySQL)
	c.super("other", "CREATE TABLE payroll (who text, amount int); INSERT INTO payroll VALUES ('ceo', 1000000);")
	sum := c.super("app", rolPgSumSQL)

	out := c.mustRoles()
	for _, want := range []string{"app_rw: created", "app_migrate: created", "app_monitor: created",
		"app_migrate: took over 9 objects of schema public from app", "app_rw: took over 1 large objects",
		"as docs/database-roles.md says"} {
		if !strings.Contains(out, want) {
			t.Errorf("roles.sh output lacks %q:\n%s", want, out)
		}
	}
	for _, pw := range c.pw {
		if strings.Contains(out, pw) {
			t.Errorf("roles.sh printed a password:\n%s", out)
		}
	}
	if strings.Contains(c.in.Log(), c.pw["app_rw"]) {
		t.Errorf("the server log holds app_rw's password")
	}
	if got := c.super("app", rolPgSumSQL); got != sum {
		t.Errorf("content checksum %s after roles.sh, %s before", got, sum)
	}
	// Nothing of the application is the superuser's any more; the extension's objects are.
	if got := c.super("app", `SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relowner = 'app'::regrole
		AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = pg_class.oid AND d.deptype = 'e')`); got != "0" {
		t.Errorf("%s relations of schema public still owned by app", got)
	}
	if got := c.super("app", `SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'similarity'`); got != "app" {
		t.Errorf("pg_trgm's similarity() is owned by %q, want the extension's owner app", got)
	}

	// The application: data yes, through the trigger, the view calling a function, the
	// sequences; structure, roles, other databases, server files and programs no.
	if got := c.must("app_rw", "app", "INSERT INTO items (name) VALUES ('новый') RETURNING updated::date"); got != "2026-01-01" {
		t.Errorf("insert through the trigger as app_rw: %q", got)
	}
	c.must("app_rw", "app", "UPDATE items SET qty = 2 WHERE id = 1; DELETE FROM items WHERE id = 2; SELECT * FROM loud_items LIMIT 1; SELECT n FROM item_count;")
	if got := c.must("app_rw", "app", "SELECT convert_from(lo_get(424242), 'UTF8')"); got != "большой объект" {
		t.Errorf("app_rw reads its large object: %q", got)
	}
	c.must("app_rw", "app", "SELECT lo_unlink(lo_from_bytea(0, 'x'))")
	c.refused("app_rw", "app", "CREATE TABLE evil (x int)", "permission denied for schema public")
	c.refused("app_rw", "app", "ALTER TABLE items ADD COLUMN evil int", "must be owner")
	c.refused("app_rw", "app", "TRUNCATE items", "permission denied")
	c.refused("app_rw", "app", "DROP VIEW loud_items", "must be owner")
	c.refused("app_rw", "app", "CREATE ROLE evil", "permission denied to create role")
	c.refused("app_rw", "app", "CREATE DATABASE evil", "permission denied to create database")
	c.refused("app_rw", "other", "SELECT * FROM payroll", "permission denied for database")
	c.refused("app_rw", "postgres", "SELECT 1", "permission denied for database")
	c.refused("app_rw", "app", "COPY items TO PROGRAM 'id'", "pg_execute_server_program")
	c.refused("app_rw", "app", "SELECT pg_read_file('/etc/passwd')", "permission denied")
	c.refused("app_rw", "app", "GRANT app_migrate TO app_rw", "must have admin option")
	// Migrations: structure of their schema; what they create is the application's to use.
	c.must("app_migrate", "app", "CREATE TABLE orders (id serial PRIMARY KEY, item bigint REFERENCES items, note text); ALTER TABLE items ADD COLUMN sku text; CREATE INDEX ON items (sku); INSERT INTO schema_migrations VALUES (3);")
	if got := c.must("app_rw", "app", "INSERT INTO orders (item, note) VALUES (1, 'ü') RETURNING id"); got != "1" {
		t.Errorf("app_rw inserting into a table app_migrate created later: %q", got)
	}
	c.refused("app_migrate", "app", "CREATE ROLE evil", "permission denied to create role")
	c.refused("app_migrate", "other", "SELECT 1", "permission denied for database")
	c.refused("app_migrate", "app", "COPY items TO PROGRAM 'id'", "pg_execute_server_program")
	// The exporter's role: statistics, not data.
	if got := c.must("app_monitor", "app", "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'app' AND query <> '<insufficient privilege>'"); got != "f" && got != "t" {
		t.Errorf("pg_stat_activity as app_monitor: %q", got)
	}
	c.must("app_monitor", "app", "SELECT pg_database_size('other'), count(*) FROM pg_ls_waldir()")
	c.refused("app_monitor", "app", "SELECT * FROM public.items", "permission denied for schema public")

	// Idempotent: the second run changes nothing (passwords included: they already work).
	before := c.super("app", rolPgCatalogSQL)
	verifier := c.super("app", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'")
	out = c.mustRoles()
	if strings.Contains(out, "created") || strings.Contains(out, "took over") || strings.Contains(out, "password set") {
		t.Errorf("a second run reports changes:\n%s", out)
	}
	if after := c.super("app", rolPgCatalogSQL); after != before {
		t.Errorf("a second run changed the catalog:\n%s", rolDiff(before, after))
	}
	if got := c.super("app", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_rw'"); got != verifier {
		t.Errorf("a second run reset app_rw's password verifier")
	}

	// Privileges granted by hand are taken back by the next run.
	c.super("app", `GRANT TRUNCATE, TRIGGER ON items TO app_rw; GRANT CREATE ON SCHEMA public TO app_rw;
		GRANT pg_execute_server_program, pg_read_all_data TO app_rw; ALTER ROLE app_migrate CREATEROLE;
		GRANT CONNECT ON DATABASE other TO app_rw; GRANT SELECT ON items TO app_monitor; GRANT ALL ON DATABASE app TO PUBLIC;`)
	out = c.mustRoles()
	if !strings.Contains(out, "membership in pg_execute_server_program revoked") {
		t.Errorf("the rerun does not report the revoked membership:\n%s", out)
	}
	if after := c.super("app", rolPgCatalogSQL); after != before {
		t.Errorf("privileges granted by hand survived a run:\n%s", rolDiff(before, after))
	}
	c.refused("app_rw", "app", "COPY items TO PROGRAM 'id'", "pg_execute_server_program")
	c.refused("app_rw", "other", "SELECT * FROM payroll", "permission denied for database")

	// A rotated secret file: the new password logs in, the old one no longer does.
	old := c.pw["app_rw"]
	c.pw["app_rw"] = "rotated-" + old
	c.writeSecret("db_rw_password", c.pw["app_rw"]+"\n")
	if out = c.mustRoles(); !strings.Contains(out, "app_rw: password set") || !strings.Contains(out, "app_migrate: password unchanged") {
		t.Errorf("rotation run output:\n%s", out)
	}
	c.must("app_rw", "app", "SELECT 1")
	if _, err := c.in.SQL("app_rw", old, "app", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("app_rw's old password after the rotation: %v, want a refused login", err)
	}
}

// TestRolPgNewDatabase runs roles.sh on a fresh database, as a new project's first `up` does:
// the migrations then run as app_migrate.
func TestRolPgNewDatabase(t *testing.T) {
	t.Parallel()
	c := rolPgNew(t)
	out := c.mustRoles()
	if strings.Contains(out, "took over") {
		t.Errorf("a fresh database has nothing to take over:\n%s", out)
	}
	for _, f := range e2eutil.ReadDirNames(t, filepath.Join(c.proj, "backend", "migrations")) {
		c.must("app_migrate", "app", e2eutil.ReadFile(t, filepath.Join(c.proj, "backend", "migrations", f)))
	}
	if got := c.super("app", "SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class WHERE relnamespace = 'public'::regnamespace"); got != "app_migrate" {
		t.Errorf("owners of the migrated tables: %q, want app_migrate", got)
	}
	c.must("app_rw", "app", "INSERT INTO items (name) VALUES ('x'); SELECT count(*) FROM items;")
}

// TestRolPgRefusals checks every refusal: roles.sh exits non-zero, says why, and changed
// nothing; a failure in the middle of the run (a lock it cannot get) rolls everything back.
func TestRolPgRefusals(t *testing.T) {
	t.Parallel()
	c := rolPgNew(t)
	c.super("app", rolPgLegacySQL)
	c.super("postgres", "CREATE ROLE plain LOGIN PASSWORD 'plainpw'")
	catalog := c.super("app", rolPgCatalogSQL)
	missing := filepath.Join(c.dir, "nope")
	c.writeSecret("empty", "\n")
	c.writeSecret("two-lines", "a\nb\n")
	c.writeSecret("wrong", "not-the-password\n")
	c.writeSecret("monitor-pw", c.pw["app_monitor"])
	c.writeSecret("plain", "plainpw")
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"missing password file", []string{"DB_APP_PASSWORD_FILE=" + missing}, "DB_APP_PASSWORD_FILE: cannot read " + missing},
		{"empty password file", []string{"DB_MIGRATE_PASSWORD_FILE=" + filepath.Join(c.dir, "empty")}, "is empty"},
		{"two-line password file", []string{"DB_MONITOR_PASSWORD_FILE=" + filepath.Join(c.dir, "two-lines")}, "more than one line"},
		{"wrong superuser password", []string{"DB_ADMIN_PASSWORD_FILE=" + filepath.Join(c.dir, "wrong")}, "cannot log in to 127.0.0.1"},
		{"not a superuser", []string{"DB_ADMIN_USER=plain", "DB_ADMIN_PASSWORD_FILE=" + filepath.Join(c.dir, "plain")}, "plain is not a superuser"},
		{"no such database", []string{"DB_NAME=nodb"}, "database nodb does not exist"},
		{"a name that is not plain", []string{"DB_APP_USER=app rw"}, "DB_APP_USER: 'app rw' is not a lower-case name"},
		{"two roles with one name", []string{"DB_MONITOR_USER=app_rw"}, "every role needs its own name"},
		{"server down", []string{fmt.Sprintf("DB_PORT=%d", e2eutil.FreePort(t)), "DB_WAIT_SECONDS=2"}, "no answer from 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := c.roles(tc.extra...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want non-zero with %q:\n%s", code, tc.want, out)
			}
			if got := c.super("app", rolPgCatalogSQL); got != catalog {
				t.Errorf("the refused run changed the catalog:\n%s", rolDiff(catalog, got))
			}
		})
	}

	// A table locked by a long transaction: ALTER TABLE ... OWNER cannot get its lock, the run
	// fails after the roles were created and the other objects moved, and all of it rolls back.
	t.Run("lock timeout in the middle", func(t *testing.T) {
		locker := exec.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-p", fmt.Sprint(c.in.Port), "-U", "app", "-d", "app")
		locker.Env = []string{"PATH=" + os.Getenv("PATH"), "PGPASSWORD=" + c.pw["app"]}
		stdin, err := locker.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := locker.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = stdin.Close(); _ = locker.Wait() }()
		fmt.Fprintln(stdin, "BEGIN; LOCK TABLE audit IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);")
		c.in.WaitSQL(t, "app", c.pw["app"], "app", "SELECT count(*) FROM pg_locks WHERE relation = 'audit'::regclass AND mode = 'AccessExclusiveLock' AND granted", "1")
		out, code := c.roles("PGOPTIONS=-c lock_timeout=1s")
		if code == 0 || !strings.Contains(out, "lock timeout") || !strings.Contains(out, "the roles were not changed") {
			t.Errorf("exit %d, want a failure naming the lock timeout:\n%s", code, out)
		}
		// The server notices a gone client only when it talks to it: end the session itself.
		c.super("app", "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE relation = 'audit'::regclass AND mode = 'AccessExclusiveLock'")
		if got := c.super("app", rolPgCatalogSQL); got != catalog {
			t.Errorf("a run that failed in the middle left changes:\n%s", rolDiff(catalog, got))
		}
		if got := c.super("app", "SELECT count(*) FROM pg_roles WHERE rolname IN ('app_rw', 'app_migrate', 'app_monitor')"); got != "0" {
			t.Errorf("%s roles exist after the failed run, want none", got)
		}
	})
	// And after all that, a normal run succeeds.
	c.mustRoles()
}

// rolDiff lists the lines only in want (-) and only in got (+).
func rolDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var d []string
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}
