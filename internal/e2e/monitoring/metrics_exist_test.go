package monitoring

// Metric existence: every metric and label that a generated alert rule, recording rule or
// Grafana query uses must exist in what the exporters compose.monitoring.yaml pins expose,
// with the flags it passes. A rule on a series that never exists is an alert that never fires.
//
// What the exporters expose is read from testdata/scrapes/, real /metrics captured by
// `internal/e2e/monitoring/testdata/scrapes/capture.sh BINDIR` (not part of `make test`: its header says how
// to build each exporter at its pinned version into BINDIR; it needs the local PostgreSQL and
// Redis, starts its own MariaDB and PostgreSQL primaries and replicas, and takes a few
// minutes; `capture.sh BINDIR postgres` redoes one part). Rerun it after changing an
// exporter's version or collector flags: TestMetricsExist compares both with the compose file
// (the replica captures with db-replica-exporter's, see mexDBJob) and fails until the captures
// match. Captured on 2026-12-02:
//
//	mysqld_exporter 0.17.2     a primary and a replica MariaDB (10.11 here; the image is 11.4),
//	                           both with a binary log, as the app user with the SLAVE MONITOR
//	                           and BINLOG MONITOR grants of ops/db/roles.sh (db-exporter-grant before 1.6.0)
//	postgres_exporter 0.17.1   PostgreSQL 15 here (the image is 17): a primary with a streaming
//	                           standby on a replication slot, and the standby, as a role in
//	                           pg_monitor (the compose file's app user is the superuser)
//	redis_exporter 1.74.0      Redis 7.0 here (the image is 7.4)
//	node_exporter 1.9.1        this host; the textfile metrics are read from the generated
//	                           backup scripts' writers (ops/backup/*.sh), not from a run
//	blackbox_exporter 0.27.0   its own /metrics, and probes of a local HTTPS and HTTP site
//	prometheus 3.5.0, alertmanager 0.28.1   their own /metrics
//	cadvisor 0.60.5            NOT a live scrape: cAdvisor's cmd module is not served by the module
//	                           proxy here, so the file is cAdvisor v0.60.5's own expected
//	                           Prometheus output (metrics/testdata/prometheus_metrics), every
//	                           metric kind enabled, from its fake container
//	backend                    the Go stub generated with the defaults, run against PostgreSQL
//	                           (the Python and Node stubs expose the same names and labels: the
//	                           backend contract test asserts them on each)
//
// Labels added on the way in are known too: job and instance on every series, service on
// cAdvisor's (metric_relabel_configs in prometheus.yml) and container_label_* of the labels
// cAdvisor is told to keep (--whitelisted_container_labels).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/internal/project"
)

// mexVariants cover every answer that changes a rules file or a dashboard: db, cache,
// backend (SLO buckets), tls (TLS rules and panel) and the backup method (backup metrics).
var mexVariants = []map[string]string{
	{"db": "postgres", "cache": "none", "backend": "go", "tls": "letsencrypt", "db_backup_method": "logical"},
	{"db": "mariadb", "cache": "redis", "backend": "python", "tls": "none", "db_backup_method": "physical"},
	{"db": "postgres", "cache": "redis", "backend": "node", "tls": "none", "db_backup_method": "physical"},
	{"db": "mariadb", "cache": "none", "backend": "go", "tls": "letsencrypt", "db_backup_method": "logical"},
}

func mexVariantName(set map[string]string) string {
	return strings.Join([]string{set["db"], set["cache"], set["backend"], set["tls"], set["db_backup_method"]}, "-")
}

// mexCheckProject runs the whole check on a generated project and returns its problems.
func mexCheckProject(t *testing.T, dir string, set map[string]string, scrapes map[string]mexScrape) []mexProblem {
	t.Helper()
	c := &mexChecker{jobs: mexExposures(t, dir, set, scrapes), recorded: map[string]map[string]bool{}}
	rules, err := filepath.Glob(filepath.Join(dir, "monitoring", "prometheus", "rules", "*.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rules files in %s (%v)", dir, err)
	}
	var rel []string
	for _, r := range rules {
		rel = append(rel, strings.TrimPrefix(r, dir+string(filepath.Separator)))
	}
	c.checkRules(t, dir, rel)
	c.checkDashboards(t, dir)
	return c.problems
}

func TestMetricsExist(t *testing.T) {
	scrapes := mexLoadScrapes(t)
	for _, set := range mexVariants {
		t.Run(mexVariantName(set), func(t *testing.T) {
			t.Parallel()
			dir := mexGenerate(t, set)
			for _, p := range mexCheckProject(t, dir, set, scrapes) {
				t.Errorf("%s: %s", p.where, p.what)
			}
		})
	}
}

// TestMetricsExistCatches feeds the check rules and a dashboard with mistakes it must report,
// next to correct ones it must accept: the check can fail.
func TestMetricsExistCatches(t *testing.T) {
	t.Parallel()
	scrapes := mexLoadScrapes(t)
	set := mexVariants[0]
	dir := e2eutil.Generate(t, set) // the newest version always: this tests the check itself
	bad := `groups:
  - name: mex-negative
    rules:
      - record: job:mex_ok:sum
        expr: sum by (job) (pg_up)
      - alert: MexGood
        expr: job:mex_ok:sum == 0 and on (job) sum by (job, datname) (pg_stat_database_deadlocks{job="postgres"}) > 0
      - alert: MexMisspelledMetric
        expr: pg_upp == 0
      - alert: MexMisspelledLabel
        expr: pg_stat_database_deadlocks{databasename="app"} > 0
      - alert: MexWrongJob
        expr: redis_up{job="postgres"} == 0
      - alert: MexBadBy
        expr: sum by (tablename) (pg_stat_user_tables_n_dead_tup) > 0
      - alert: MexBadOn
        expr: pg_up and on (device) node_filesystem_readonly == 0
      - alert: MexRecordedLabel
        expr: job:mex_ok:sum{instance="x"} == 0
`
	path := filepath.Join(dir, "monitoring", "prometheus", "rules", "mex-negative.yml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	dash := `{"panels": [{"title": "Mex typo", "targets": [{"expr": "rate(node_cpu_second_total{job=\"node\"}[$__rate_interval])"}]}],
"templating": {"list": [{"name": "v", "definition": "label_values(up{job=\"node\"}, route)"}]}}`
	if err := os.WriteFile(filepath.Join(dir, "monitoring", "grafana", "dashboards", "mex-negative.json"), []byte(dash), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range mexCheckProject(t, dir, set, scrapes) {
		if strings.Contains(p.where, "mex-negative") {
			got = append(got, p.where+": "+p.what)
		}
	}
	want := []string{
		"alert MexMisspelledMetric: metric pg_upp does not exist in job",
		"alert MexMisspelledLabel: metric pg_stat_database_deadlocks has no label databasename",
		"alert MexWrongJob: metric redis_up does not exist in job postgres (postgres_exporter 0.17.1 + postgres_exporter-replica 0.17.1)",
		"alert MexBadBy: sum by/without label tablename",
		"alert MexBadOn: on (device): one side has no label device",
		"alert MexRecordedLabel: metric job:mex_ok:sum has no label instance",
		`dashboard mex-negative.json: panel "Mex typo": metric node_cpu_second_total does not exist in job node (node_exporter 1.9.1`,
		"dashboard mex-negative.json: variable v: label_values: up{job=\"node\"} has no label route",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("not reported: %s", w)
		}
	}
	for _, g := range got {
		if strings.Contains(g, "MexGood") || strings.Contains(g, "record job:mex_ok") {
			t.Errorf("a correct rule was reported: %s", g)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

// mexDBJob is the database's Prometheus job and the captures of what it scrapes. With a
// db-replica-exporter service (db_replica=streaming) the job scrapes both servers: the primary
// captures are db-exporter's, the replica captures db-replica-exporter's, each compared with
// that service's version and flags. Without one, db-exporter's MariaDB may still be a replica
// (MysqlReplicationLag is generated either way), so both MariaDB captures are db-exporter's;
// a PostgreSQL without a standby has no WAL receiver, so its replica capture is left out.
func mexDBJob(set map[string]string, services types.Services) (string, []mexExporterService) {
	replica := "db-replica-exporter"
	_, hasReplica := services[replica]
	if !hasReplica {
		replica = "db-exporter"
	}
	if set["db"] == "mariadb" {
		return "mysql", []mexExporterService{{"db-exporter", "mysqld_exporter"}, {replica, "mysqld_exporter-replica"}}
	}
	srcs := []mexExporterService{{"db-exporter", "postgres_exporter"}}
	if hasReplica {
		srcs = append(srcs, mexExporterService{replica, "postgres_exporter-replica"})
	}
	return "postgres", srcs
}

// mexGenerate generates a project of the newest webapp, or of MEX_BLUEPRINT when set (such as
// webapp@1.3.0: `MEX_BLUEPRINT=webapp@1.3.0 go test ./internal/e2e/monitoring -run 'TestMetricsExist$|TestMex'`
// shows what these tests find in an older version).
func mexGenerate(t *testing.T, set map[string]string) string {
	t.Helper()
	bp := os.Getenv("MEX_BLUEPRINT")
	if bp == "" {
		return e2eutil.Generate(t, set)
	}
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: bp, Set: set, Defaults: true, Version: "test"}); err != nil {
		t.Fatalf("generate %s %v: %v", bp, set, err)
	}
	return dir
}

// TestMexMysqlReplicaStatus: MysqlReplicationLag reads mysql_slave_status_*, so each MariaDB
// exporter (db-exporter, and db-replica-exporter with a replica) must run the replica-status
// collector, and its user must hold the privilege MariaDB asks for SHOW REPLICA STATUS; with
// the binlog_size collector (MysqlBinlogDiskUsage), the one for SHOW BINARY LOGS too.
// ops/db/roles.sh grants them, run by a one-shot service the exporters wait for. Each grant is
// run against the local MariaDB to prove it is the one that works.
func TestMexMysqlReplicaStatus(t *testing.T) {
	t.Parallel()
	dir := mexGenerate(t, map[string]string{"db": "mariadb"})
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	cmdline := func(s types.ServiceConfig) string {
		return strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
	}
	// privilege -> a statement that needs it (the local server has no binary log: SHOW BINARY
	// LOGS then fails after the privilege check, with "not using binary logging").
	need := map[string]string{`(?:SLAVE|REPLICA) MONITOR`: "SHOW REPLICA STATUS"}
	var user string
	exporters := []string{"db-exporter"}
	if _, ok := p.Services["db-replica-exporter"]; ok {
		exporters = append(exporters, "db-replica-exporter")
	}
	for _, name := range exporters {
		args := cmdline(p.Services[name])
		if name == "db-exporter" && args == "" {
			t.Fatal("no db-exporter service")
		}
		if strings.Contains(args, "--no-collect.slave_status") {
			t.Errorf("%s runs with --no-collect.slave_status: mysql_slave_status_* never exist and MysqlReplicationLag can never fire", name)
		}
		if strings.Contains(args, "--collect.binlog_size") {
			need[`BINLOG MONITOR`] = "SHOW BINARY LOGS"
		}
		u := regexp.MustCompile(`--mysqld\.username=(\S+)`).FindStringSubmatch(args)
		if u == nil {
			t.Fatalf("%s: no --mysqld.username in %q", name, args)
		}
		if user != "" && u[1] != user {
			t.Errorf("%s runs as %s, db-exporter as %s: ops/db/roles.sh grants one monitoring account", name, u[1], user)
		}
		user = u[1]
	}
	if _, ok := need[`BINLOG MONITOR`]; !ok {
		t.Errorf("no MariaDB exporter runs with --collect.binlog_size: mysql_binlog_size_bytes never exists and MysqlBinlogDiskUsage can never fire")
	}
	// The grants come from ops/db/roles.sh, run by the one-shot service whose entrypoint it is:
	// the monitoring account's set and name as the script has them.
	var grantSvc string
	for name, s := range p.Services {
		if strings.Contains(cmdline(s), "/opt/opsready/db/roles.sh") {
			grantSvc = name
		}
	}
	if grantSvc == "" {
		t.Fatal("no service runs ops/db/roles.sh, which grants the exporter's account its privileges")
	}
	script := e2eutil.ReadFile(t, filepath.Join(dir, "ops", "db", "roles.sh"))
	if m := regexp.MustCompile(`DB_MONITOR_USER:=(\S+)\}`).FindStringSubmatch(script); m == nil || m[1] != user {
		t.Errorf("ops/db/roles.sh's monitoring account is %v, the exporters log in as %s", m, user)
	}
	set := regexp.MustCompile(`\[MONITOR\]="\*\.\*\|([^"]+)"`).FindStringSubmatch(script)
	if set == nil {
		t.Fatalf("ops/db/roles.sh has no [MONITOR]=\"*.*|...\" privilege set")
	}
	grants := map[string]string{} // privilege pattern -> the grant statement that gives it
	for priv := range need {
		if m := regexp.MustCompile(`(?i)\b` + priv + `\b`).FindString(set[1]); m != "" {
			grants[priv] = "GRANT " + m + " ON *.* TO '" + user + "'@'%'"
		} else {
			t.Errorf("ops/db/roles.sh does not grant %s to the exporter's account %s (%s): MariaDB refuses %s without it", priv, user, set[1], need[priv])
		}
	}
	for _, name := range exporters {
		if dep, ok := p.Services[name].DependsOn[grantSvc]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for %s to complete (depends_on condition %q)", name, grantSvc, dep.Condition)
		}
	}
	gs := p.Services[grantSvc]
	if !slices.ContainsFunc(gs.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == "db_root_password" }) {
		t.Errorf("%s has no db_root_password secret to grant with", grantSvc)
	}
	if gs.Restart != "no" {
		t.Errorf("%s: restart %q, want \"no\" (a one-shot)", grantSvc, gs.Restart)
	}

	e2eutil.RequireServer(t, "MariaDB", 3306)
	root := []string{"-h", "127.0.0.1", "-P", "3306", "-u", "root", "--batch", "-e"}
	u := fmt.Sprintf("mex_grant_%d", os.Getpid())
	mariadb := func(args ...string) (string, error) {
		out, err := exec.Command("mariadb", args...).CombinedOutput()
		return string(out), err
	}
	if out, err := mariadb(append(root, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'mex-pw'", u))...); err != nil {
		t.Fatalf("create user: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = mariadb(append(root, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", u))...) })
	// denied: the statement is refused for want of a privilege (ERROR 1227), not for another cause.
	denied := func(stmt string) (bool, string) {
		out, _ := mariadb("-h", "127.0.0.1", "-P", "3306", "-u", u, "-pmex-pw", "--batch", "-e", stmt)
		return strings.Contains(out, "ERROR 1227"), out
	}
	for priv, stmt := range need {
		if d, out := denied(stmt); !d {
			t.Fatalf("%s is not refused without any grant (%s): the check below proves nothing", stmt, out)
		}
		grant := grants[priv]
		if grant == "" {
			continue
		}
		g := strings.Replace(grant, "'"+user+"'", "'"+u+"'", 1)
		if out, err := mariadb(append(root, g)...); err != nil {
			t.Fatalf("%s: %v\n%s", g, err, out)
		}
		if d, out := denied(stmt); d {
			t.Errorf("after %q (from %s), %s is still refused: %s", grant, grantSvc, stmt, out)
		}
	}
}

// TestMexTLSPanel: probe_ssl_earliest_cert_expiry exists only when the probes use TLS, so no
// dashboard may show it for tls=none (an always-empty panel), and one must for letsencrypt.
func TestMexTLSPanel(t *testing.T) {
	t.Parallel()
	for _, tls := range []string{"none", "letsencrypt"} {
		dir := mexGenerate(t, map[string]string{"tls": tls})
		dashDir := filepath.Join(dir, "monitoring", "grafana", "dashboards")
		var panels []string
		for _, name := range e2eutil.ReadDirNames(t, dashDir) {
			var d mcDashboard
			b, err := os.ReadFile(filepath.Join(dashDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, p := range mcAllPanels(d.Panels) {
				for _, tg := range p.Targets {
					if strings.Contains(tg.Expr, "probe_ssl_") {
						panels = append(panels, fmt.Sprintf("%s: %q", name, p.Title))
					}
				}
			}
		}
		if tls == "none" && len(panels) > 0 {
			t.Errorf("tls=none: panels on TLS series that never exist: %s", strings.Join(panels, ", "))
		}
		if tls == "letsencrypt" && len(panels) == 0 {
			t.Errorf("tls=letsencrypt: no dashboard shows the certificate expiry")
		}
	}
}
