package roles

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The services of a generated project with the roles of ops/db/roles.sh, each on an instance
// of its own that starts as a database of opsready 1.5 or older (everything made and owned by
// the superuser app) and is then brought to the roles: postgres_exporter's queries as
// app_monitor (TestRolPgSvcExporter), the backends' migrate as app_migrate and server as
// app_rw (TestRolPgSvcBackend), and the logical backup, restore test and restore as the
// superuser, with the roles' grants surviving the restore (TestRolPgSvcBackup).

// rpsRoles maps each secret file roles.sh reads to the role that logs in with it.
var rpsRoles = [][2]string{
	{"db_password", "app"},
	{"db_rw_password", "app_rw"},
	{"db_migrate_password", "app_migrate"},
	{"db_monitor_password", "app_monitor"},
}

// rpsDB is a generated project and the PostgreSQL instance its roles live on.
type rpsDB struct {
	pg    *e2eutil.PGInstance
	proj  string
	files map[string]string // role -> the secret file with its password
	pw    map[string]string // role -> password
}

// rpsAwkward is a password that breaks naive quoting in SQL, shell, URLs and conninfo strings.
func rpsAwkward(role string) string {
	return `it's "` + role + `" \back\slash ü€日本 %41 @:/?#&=+$` + "`x`;"
}

// rpsStart generates a project with set (db=postgres), starts an instance whose superuser
// app has the project's secrets/db_password (as the image's POSTGRES_USER does), and
// prepares the roles' password files: the generated secret files, or, with awkward or
// while the project has none, files of their own holding rpsAwkward passwords.
func rpsStart(t *testing.T, set map[string]string, awkward bool) *rpsDB {
	t.Helper()
	d := &rpsDB{proj: e2eutil.Generate(t, set), files: map[string]string{}, pw: map[string]string{}}
	dir := t.TempDir()
	for _, sr := range rpsRoles {
		secret, role := sr[0], sr[1]
		file := filepath.Join(d.proj, "secrets", secret)
		b, err := os.ReadFile(file)
		if role != "app" && (awkward || err != nil) {
			file = filepath.Join(dir, secret)
			b = []byte(rpsAwkward(role) + "\n")
			err = os.WriteFile(file, b, 0o600)
		}
		if err != nil {
			t.Fatalf("secret %s: %v", secret, err)
		}
		d.files[role], d.pw[role] = file, strings.TrimRight(string(b), "\n")
	}
	d.pg = e2eutil.StartPostgres(t, "app", d.pw["app"], "app")
	return d
}

// sql runs sql as role on database db of the instance.
func (d *rpsDB) sql(role, db, sql string) (string, error) { return d.pg.SQL(role, d.pw[role], db, sql) }

// must runs sql as role on database db and fails the test on an error.
func (d *rpsDB) must(t *testing.T, role, db, sql string) string {
	t.Helper()
	return d.pg.MustSQL(t, role, d.pw[role], db, sql)
}

// rpsLegacySQL is the database an opsready 1.5 project left behind: the backend migrated
// and served as the superuser app, so app owns the items table (migrations/0001), its
// sequence and schema_migrations.
const rpsLegacySQL = `
CREATE TABLE items (
    id         BIGSERIAL PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX items_created_at_idx ON items (created_at DESC);
CREATE TABLE schema_migrations (version VARCHAR(255) PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
INSERT INTO schema_migrations (version) VALUES ('0001_create_items');
INSERT INTO items (name, created_at) VALUES ('legacy 1.5 ü', '2025-06-01 12:00:00+00'), ('legacy 1.5 日本', '2025-06-02 12:00:00+00');
`

// runRoles runs the generated ops/db/roles.sh against the instance as the db-roles service
// does, bounded to two minutes, and returns its output.
func (d *rpsDB) runRoles(t *testing.T) string {
	t.Helper()
	e2eutil.RequireTool(t, "bash")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.proj, "ops", "db", "roles.sh"))
	cmd.Dir = d.proj
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8",
		"DB_HOST=127.0.0.1", "DB_PORT=" + strconv.Itoa(d.pg.Port), "DB_NAME=app", "DB_WAIT_SECONDS=30",
		"PG_BINDIR=" + d.pg.BinDir,
		"DB_ADMIN_PASSWORD_FILE=" + d.files["app"],
		"DB_APP_PASSWORD_FILE=" + d.files["app_rw"],
		"DB_MIGRATE_PASSWORD_FILE=" + d.files["app_migrate"],
		"DB_MONITOR_PASSWORD_FILE=" + d.files["app_monitor"]}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ops/db/roles.sh: %v\n%s", err, out)
	}
	t.Logf("ops/db/roles.sh: %s", time.Since(start).Round(time.Millisecond))
	return string(out)
}

// rpsPostgresUser returns the credential a PostgreSQL server process needs when the test
// runs as root (it refuses root), else nil.
func rpsPostgresUser(t *testing.T) *syscall.SysProcAttr {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root, a PostgreSQL standby needs a user postgres: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}

// startStandby clones the instance with pg_basebackup (as app, through the physical slot
// rps_standby) and starts it as a streaming hot standby on a port of its own; it returns the
// standby's port once the primary reports it streaming. Stopped when the test ends.
func (d *rpsDB) startStandby(t *testing.T) int {
	t.Helper()
	attr := rpsPostgresUser(t)
	base := e2eutil.FastTempDir(t)
	if attr != nil {
		if err := os.Chown(base, int(attr.Credential.Uid), int(attr.Credential.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(base, "standby")
	run := func(what string, name string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(d.pg.BinDir, name), args...)
		cmd.SysProcAttr, cmd.Dir = attr, os.TempDir()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGPASSWORD=" + d.pw["app"]}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	run("pg_basebackup of the primary", "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(d.pg.Port), "-U", "app",
		"-D", data, "-R", "-X", "stream", "-C", "-S", "rps_standby", "--no-sync", "--checkpoint=fast")
	port := e2eutil.FreePort(t)
	run("start the standby", "pg_ctl", "-D", data, "-l", data+".log", "-w", "-t", "120", "-o",
		fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off", port, base), "start")
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(d.pg.BinDir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		cmd.SysProcAttr, cmd.Dir = attr, os.TempDir()
		_ = cmd.Run()
	})
	d.pg.WaitSQL(t, "app", d.pw["app"], "app", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", "1")
	return port
}

// rpsExporterQuery is one query postgres_exporter runs, and the collector that runs it.
type rpsExporterQuery struct{ collector, sql string }

// rpsExporterQueries are the queries of postgres_exporter v0.17.1 against PostgreSQL 13-16
// (the version-dependent ones as that version picks them), copied from the tag v0.17.1 of
// github.com/prometheus-community/postgres_exporter: the collectors enabled by default
// (collector/pg_database.go, pg_locks.go, pg_replication.go, pg_replication_slot.go,
// pg_roles.go, pg_stat_bgwriter.go, pg_stat_database.go, pg_stat_user_tables.go,
// pg_statio_user_tables.go, pg_wal.go), stat_wal_receiver (collector/pg_stat_walreceiver.go,
// enabled by --collector.stat_wal_receiver in the generated compose), the version probes
// (collector/instance.go, cmd/postgres_exporter/postgres_exporter.go) and the default
// metrics the compose does not disable (cmd/postgres_exporter/queries.go queryOverrides,
// postgres_exporter.go builtinMetricMaps queried as "SELECT * FROM <namespace>",
// pg_setting.go). pg_database's size query runs once per database: $1 is filled in.
var rpsExporterQueries = []rpsExporterQuery{
	{"instance.go", `SELECT version();`},
	{"instance.go", `SHOW server_version;`},
	{"pg_database.go", `SELECT pg_database.datname, pg_database.datconnlimit FROM pg_database;`},
	{"pg_database.go", `SELECT pg_database_size($1)`},
	{"pg_locks.go", `
		SELECT 
		  pg_database.datname as datname,
		  tmp.mode as mode,
		  COALESCE(count, 0) as count 
		FROM 
		  (
		    VALUES 
		      ('accesssharelock'), 
		      ('rowsharelock'), 
		      ('rowexclusivelock'), 
		      ('shareupdateexclusivelock'), 
		      ('sharelock'), 
		      ('sharerowexclusivelock'), 
		      ('exclusivelock'), 
		      ('accessexclusivelock'), 
		      ('sireadlock')
		  ) AS tmp(mode)
		  CROSS JOIN pg_database 
		  LEFT JOIN (
		    SELECT 
		      database, 
		      lower(mode) AS mode, 
		      count(*) AS count 
		    FROM 
		      pg_locks 
		    WHERE 
		      database IS NOT NULL 
		    GROUP BY 
		      database, 
		      lower(mode)
		  ) AS tmp2 ON tmp.mode = tmp2.mode 
		  and pg_database.oid = tmp2.database 
		ORDER BY 
		  1
	`},
	{"pg_replication.go", `SELECT
	CASE
		WHEN NOT pg_is_in_recovery() THEN 0
                WHEN pg_last_wal_receive_lsn () = pg_last_wal_replay_lsn () THEN 0
		ELSE GREATEST (0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())))
	END AS lag,
	CASE
		WHEN pg_is_in_recovery() THEN 1
		ELSE 0
	END as is_replica,
	GREATEST (0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))) as last_replay`},
	{"pg_replication_slot.go", `SELECT
		slot_name,
		slot_type,
		CASE WHEN pg_is_in_recovery() THEN
		    pg_last_wal_receive_lsn() - '0/0'
		ELSE
		    pg_current_wal_lsn() - '0/0'
		END AS current_wal_lsn,
		COALESCE(confirmed_flush_lsn, '0/0') - '0/0' AS confirmed_flush_lsn,
		active,
		safe_wal_size,
		wal_status
	FROM pg_replication_slots;`},
	{"pg_roles.go", `SELECT pg_roles.rolname, pg_roles.rolconnlimit FROM pg_roles`},
	{"pg_stat_bgwriter.go", `SELECT
		checkpoints_timed
		,checkpoints_req
		,checkpoint_write_time
		,checkpoint_sync_time
		,buffers_checkpoint
		,buffers_clean
		,maxwritten_clean
		,buffers_backend
		,buffers_backend_fsync
		,buffers_alloc
		,stats_reset
	FROM pg_stat_bgwriter;`},
	{"pg_stat_database.go", `SELECT datid,datname,numbackends,xact_commit,xact_rollback,blks_read,blks_hit,tup_returned,tup_fetched,tup_inserted,tup_updated,tup_deleted,conflicts,temp_files,temp_bytes,deadlocks,blk_read_time,blk_write_time,stats_reset,active_time FROM pg_stat_database;`},
	{"pg_stat_user_tables.go", `SELECT
		current_database() datname,
		schemaname,
		relname,
		seq_scan,
		seq_tup_read,
		idx_scan,
		idx_tup_fetch,
		n_tup_ins,
		n_tup_upd,
		n_tup_del,
		n_tup_hot_upd,
		n_live_tup,
		n_dead_tup,
		n_mod_since_analyze,
		COALESCE(last_vacuum, '1970-01-01Z') as last_vacuum,
		COALESCE(last_autovacuum, '1970-01-01Z') as last_autovacuum,
		COALESCE(last_analyze, '1970-01-01Z') as last_analyze,
		COALESCE(last_autoanalyze, '1970-01-01Z') as last_autoanalyze,
		vacuum_count,
		autovacuum_count,
		analyze_count,
		autoanalyze_count,
		pg_total_relation_size(relid) as total_size
	FROM
		pg_stat_user_tables`},
	{"pg_statio_user_tables.go", `SELECT
		current_database() datname,
		schemaname,
		relname,
		heap_blks_read,
		heap_blks_hit,
		idx_blks_read,
		idx_blks_hit,
		toast_blks_read,
		toast_blks_hit,
		tidx_blks_read,
		tidx_blks_hit
	FROM pg_statio_user_tables`},
	{"pg_wal.go", `
		SELECT
			COUNT(*) AS segments,
			SUM(size) AS size
		FROM pg_ls_waldir()
		WHERE name ~ '^[0-9A-F]{24}$'`},
	{"pg_stat_walreceiver.go", `
	SELECT
		column_name
	FROM information_schema.columns
	WHERE
		table_name = 'pg_stat_wal_receiver' and
		column_name = 'flushed_lsn'
	`},
	// pgStatWalReceiverQueryTemplate after fmt.Sprintf with the flushed_lsn line.
	{"pg_stat_walreceiver.go", `
	SELECT
		trim(both '''' from substring(conninfo from 'host=([^ ]*)')) as upstream_host,
		slot_name,
		status,
		(receive_start_lsn- '0/0') % (2^52)::bigint as receive_start_lsn,
		(flushed_lsn - '0/0') % (2^52)::bigint as flushed_lsn,

receive_start_tli,
		received_tli,
		extract(epoch from last_msg_send_time) as last_msg_send_time,
		extract(epoch from last_msg_receipt_time) as last_msg_receipt_time,
		(latest_end_lsn - '0/0') % (2^52)::bigint as latest_end_lsn,
		extract(epoch from latest_end_time) as latest_end_time,
		substring(slot_name from 'repmgr_slot_([0-9]*)') as upstream_node
	FROM pg_catalog.pg_stat_wal_receiver
	`},
	{"pg_setting.go", `SELECT name, setting, COALESCE(unit, ''), short_desc, vartype FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real') AND name != 'sync_commit_cancel_wait';`},
	{"postgres_exporter.go pg_stat_database_conflicts", `SELECT * FROM pg_stat_database_conflicts;`},
	{"queries.go pg_stat_replication", `
			SELECT *,
				(case pg_is_in_recovery() when 't' then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end) AS pg_current_wal_lsn,
				(case pg_is_in_recovery() when 't' then pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_lsn('0/0'))::float else pg_wal_lsn_diff(pg_current_wal_lsn(), pg_lsn('0/0'))::float end) AS pg_current_wal_lsn_bytes,
				(case pg_is_in_recovery() when 't' then pg_wal_lsn_diff(pg_last_wal_receive_lsn(), replay_lsn)::float else pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float end) AS pg_wal_lsn_diff
			FROM pg_stat_replication
			`},
	{"queries.go pg_replication_slots", `
			SELECT slot_name, database, active,
				(case pg_is_in_recovery() when 't' then pg_wal_lsn_diff(pg_last_wal_receive_lsn(), restart_lsn) else pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) end) as pg_wal_lsn_diff
			FROM pg_replication_slots
			`},
	{"queries.go pg_stat_archiver", `
			SELECT *,
				extract(epoch from now() - last_archived_time) AS last_archive_age
			FROM pg_stat_archiver
			`},
	{"queries.go pg_stat_activity", `
			SELECT
				pg_database.datname,
				tmp.state,
				tmp2.usename,
				tmp2.application_name,
				tmp2.backend_type,
				tmp2.wait_event_type,
				tmp2.wait_event,
				COALESCE(count,0) as count,
				COALESCE(max_tx_duration,0) as max_tx_duration
			FROM
				(
				  VALUES ('active'),
				  		 ('idle'),
				  		 ('idle in transaction'),
				  		 ('idle in transaction (aborted)'),
				  		 ('fastpath function call'),
				  		 ('disabled')
				) AS tmp(state) CROSS JOIN pg_database
			LEFT JOIN
			(
				SELECT
					datname,
					state,
					usename,
					application_name,
					backend_type,
					wait_event_type,
					wait_event,
					count(*) AS count,
					MAX(EXTRACT(EPOCH FROM now() - xact_start))::float AS max_tx_duration
				FROM pg_stat_activity
				GROUP BY datname,state,usename,application_name,backend_type,wait_event_type,wait_event) AS tmp2
				ON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname
			`},
}

// exporterQueries runs every exporter query as role on database app of the server at port
// (pg_database_size once per database, as the collector does) and returns the errors by
// query, empty when all succeeded.
func (d *rpsDB) exporterQueries(t *testing.T, role string, port int) []string {
	t.Helper()
	var errs []string
	for _, q := range rpsExporterQueries {
		sqls := []string{q.sql}
		if strings.Contains(q.sql, "$1") {
			sqls = nil
			for _, db := range strings.Fields(d.must(t, "app", "app", "SELECT datname FROM pg_database ORDER BY 1")) {
				sqls = append(sqls, strings.ReplaceAll(q.sql, "$1", "'"+db+"'"))
			}
		}
		for _, sql := range sqls {
			if _, err := rpsSQLAt(d.pg, port, role, d.pw[role], "app", sql); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", q.collector, err))
			}
		}
	}
	return errs
}

// rpsSQLAt is PGInstance.SQL against another server of the instance's binaries (the standby).
func rpsSQLAt(pg *e2eutil.PGInstance, port int, user, password, db, sql string) (string, error) {
	other := *pg
	other.Port = port
	return other.SQL(user, password, db, sql)
}

// TestRolPgSvcExporter proves that app_monitor (pg_monitor) is enough for postgres_exporter
// v0.17.1 as the generated compose runs it (default collectors, --collector.stat_wal_receiver,
// default metrics) on the primary and on a streaming standby: no query fails, and what
// pg_monitor unlocks has real values (another role's query text, pg_stat_replication's
// positions, the WAL receiver, pg_ls_waldir, the size of databases app_monitor cannot
// connect to, every setting). It also proves that app_rw is not enough for any of those, so
// the exporter logging in as the application would be caught.
func TestRolPgSvcExporter(t *testing.T) {
	t.Parallel()
	start := time.Now()
	d := rpsStart(t, map[string]string{"db": "postgres"}, false)
	d.must(t, "app", "app", rpsLegacySQL)
	d.runRoles(t)
	standby := d.startStandby(t)

	if bin, err := exec.LookPath("postgres_exporter"); err == nil {
		rpsRunExporter(t, d, bin)
	} else {
		t.Logf("postgres_exporter is not installed (its module cannot be fetched here): its v0.17.1 queries are run as app_monitor instead")
	}

	// A session of the superuser (the backup's role) whose query text pg_monitor must reveal.
	const marker = "rps-exporter-marker"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	sleeper := exec.CommandContext(ctx, "psql", "-X", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(d.pg.Port), "-U", "app", "-d", "app",
		"-c", "SELECT pg_sleep(120) /* "+marker+" */")
	sleeper.Env = []string{"PATH=" + os.Getenv("PATH"), "PGPASSWORD=" + d.pw["app"]}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = sleeper.Wait() })
	seen := "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%" + marker + " */'"
	d.pg.WaitSQL(t, "app", d.pw["app"], "app", seen, "1")
	pid := d.must(t, "app", "app", "SELECT pid FROM pg_stat_activity WHERE query LIKE '%"+marker+" */'")

	for _, srv := range []struct {
		name string
		port int
	}{{"primary", d.pg.Port}, {"standby", standby}} {
		if errs := d.exporterQueries(t, "app_monitor", srv.port); len(errs) > 0 {
			t.Errorf("postgres_exporter v0.17.1 queries as app_monitor on the %s failed:\n%s", srv.name, strings.Join(errs, "\n"))
		}
	}

	// What pg_monitor unlocks, as app_monitor and (not enough, where it tells them apart) as app_rw.
	type check struct {
		what, sql string
		standby   bool
		monitor   func(string) bool // the answer app_monitor must get; app_rw must not, with rwFails
		rwFails   bool
	}
	exact := func(want string) func(string) bool { return func(got string) bool { return got == want } }
	positive := func(got string) bool { n, err := strconv.ParseInt(got, 10, 64); return err == nil && n > 0 }
	settings := d.must(t, "app", "app", "SELECT count(*) FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real') AND name != 'sync_commit_cancel_wait'")
	checks := []check{
		{"pg_stat_activity.query of the superuser's session (queries.go pg_stat_activity reads the view)",
			"SELECT query FROM pg_stat_activity WHERE pid = " + pid, false,
			exact("SELECT pg_sleep(120) /* " + marker + " */"), true},
		{"pg_stat_replication positions (queries.go pg_stat_replication)",
			"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sent_lsn IS NOT NULL AND replay_lsn IS NOT NULL AND client_addr = '127.0.0.1'", false,
			exact("1"), true},
		{"pg_stat_wal_receiver on the standby (pg_stat_walreceiver.go)",
			"SELECT trim(both '''' from substring(conninfo from 'host=([^ ]*)')) || ' ' || status || ' ' || slot_name FROM pg_stat_wal_receiver WHERE flushed_lsn IS NOT NULL", true,
			exact("127.0.0.1 streaming rps_standby"), true},
		{"pg_ls_waldir() segments (pg_wal.go)",
			"SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'", false, positive, true},
		{"pg_database_size of the database postgres, whose CONNECT roles.sh revoked from PUBLIC (pg_database.go)",
			"SELECT pg_database_size('postgres')", false, positive, true},
		{"pg_settings, every one the superuser sees (pg_setting.go)",
			"SELECT count(*) FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real') AND name != 'sync_commit_cancel_wait'", false,
			exact(settings), false},
		{"the stat_wal_receiver column probe finds flushed_lsn (pg_stat_walreceiver.go)",
			"SELECT column_name FROM information_schema.columns WHERE table_name = 'pg_stat_wal_receiver' and column_name = 'flushed_lsn'", true,
			exact("flushed_lsn"), false},
	}
	for _, c := range checks {
		port := d.pg.Port
		if c.standby {
			port = standby
		}
		got, err := rpsSQLAt(d.pg, port, "app_monitor", d.pw["app_monitor"], "app", c.sql)
		if err != nil || !c.monitor(got) {
			t.Errorf("%s as app_monitor: got %q (%v)", c.what, got, err)
		}
		got, err = rpsSQLAt(d.pg, port, "app_rw", d.pw["app_rw"], "app", c.sql)
		if ok := err == nil && c.monitor(got); ok && c.rwFails {
			t.Errorf("%s as app_rw: got %q, what only pg_monitor should give", c.what, got)
		} else if !ok {
			t.Logf("as app_rw, not enough: %s: got %q (%v)", c.what, got, err)
		}
	}
	// What the exporter logged in as the application would read instead.
	if got := d.must(t, "app_rw", "app", "SELECT query FROM pg_stat_activity WHERE pid = "+pid); got != "<insufficient privilege>" {
		t.Errorf("app_rw reads the superuser's query as %q, want <insufficient privilege>", got)
	}
	if errs := d.exporterQueries(t, "app_rw", d.pg.Port); len(errs) == 0 {
		t.Errorf("every postgres_exporter query succeeded as app_rw: app_monitor's grants are not what makes them work")
	} else {
		t.Logf("as app_rw, %d exporter queries fail, e.g. %s", len(errs), errs[0])
	}
	t.Logf("%d postgres_exporter v0.17.1 queries on primary and standby as app_monitor, %d pg_monitor checks: %s",
		len(rpsExporterQueries), len(checks), time.Since(start).Round(time.Millisecond))
}

// rpsRunExporter runs an installed postgres_exporter (it must be v0.17.1, the compose's) as
// app_monitor the way the compose does and requires every collector to succeed.
func rpsRunExporter(t *testing.T, d *rpsDB, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0.17.1") {
		e2eutil.Unavailable(t, fmt.Sprintf("%s is not version 0.17.1 (the compose's): %v %s", bin, err, out))
	}
	port := e2eutil.FreePort(t)
	cmd := exec.Command(bin, "--collector.stat_wal_receiver", "--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATA_SOURCE_URI=127.0.0.1:" + strconv.Itoa(d.pg.Port) + "/app?sslmode=disable",
		"DATA_SOURCE_USER=app_monitor", "DATA_SOURCE_PASS_FILE=" + d.files["app_monitor"]}
	p := e2eutil.StartProc(t, cmd, port)
	p.WaitStatus(t, "/metrics", http.StatusOK)
	_, body, _ := p.Do(t, "GET", "/metrics", "")
	metrics := string(body)
	if !strings.Contains(metrics, "\npg_up 1\n") {
		t.Errorf("postgres_exporter as app_monitor: no pg_up 1")
	}
	if fails := regexp.MustCompile(`(?m)^pg_scrape_collector_success\{collector="([^"]+)"\} 0$`).FindAllString(metrics, -1); len(fails) > 0 {
		t.Errorf("postgres_exporter as app_monitor: collectors failed: %v\n%s", fails, p.Out)
	}
	if strings.Contains(p.Out.String(), "permission denied") {
		t.Errorf("postgres_exporter as app_monitor logged a permission error:\n%s", p.Out)
	}
}

// rpsBackendEnv is the environment of a backend process: the test's, without variables that
// would change what the backend does, plus env.
func rpsBackendEnv(env ...string) []string {
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DB_") || strings.HasPrefix(k, "REDIS_") || strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "PYTHON") ||
			k == "PORT" || k == "MIGRATE_ON_START" || k == "MIGRATIONS_DIR" || k == "SHUTDOWN_TIMEOUT" || k == "LOG_LEVEL" {
			continue
		}
		base = append(base, kv)
	}
	return append(append(base, "PYTHONDONTWRITEBYTECODE=1"), env...)
}

// rpsMigration0002 is a later release's migration: a column on the table of 1.5 and a new
// table with a sequence, which app_rw must be able to use through the default privileges.
const rpsMigration0002 = `-- 0002 (test): a column and a table, as a later release adds them.
ALTER TABLE items ADD COLUMN IF NOT EXISTS note TEXT;
CREATE TABLE IF NOT EXISTS rps_tags (
    id      BIGSERIAL PRIMARY KEY,
    item_id BIGINT NOT NULL REFERENCES items (id),
    tag     VARCHAR(50) NOT NULL
);
`

// rpsPyModules are the modules the Python backend imports against PostgreSQL.
var rpsPyModules = []string{"fastapi", "uvicorn", "prometheus_client", "psycopg", "psycopg_pool"}

// TestRolPgSvcBackend proves, for each backend stub, on a database of opsready 1.5 brought to
// the roles: migrate as app_rw is refused (no DDL: the pending migration is not applied, the
// schema unchanged); migrate as app_migrate applies it (the new table and sequence owned by
// app_migrate, usable by app_rw through the default privileges); the server as app_rw is
// ready and creates and lists items (rows in the table, next to those of 1.5) and cannot
// change the schema. The passwords hold a quote, a backslash, URL delimiters and non-ASCII.
func TestRolPgSvcBackend(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"go", "node", "python"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			d := rpsStart(t, map[string]string{"db": "postgres", "backend": backend, "frontend": "none", "cache": "none"}, true)
			dir := filepath.Join(d.proj, "backend")
			var cmd func(env []string, args ...string) *exec.Cmd
			switch backend {
			case "go":
				bin := e2eutil.GoBinary(t, dir, "server") // migrations are read next to it, from dir/migrations
				cmd = func(env []string, args ...string) *exec.Cmd {
					c := exec.Command(bin, args...)
					c.Dir, c.Env = t.TempDir(), rpsBackendEnv(env...)
					return c
				}
			case "node":
				e2eutil.RequireTool(t, "node")
				e2eutil.NodeModules(t, dir)
				cmd = func(env []string, args ...string) *exec.Cmd {
					c := exec.Command("node", append([]string{"src/server.js"}, args...)...)
					c.Dir, c.Env = dir, rpsBackendEnv(env...)
					return c
				}
			case "python":
				py := e2eutil.RequireTool(t, "/usr/bin/python3")
				if out, err := exec.Command(py, "-c", "import "+strings.Join(rpsPyModules, ", ")).CombinedOutput(); err != nil {
					e2eutil.Unavailable(t, fmt.Sprintf("%s cannot import the backend's modules (run `make tools`): %v\n%s", py, err, out))
				}
				cmd = func(env []string, args ...string) *exec.Cmd {
					c := exec.Command(py, append([]string{"-m", "app"}, args...)...)
					c.Dir, c.Env = dir, rpsBackendEnv(env...)
					return c
				}
			}
			rpsBackend(t, d, dir, cmd)
			t.Logf("%s backend with app_migrate and app_rw: %s", backend, time.Since(start).Round(time.Millisecond))
		})
	}
}

// rpsBackend is TestRolPgSvcBackend for one backend, whose commands cmd makes.
func rpsBackend(t *testing.T, d *rpsDB, dir string, cmd func(env []string, args ...string) *exec.Cmd) {
	t.Helper()
	d.must(t, "app", "app", rpsLegacySQL)
	d.runRoles(t)
	if err := os.WriteFile(filepath.Join(dir, "migrations", "0002_rps_tags.sql"), []byte(rpsMigration0002), 0o644); err != nil {
		t.Fatal(err)
	}
	envAs := func(role string) []string {
		return []string{"DB_HOST=127.0.0.1", "DB_PORT=" + strconv.Itoa(d.pg.Port), "DB_NAME=app", "DB_USER=" + role,
			"DB_PASSWORD=wrong-the-file-wins", "DB_PASSWORD_FILE=" + d.files[role], "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=5"}
	}
	migrate := func(role string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		c := cmd(envAs(role), "migrate")
		mc := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
		mc.Dir, mc.Env = c.Dir, c.Env
		out, err := mc.CombinedOutput()
		return string(out), err
	}
	schema := func() string {
		return d.must(t, "app", "app", `SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || pg_get_userbyid(c.relowner), ' ' ORDER BY c.relname)
			|| ' cols=' || (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped)
			|| ' versions=' || (SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations)
			FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S', 'i')`)
	}
	// roles.sh moved what app made in 1.5 to app_migrate.
	before := schema()
	want := "items:r:app_migrate items_created_at_idx:i:app_migrate items_id_seq:S:app_migrate items_pkey:i:app_migrate schema_migrations:r:app_migrate schema_migrations_pkey:i:app_migrate cols=id,name,created_at versions=0001_create_items"
	if before != want {
		t.Errorf("after roles.sh on the 1.5 database:\n got %s\nwant %s", before, want)
	}

	// No DDL for the application: its migrate fails and changes nothing.
	out, err := migrate("app_rw")
	if err == nil {
		t.Errorf("migrate as app_rw with 0002 pending succeeded, want a permission error:\n%s", out)
	} else if !strings.Contains(out, "permission denied") && !strings.Contains(out, "must be owner") {
		t.Errorf("migrate as app_rw failed, but not on a privilege (%v):\n%s", err, out)
	}
	if got := schema(); got != before {
		t.Errorf("migrate as app_rw changed the schema:\n got %s\nwant %s", got, before)
	}

	// Migrations as app_migrate.
	if out, err := migrate("app_migrate"); err != nil || !strings.Contains(out, "0002_rps_tags") {
		t.Fatalf("migrate as app_migrate: %v, want 0002_rps_tags applied:\n%s", err, out)
	}
	want = "items:r:app_migrate items_created_at_idx:i:app_migrate items_id_seq:S:app_migrate items_pkey:i:app_migrate rps_tags:r:app_migrate rps_tags_id_seq:S:app_migrate rps_tags_pkey:i:app_migrate schema_migrations:r:app_migrate schema_migrations_pkey:i:app_migrate cols=id,name,created_at,note versions=0001_create_items,0002_rps_tags"
	if got := schema(); got != want {
		t.Errorf("after migrate as app_migrate:\n got %s\nwant %s", got, want)
	}
	// Nothing pending: what MIGRATE_ON_START as app_rw would meet. Logged for the docs, not a
	// requirement: the compose runs migrate as app_migrate.
	out, err = migrate("app_rw")
	t.Logf("migrate as app_rw with nothing pending: err=%v\n%s", err, rpsLastLines(out, 2))

	// The server as app_rw.
	port := e2eutil.FreePort(t)
	srv := e2eutil.StartProc(t, cmd(append(envAs("app_rw"), "PORT="+strconv.Itoa(port))), port)
	srv.WaitStatus(t, "/healthz", http.StatusOK)
	srv.WaitStatus(t, "/readyz", http.StatusOK)
	name := "rps ünïcödé ✓ 日本 it's"
	status, body, _ := srv.Do(t, "POST", "/api/items", rpsJSON(t, map[string]string{"name": name}))
	var created struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &created); status != http.StatusCreated || err != nil || created.Name != name || created.ID < 3 {
		t.Fatalf("POST /api/items as app_rw = %d %s, want 201 with the item (id after the 1.5 rows)", status, body)
	}
	status, body, _ = srv.Do(t, "GET", "/api/items", "")
	var list []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 3 || list[0].ID != created.ID ||
		!slices.ContainsFunc(list, func(it struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}) bool {
			return it.Name == "legacy 1.5 ü"
		}) {
		t.Errorf("GET /api/items as app_rw = %d %s, want the new item first and the two of 1.5", status, body)
	}
	if status, body, _ := srv.Do(t, "GET", "/api/items/"+strconv.FormatInt(created.ID, 10), ""); status != http.StatusOK || !strings.Contains(string(body), "日本") {
		t.Errorf("GET /api/items/%d as app_rw = %d %s", created.ID, status, body)
	}
	if got := d.must(t, "app", "app", fmt.Sprintf("SELECT name FROM items WHERE id = %d", created.ID)); got != name {
		t.Errorf("the row of item %d holds %q, want %q", created.ID, got, name)
	}
	// The new table of 0002 through the default privileges, its sequence included.
	if got, err := d.sql("app_rw", "app", fmt.Sprintf("INSERT INTO rps_tags (item_id, tag) VALUES (%d, 'ü') RETURNING id", created.ID)); err != nil || got != "1" {
		t.Errorf("app_rw inserting into rps_tags (made by migrate as app_migrate): %q %v", got, err)
	}
	for _, ddl := range []string{"CREATE TABLE rps_evil (id int)", "ALTER TABLE items ADD COLUMN evil int", "DROP TABLE rps_tags",
		"TRUNCATE items", "CREATE INDEX rps_evil_idx ON items (name)", "ALTER TABLE items OWNER TO app_rw"} {
		if out, err := d.sql("app_rw", "app", ddl); err == nil {
			t.Errorf("app_rw: %s succeeded, want it refused", ddl)
		} else if !strings.Contains(out, "permission denied") && !strings.Contains(out, "must be owner") {
			t.Errorf("app_rw: %s failed, but not on a privilege: %s", ddl, out)
		}
	}
	status, body, _ = srv.Do(t, "GET", "/readyz", "")
	if status != http.StatusOK {
		t.Errorf("GET /readyz as app_rw at the end = %d %s", status, body)
	}
	if code, took, err := srv.Terminate(15 * time.Second); err != nil || code != 0 {
		t.Errorf("the server as app_rw: SIGTERM: exit %d after %s (%v)", code, took, err)
	}
}

// rpsJSON marshals v.
func rpsJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rpsLastLines returns the last n lines of s.
func rpsLastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rpsAwkwardSQL adds to the 1.5 database, as app before roles.sh, what a dump and restore
// get wrong most easily: a large object, a function a view calls, a trigger writing into
// another table, a non-ASCII table and column name, and a privilege granted by hand.
const rpsAwkwardSQL = `
CREATE TABLE audit_log (id BIGSERIAL PRIMARY KEY, item_id BIGINT, note TEXT NOT NULL);
CREATE FUNCTION item_label(n TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$ SELECT '«' || upper(n) || '»' $$;
CREATE VIEW item_labels AS SELECT id, item_label(name) AS label FROM items;
CREATE FUNCTION items_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit_log (item_id, note) VALUES (NEW.id, 'added ' || NEW.name);
	RETURN NEW;
END $$;
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION items_audit();
CREATE TABLE "Größe" ("Maß" TEXT, "wert ✓" NUMERIC(10, 2));
INSERT INTO "Größe" VALUES ('日本', 1.25), ('it''s', NULL);
SELECT lo_from_bytea(424242, convert_to('legacy large object ü', 'UTF8'));
INSERT INTO items (name) VALUES ('after the trigger ✓');
`

// rpsPrivilegesSQL lists, sorted, the owners and privileges of everything in the database
// that the roles' grants are made of: schemas, relations (with their ACLs and their columns'),
// routines, default privileges, large objects, triggers. An ACL is a set: its items are
// listed sorted (a restore may write them in another order).
const rpsPrivilegesSQL = `
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
	SELECT 'schema ' || nspname || ' owner=' || pg_get_userbyid(nspowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(nspacl) x), '-') AS line
		FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'
	UNION ALL
	SELECT 'rel ' || c.oid::regclass::text || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(c.relacl) x), '-')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	UNION ALL
	SELECT 'col ' || a.attrelid::regclass::text || '.' || a.attname || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x), '-')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attacl IS NOT NULL AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	UNION ALL
	SELECT 'routine ' || p.oid::regprocedure::text || ' owner=' || pg_get_userbyid(p.proowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(p.proacl) x), '-') || ' secdef=' || p.prosecdef::text
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	UNION ALL
	SELECT 'default ' || pg_get_userbyid(defaclrole) || ' in=' || coalesce(defaclnamespace::regnamespace::text, '*') || ' on=' || defaclobjtype::text || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(defaclacl) x), '-')
		FROM pg_default_acl
	UNION ALL
	SELECT 'lo ' || oid || ' owner=' || pg_get_userbyid(lomowner) || ' acl=' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(lomacl) x), '-') || ' md5=' || md5(lo_get(oid))
		FROM pg_largeobject_metadata
	UNION ALL
	SELECT 'trigger ' || tgrelid::regclass::text || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
) t`

// rpsChecksumsSQL is, for every table outside the catalogs, its row count and the md5 of
// its rows in order, computed on the server (a plpgsql block so the list is not fixed).
const rpsChecksumsSQL = `
CREATE TEMP TABLE rps_sums (name TEXT, sum TEXT);
DO $$
DECLARE r record; s text;
BEGIN
	FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'v', 'm') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	LOOP
		EXECUTE format('SELECT count(*) || '' '' || md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM %s t', r.rel) INTO s;
		INSERT INTO rps_sums VALUES (r.rel::text, s);
	END LOOP;
END $$;
SELECT string_agg(name || ' ' || sum, E'\n' ORDER BY name) FROM rps_sums;
`

// TestRolPgSvcBackup proves that the logical backup (backup.sh as the superuser app), the
// restore test and a restore into a new database (restore.sh --target-db) work on a database
// with the roles, and that the restored database equals the source: every table's and view's
// rows, the large objects, and the owners and privileges of schemas, relations, routines,
// large objects and the default privileges of app_migrate; after it app_rw works there as
// the application. Database-level privileges (pg_dump does not carry them) are reported.
func TestRolPgSvcBackup(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "pg_restore", "restic", "jq", "flock", "setpriv"} {
		e2eutil.RequireTool(t, tool)
	}
	start := time.Now()
	d := rpsStart(t, map[string]string{"db": "postgres", "db_backup_method": "logical"}, true)
	d.must(t, "app", "app", rpsLegacySQL+rpsAwkwardSQL)
	d.runRoles(t)
	// Life after the roles: the application writes (the trigger fires as app_rw) and makes a
	// large object; a migration adds a table (default privileges); a grant by hand.
	d.must(t, "app_rw", "app", `INSERT INTO items (name) VALUES ('written by app_rw ü'); SELECT lo_from_bytea(515151, '\x00ff0a'::bytea || convert_to('é', 'UTF8'));`)
	d.must(t, "app_migrate", "app", `CREATE TABLE later (id BIGSERIAL PRIMARY KEY, v TEXT); INSERT INTO later (v) VALUES ('ü');
		GRANT SELECT (v) ON later TO app_monitor;`)
	d.must(t, "app_rw", "app", `INSERT INTO later (v) VALUES ('by app_rw'); SELECT count(*) FROM item_labels;`)
	if got := d.must(t, "app", "app", "SELECT count(*) FROM audit_log"); got != "2" {
		t.Fatalf("audit_log has %s rows, want 2 (the trigger as app and as app_rw)", got)
	}

	tmp := e2eutil.FastTempDir(t)
	if err := os.Chmod(tmp, 0o755); err != nil { // the restore test's scratch cluster runs as postgres
		t.Fatal(err)
	}
	scratch := filepath.Join(tmp, "tmp")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(scratch, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	resticPw := filepath.Join(d.proj, "secrets", "restic_password")
	backupDir, offsite := filepath.Join(tmp, "backups"), filepath.Join(tmp, "offsite")
	for _, repo := range []string{filepath.Join(backupDir, "restic"), offsite} {
		c := exec.Command("restic", "init", "--repo", repo, "--password-file", resticPw, "--cache-dir", filepath.Join(tmp, "cache"))
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("restic init %s: %v\n%s", repo, err, out)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "PG") && !strings.HasPrefix(k, "BACKUP_") && !strings.HasPrefix(k, "RESTIC_") && !strings.HasPrefix(k, "RESTORE_TEST_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(d.pg.Port), "PGUSER=app", "PGDATABASE=app",
		"PGPASSWORD_FILE="+d.files["app"], "BACKUP_DIR="+backupDir, "BACKUP_OFFSITE_REPOSITORY="+offsite,
		"BACKUP_TEXTFILE_DIR="+filepath.Join(tmp, "textfile"), "BACKUP_LOG_DIR="+filepath.Join(tmp, "logs"),
		"BACKUP_STORES=postgres:postgres-dump", "TMPDIR="+scratch, "RESTIC_CACHE_DIR="+filepath.Join(tmp, "cache"))
	script := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, filepath.Join(d.proj, "ops", "backup", name), args...)
		c.Dir, c.Env = d.proj, env
		began := time.Now()
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
		return string(out)
	}

	wantSums := d.must(t, "app", "app", rpsChecksumsSQL)
	wantPrivs := d.must(t, "app", "app", rpsPrivilegesSQL)
	wantDB := d.must(t, "app", "app", "SELECT datacl::text FROM pg_database WHERE datname = 'app'")
	script("backup.sh")
	script("restore-test.sh")
	script("restore.sh", "postgres", "--target-db", "app_restored")

	// The canary table backup.sh adds is the only difference in content and privileges.
	gotSums := d.must(t, "app", "app_restored", rpsChecksumsSQL)
	if got := rpsWithout(gotSums, "opsready_backup_canary"); got != wantSums {
		t.Errorf("the restored database's rows differ from the source's:\n got %s\nwant %s", got, wantSums)
	}
	gotPrivs := d.must(t, "app", "app_restored", rpsPrivilegesSQL)
	if got := rpsWithout(gotPrivs, "opsready_backup_canary"); got != wantPrivs {
		t.Errorf("the restored database's owners and privileges differ from the source's:\n got %s\nwant %s", got, wantPrivs)
	}
	for _, want := range []string{"default app_migrate in=public on=r acl=app_rw=arwd/app_migrate", "lo 515151 owner=app_rw", "lo 424242 owner=app_rw",
		"schema public owner=app_migrate", "rel items kind=r owner=app_migrate acl=app_migrate=arwdDxt/app_migrate,app_rw=arwd/app_migrate"} {
		if !strings.Contains(wantPrivs, want) {
			t.Errorf("the source lacks %q (roles.sh did not set it up as this test expects):\n%s", want, wantPrivs)
		}
	}
	// The application works on the restored database as app_rw: DML, the trigger, the view,
	// its large objects; no DDL.
	if got, err := d.sql("app_rw", "app_restored", `INSERT INTO items (name) VALUES ('after restore ✓');
		SELECT count(*) FROM audit_log WHERE note = 'added after restore ✓';
		SELECT label FROM item_labels WHERE label LIKE '%RESTORE%';
		SELECT lo_unlink(515151);`); err != nil || got != "1\n«AFTER RESTORE ✓»\n1" {
		t.Errorf("app_rw on the restored database: %q %v", got, err)
	}
	if out, err := d.sql("app_rw", "app_restored", "CREATE TABLE rps_evil (id int)"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("app_rw could create a table in the restored database: %v %s", err, out)
	}
	if gotDB := d.must(t, "app", "app", "SELECT datacl::text FROM pg_database WHERE datname = 'app_restored'"); gotDB != wantDB {
		t.Logf("database-level privileges are not restored (pg_dump without --create does not carry them; roles.sh sets them on the next `up`): source %s, restored %q", wantDB, gotDB)
	}
	t.Logf("backup, restore test and restore with the roles: %d tables and views, %d privilege lines equal: %s",
		strings.Count(wantSums, "\n")+1, strings.Count(wantPrivs, "\n")+1, time.Since(start).Round(time.Millisecond))
}

// rpsWithout drops the lines of s that mention name.
func rpsWithout(s, name string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, name) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
