package monitoring

// Replication and WAL archiving alerts on real servers (issue 13, part 3): the alert
// expressions of the generated rules files, evaluated by promtool on metrics taken from real
// servers that this test breaks.
//
//   - TestRalPostgresWalArchiving: its own PostgreSQL 15 with archive_mode=on; archiving works
//     (archive_command 'true'), then fails ('false') and a WAL switch makes the archiver try;
//     PostgresWalArchivingFailing's expression is empty on the scrapes before and true after.
//   - TestRalPostgresReplication: a primary and a hot standby (pg_basebackup, a slot); the
//     standby's WAL receiver is stopped; PostgresReplicaMissing, PostgresReplicaNotStreaming
//     and PostgresReplicationSlotRetainingWal turn true.
//   - TestRalMariadbReplication: two own mariadbd (a primary with a binary log, a GTID replica)
//     with the generated exporter grants; STOP SLAVE IO_THREAD on the replica;
//     MysqlReplicaIoThreadStopped's expression turns true on the replica's metrics and
//     MysqlReplicaMissing's on the primary's.
//
// The metrics come from the real exporter at the version compose.monitoring.yaml pins, run
// with the flags and (for MariaDB) the grants the generated files give, when that exporter is
// on PATH (`postgres_exporter --version` / `mysqld_exporter --version` must print the pinned
// version). Otherwise they are rendered from the same server views (pg_stat_archiver, SHOW ALL
// SLAVES STATUS, SHOW GLOBAL STATUS) in the exporter's exposition format: names and labels as
// postgres_exporter 0.17.1 and mysqld_exporter 0.17.2 write them. When the exporter is there,
// the rendering is compared with its scrape too, so the fallback cannot drift unnoticed.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

const ralPgBin = "/usr/lib/postgresql/15/bin"

// ralSample is one line of a Prometheus text exposition.
type ralSample struct {
	name   string
	labels map[string]string
	value  float64
}

// key is the sample's identity: its name and sorted labels.
func (s ralSample) key() string {
	var ls []string
	for k, v := range s.labels {
		ls = append(ls, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(ls)
	return s.name + "{" + strings.Join(ls, ",") + "}"
}

var ralLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var ralLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// ralParse reads the samples of a text exposition (the exporters here write no timestamps).
func ralParse(t *testing.T, text string) []ralSample {
	t.Helper()
	var out []ralSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := ralLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("exposition line not understood: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		s := ralSample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range ralLabel.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// ralPick returns the samples of the named metrics.
func ralPick(samples []ralSample, names ...string) []ralSample {
	var out []ralSample
	for _, s := range samples {
		for _, n := range names {
			if s.name == n {
				out = append(out, s)
			}
		}
	}
	return out
}

// ralService is what these tests read of a compose service.
type ralService struct {
	Image      string   `yaml:"image"`
	Command    []string `yaml:"command"`
	Entrypoint []string `yaml:"entrypoint"`
}

// ralMonitoringServices reads the services of the generated compose.monitoring.yaml.
func ralMonitoringServices(t *testing.T, dir string) map[string]ralService {
	t.Helper()
	var f struct {
		Services map[string]ralService `yaml:"services"`
	}
	raw := e2eutil.ReadFile(t, filepath.Join(dir, "compose.monitoring.yaml"))
	if err := yaml.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("compose.monitoring.yaml: %v", err)
	}
	return f.Services
}

// ralPinned returns the version (without v) of the image of service svc.
func ralPinned(t *testing.T, services map[string]ralService, svc string) string {
	t.Helper()
	s, ok := services[svc]
	if !ok {
		t.Fatalf("compose.monitoring.yaml has no service %s", svc)
	}
	tag, ok := e2eutil.ImageTag(s.Image)
	if !ok {
		t.Fatalf("%s: image %q has no tag", svc, s.Image)
	}
	return strings.TrimPrefix(tag, "v")
}

// ralRuleExpr returns the expression of alert in a generated rules file.
func ralRuleExpr(t *testing.T, path, alert string) string {
	t.Helper()
	var rf e2eutil.PromRuleFile
	e2eutil.ReadYAML(t, path, &rf)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				return strings.TrimSpace(r.Expr)
			}
		}
	}
	t.Fatalf("%s has no alert %s", path, alert)
	return ""
}

// ralExporter returns the exporter on PATH when it reports version, else "".
func ralExporter(t *testing.T, name, version string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Logf("%s is not on PATH: the metrics are rendered in its format from the server's views", name)
		return ""
	}
	out, _ := exec.Command(p, "--version").CombinedOutput()
	if !strings.Contains(string(out), "version "+version+" ") {
		t.Logf("%s on PATH is not version %s (%q): the metrics are rendered in its format", p, version, strings.SplitN(string(out), "\n", 2)[0])
		return ""
	}
	return p
}

// ralStartExporter runs an exporter on a free port and returns its /metrics URL; it is
// stopped when the test ends.
func ralStartExporter(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	port := e2eutil.FreePort(t)
	cmd := exec.Command(bin, append(args, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))...)
	cmd.Env = append(os.Environ(), env...)
	var log e2eutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), log.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			resp.Body.Close()
			return url
		}
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", bin, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 2 minutes:\n%s", bin, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ralScrape(t *testing.T, url string) []ralSample {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	return ralParse(t, string(body))
}

// ralSameSeries fails unless every rendered sample is in the real scrape with the same name
// and labels (and, when exact, the same value).
func ralSameSeries(t *testing.T, what string, rendered, real []ralSample, exact bool) {
	t.Helper()
	byKey := map[string]float64{}
	for _, s := range real {
		byKey[s.key()] = s.value
	}
	for _, s := range rendered {
		v, ok := byKey[s.key()]
		switch {
		case !ok:
			t.Errorf("%s: the rendering has %s, the exporter does not", what, s.key())
		case exact && v != s.value:
			t.Errorf("%s: %s rendered %v, the exporter says %v", what, s.key(), s.value, v)
		}
	}
}

// ralInput is one input series of a promtool test: the scrapes' values of one sample, one per
// minute, with the target labels Prometheus adds.
func ralInput(scrapes [][]ralSample, s ralSample, job, instance string) (series, values string) {
	labels := map[string]string{"job": job, "instance": instance}
	for k, v := range s.labels {
		labels[k] = v
	}
	var vals []string
	seen := false
	for _, sc := range scrapes {
		// Before its first scrape a series has no sample; a series that leaves a scrape gets
		// a staleness marker, as Prometheus writes one.
		val := "_"
		if seen {
			val = "stale"
		}
		for _, x := range sc {
			if x.key() == s.key() {
				val = strconv.FormatFloat(x.value, 'g', -1, 64)
				seen = true
			}
		}
		vals = append(vals, val)
	}
	return ralSample{name: s.name, labels: labels}.key(), strings.Join(vals, " ")
}

// ralExprTest writes and runs a promtool test: expr over the inputs is empty at every minute
// in quiet and returns exactly one series at every minute in firing.
func ralExprTest(t *testing.T, promtool, dir, name, expr string, inputs map[string]string, quiet, firing []int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n")
	var keys []string
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "      - series: %s\n        values: %q\n", yamlQuote(k), inputs[k])
	}
	b.WriteString("    promql_expr_test:\n")
	count := "count((" + expr + "))"
	for _, m := range quiet {
		fmt.Fprintf(&b, "      - expr: %s\n        eval_time: %dm\n        exp_samples: []\n", yamlQuote(count), m)
	}
	for _, m := range firing {
		fmt.Fprintf(&b, "      - expr: %s\n        eval_time: %dm\n        exp_samples:\n          - labels: '{}'\n            value: 1\n", yamlQuote(count), m)
	}
	path := filepath.Join(dir, name+".test.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: promtool test rules: %v\n%s\n--- test file:\n%s", name, err, out, b.String())
	}
}

// yamlQuote single-quotes s for YAML.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ralCheckCompose loads the production compose files with monitoring as docker compose does
// and checks that db-replica-exporter exists beside db-exporter and waits for db-replica.
func ralCheckCompose(t *testing.T, dir string) {
	t.Helper()
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	exp, ok := p.Services["db-replica-exporter"]
	if !ok {
		t.Fatal("no db-replica-exporter service")
	}
	if _, ok := p.Services["db-replica"]; !ok {
		t.Error("no db-replica service for db-replica-exporter to scrape")
	}
	if d, ok := exp.DependsOn["db-replica"]; !ok || d.Condition != "service_healthy" {
		t.Errorf("db-replica-exporter: depends_on db-replica = %+v, want service_healthy", exp.DependsOn)
	}
}

// --- PostgreSQL ---------------------------------------------------------------------------

// ralPg is a private PostgreSQL 15 instance.
type ralPg struct {
	dir, sock string
	port      int
	uid, gid  int
}

func (p ralPg) as(cmd *exec.Cmd) *exec.Cmd {
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid)}}
	}
	cmd.Dir = p.dir
	return cmd
}

// psql runs sql as the superuser over the socket and returns its unaligned output.
func (p ralPg) psql(t *testing.T, sql string) string {
	t.Helper()
	out, err := p.as(exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", p.sock, "-p", strconv.Itoa(p.port), "-U", "postgres", "-d", "postgres", "-c", sql)).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitSQL polls sql until it returns want, for at most 3 minutes (a hang, not a race).
func (p ralPg) waitSQL(t *testing.T, sql, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var got string
	for time.Now().Before(deadline) {
		if got = p.psql(t, sql); got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never returned %q (last %q)", sql, want, got)
}

func ralStartPostgres(t *testing.T, conf string) ralPg {
	t.Helper()
	p := ralPg{port: e2eutil.FreePort(t)}
	p.uid, p.gid = os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the user postgres: %v", err)
		}
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
	}
	base := e2eutil.FastTempDir(t)
	p.dir = filepath.Join(base, "pg")
	p.sock = base
	for _, d := range []string{base, p.dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, p.uid, p.gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := p.as(exec.Command(filepath.Join(ralPgBin, "initdb"), "-D", p.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8")).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(p.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nshared_buffers = 32MB\nfsync = off\n%s\n", p.port, p.sock, conf)
	f.Close()
	pgctl := func(args ...string) error {
		out, err := p.as(exec.Command(filepath.Join(ralPgBin, "pg_ctl"), args...)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := pgctl("-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "180", "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pgctl("-D", p.dir, "-m", "immediate", "-w", "-t", "120", "stop"); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return p
}

// ralPgArchiver renders pg_stat_archiver's counters as postgres_exporter 0.17.1 does (its
// built-in pg_stat_archiver map: the counters, server="host:port").
func ralPgArchiver(t *testing.T, p ralPg) []ralSample {
	t.Helper()
	f := strings.Split(p.psql(t, "SELECT archived_count, failed_count FROM pg_stat_archiver"), "|")
	server := map[string]string{"server": fmt.Sprintf("127.0.0.1:%d", p.port)}
	var out []ralSample
	for i, n := range []string{"pg_stat_archiver_archived_count", "pg_stat_archiver_failed_count"} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			t.Fatalf("pg_stat_archiver: %q: %v", f, err)
		}
		out = append(out, ralSample{name: n, labels: server, value: v})
	}
	return out
}

func TestRalPostgresWalArchiving(t *testing.T) {
	t.Parallel()
	promtool := e2eutil.RequireTool(t, "promtool")
	e2eutil.RequireTool(t, "psql")
	if _, err := os.Stat(filepath.Join(ralPgBin, "initdb")); err != nil {
		e2eutil.Unavailable(t, "PostgreSQL 15 server binaries are not installed: "+err.Error())
	}
	dir := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_backup_method": "physical"})
	rules := filepath.Join(dir, "monitoring", "prometheus", "rules", "wal-archiving.yml")
	failing := ralRuleExpr(t, rules, "PostgresWalArchivingFailing")
	services := ralMonitoringServices(t, dir)
	version := ralPinned(t, services, "db-exporter")

	// Archiving works first ('true'), so that the failure is a change, as in production.
	p := ralStartPostgres(t, "wal_level = replica\narchive_mode = on\narchive_command = 'true'\narchive_timeout = 0")
	// The exporter's login as the generated project's role would be: it reads pg_stat_archiver
	// without any grant; pg_monitor is what the replication metrics need.
	p.psql(t, "CREATE ROLE app LOGIN PASSWORD 'app-pw' IN ROLE pg_monitor")
	p.psql(t, "CREATE TABLE ral_t (id int)")
	p.psql(t, "INSERT INTO ral_t VALUES (1)")
	seg := p.psql(t, "SELECT pg_walfile_name(pg_switch_wal())")
	p.waitSQL(t, fmt.Sprintf("SELECT coalesce(last_archived_wal >= '%s', false) FROM pg_stat_archiver", seg), "t")

	var url string
	if bin := ralExporter(t, "postgres_exporter", version); bin != "" {
		url = ralStartExporter(t, bin, []string{
			fmt.Sprintf("DATA_SOURCE_URI=127.0.0.1:%d/postgres?sslmode=disable", p.port),
			"DATA_SOURCE_USER=app", "DATA_SOURCE_PASS=app-pw",
		}, services["db-exporter"].Command...)
	}
	names := []string{"pg_stat_archiver_archived_count", "pg_stat_archiver_failed_count"}
	take := func() []ralSample {
		rendered := ralPgArchiver(t, p)
		if url == "" {
			return rendered
		}
		real := ralPick(ralScrape(t, url), names...)
		ralSameSeries(t, "postgres_exporter "+version, rendered, real, false)
		return real
	}
	before := take()

	// Break it: every attempt fails from now on. A commit and a WAL switch make the archiver
	// try (repeated: an archiver that had not reloaded yet may still archive one with 'true').
	p.psql(t, "ALTER SYSTEM SET archive_command = 'false'")
	p.psql(t, "SELECT pg_reload_conf()")
	deadline := time.Now().Add(3 * time.Minute)
	for p.psql(t, "SELECT failed_count > 0 FROM pg_stat_archiver") != "t" {
		if time.Now().After(deadline) {
			t.Fatalf("archive_command 'false' never failed within 3 minutes: %s", p.psql(t, "SELECT * FROM pg_stat_archiver"))
		}
		p.psql(t, "INSERT INTO ral_t VALUES (2)")
		p.psql(t, "SELECT pg_switch_wal()")
		time.Sleep(time.Second)
	}
	broken := take()
	// The archiver is stuck on the failing segment: a new ready segment wakes it, it fails again.
	failed := p.psql(t, "SELECT failed_count FROM pg_stat_archiver")
	p.psql(t, "INSERT INTO ral_t VALUES (3)")
	p.psql(t, "SELECT pg_switch_wal()")
	p.waitSQL(t, "SELECT failed_count > "+failed+" FROM pg_stat_archiver", "t")
	later := take()
	t.Logf("pg_stat_archiver healthy: %v; broken: %v; a minute later: %v (metrics from %s)", before, broken, later,
		map[bool]string{true: "postgres_exporter " + version, false: "the rendering"}[url != ""])

	// One scrape a minute: healthy at 0-1m, broken at 2-12m, later at 13-14m. Quiet while
	// healthy and while the failed count stands still for 10 minutes (12m); firing once it
	// rises again with nothing archived in the 10-minute window (13m, 14m).
	scrapes := [][]ralSample{before, before}
	for range 11 {
		scrapes = append(scrapes, broken)
	}
	scrapes = append(scrapes, later, later)
	inputs := map[string]string{}
	for _, s := range later {
		k, v := ralInput(scrapes, s, "postgres", "db-exporter:9187")
		inputs[k] = v
	}
	if len(inputs) != len(names) {
		t.Fatalf("want the series %q, got %q", names, inputs)
	}
	ralExprTest(t, promtool, t.TempDir(), "archiving", failing, inputs, []int{0, 1, 12}, []int{13, 14})
}

// --- MariaDB ------------------------------------------------------------------------------

// ralMy is a private mariadbd.
type ralMy struct {
	sock string
	port int
}

// sql runs statements as root over the socket and returns the tab-separated output.
func (m ralMy) sql(t *testing.T, stmts string) string {
	t.Helper()
	out, err := m.sqlErr("", stmts)
	if err != nil {
		t.Fatalf("mariadb %q: %v", stmts, err)
	}
	return out
}

// sqlErr runs statements as root (user "") over the socket, or as user app over TCP.
func (m ralMy) sqlErr(user, stmts string) (string, error) {
	args := []string{"--no-defaults", "--batch", "--skip-column-names", "-e", stmts}
	cmd := exec.Command("mariadb", append([]string{"--no-defaults", "--socket=" + m.sock, "-uroot"}, args[1:]...)...)
	if user != "" {
		cmd = exec.Command("mariadb", append([]string{"--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P" + strconv.Itoa(m.port), "-u" + user}, args[1:]...)...)
		cmd.Env = append(os.Environ(), "MYSQL_PWD=app-pw")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// status returns one row of a SHOW ... STATUS statement as column -> value.
func (m ralMy) status(t *testing.T, stmt string) map[string]string {
	t.Helper()
	cmd := exec.Command("mariadb", "--no-defaults", "--socket="+m.sock, "-uroot", "--batch", "-e", stmt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb %q: %v\n%s", stmt, err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	row := map[string]string{}
	if len(lines) < 2 {
		return row
	}
	cols, vals := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t")
	for i := range cols {
		if i < len(vals) {
			row[cols[i]] = vals[i]
		}
	}
	return row
}

// ralWaitFor polls cond for at most 3 minutes (a hang, not a race).
func ralWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3 minutes", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ralStartMariadb(t *testing.T, serverID int, extra ...string) ralMy {
	t.Helper()
	base := e2eutil.FastTempDir(t)
	m := ralMy{sock: filepath.Join(base, "sock"), port: e2eutil.FreePort(t)}
	install := []string{"--no-defaults", "--datadir=" + filepath.Join(base, "data"), "--auth-root-authentication-method=normal", "--skip-test-db",
		"--tmpdir=" + e2eutil.MariadbTmpDir(t, base)}
	server := append([]string{"--no-defaults", "--datadir=" + filepath.Join(base, "data"), "--socket=" + m.sock,
		"--port=" + strconv.Itoa(m.port), "--bind-address=127.0.0.1", "--skip-name-resolve", "--log-error=" + filepath.Join(base, "error.log"),
		"--pid-file=" + filepath.Join(base, "pid"), "--innodb-buffer-pool-size=32M", "--server-id=" + strconv.Itoa(serverID)}, extra...)
	if os.Geteuid() == 0 {
		install = append(install, "--user=root")
		server = append(server, "--user=root")
	}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	cmd := exec.Command(mariadbd, server...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mariadbd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for exec.Command("mariadb-admin", "--no-defaults", "--socket="+m.sock, "-uroot", "ping").Run() != nil {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(base, "error.log"))
			t.Fatalf("mariadbd exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mariadbd did not answer within 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return m
}

// ralMysqldFlags returns the --mysqld.username and collector flags of a generated
// mysqld_exporter service (its entrypoint is a shell line that reads the password).
func ralMysqldFlags(t *testing.T, s ralService) (user string, flags []string) {
	t.Helper()
	for _, f := range strings.Fields(strings.Join(s.Entrypoint, " ")) {
		switch {
		case strings.HasPrefix(f, "--mysqld.username="):
			user = strings.TrimPrefix(f, "--mysqld.username=")
		case strings.HasPrefix(f, "--collect.") || strings.HasPrefix(f, "--no-collect."):
			flags = append(flags, f)
		}
	}
	if user == "" {
		t.Fatalf("no --mysqld.username in %q", s.Entrypoint)
	}
	return user, flags
}

// ralMyReplicaRender renders SHOW ALL SLAVES STATUS as mysqld_exporter 0.17.2 does for the
// columns the alerts read: "Yes" is 1, "No" and "Connecting" are 0, labels from the row.
func ralMyReplicaRender(t *testing.T, m ralMy) []ralSample {
	t.Helper()
	row := m.status(t, "SHOW ALL SLAVES STATUS")
	if len(row) == 0 {
		return nil
	}
	labels := map[string]string{"channel_name": "", "connection_name": row["Connection_name"], "master_host": row["Master_Host"], "master_uuid": ""}
	yes := map[string]float64{"Yes": 1, "No": 0, "Connecting": 0}
	var out []ralSample
	for col, name := range map[string]string{"Slave_IO_Running": "mysql_slave_status_slave_io_running", "Slave_SQL_Running": "mysql_slave_status_slave_sql_running"} {
		v, ok := yes[row[col]]
		if !ok {
			t.Fatalf("%s = %q", col, row[col])
		}
		out = append(out, ralSample{name: name, labels: labels, value: v})
	}
	id, err := strconv.ParseFloat(row["Master_Server_Id"], 64)
	if err != nil {
		t.Fatalf("Master_Server_Id = %q", row["Master_Server_Id"])
	}
	return append(out, ralSample{name: "mysql_slave_status_master_server_id", labels: labels, value: id})
}

// ralMyConnectedRender renders Slaves_connected as mysqld_exporter's global status collector does.
func ralMyConnectedRender(t *testing.T, m ralMy) []ralSample {
	t.Helper()
	v, err := strconv.ParseFloat(strings.Fields(m.sql(t, "SHOW GLOBAL STATUS LIKE 'Slaves_connected'"))[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return []ralSample{{name: "mysql_global_status_slaves_connected", labels: map[string]string{}, value: v}}
}

func TestRalMariadbReplication(t *testing.T) {
	t.Parallel()
	promtool := e2eutil.RequireTool(t, "promtool")
	for _, tool := range []string{"mariadb", "mariadb-admin", "mariadb-install-db"} {
		e2eutil.RequireTool(t, tool)
	}
	dir := e2eutil.Generate(t, map[string]string{"db": "mariadb", "db_replica": "streaming"})
	ralCheckCompose(t, dir)
	rules := filepath.Join(dir, "monitoring", "prometheus", "rules", "replication.yml")
	ioStopped := ralRuleExpr(t, rules, "MysqlReplicaIoThreadStopped")
	missing := ralRuleExpr(t, rules, "MysqlReplicaMissing")
	services := ralMonitoringServices(t, dir)
	version := ralPinned(t, services, "db-exporter")
	if v := ralPinned(t, services, "db-replica-exporter"); v != version {
		t.Errorf("db-replica-exporter pins mysqld_exporter %s, db-exporter %s", v, version)
	}
	// The replica is scraped at all: with the primary alone, mysql_slave_status_* never exist
	// (the primary has no replica status) and no replication alert can fire.
	prom := e2eutil.ReadFile(t, filepath.Join(dir, "monitoring", "prometheus", "prometheus.yml"))
	if !strings.Contains(prom, `"db-exporter:9104", "db-replica-exporter:9104"`) {
		t.Errorf("prometheus.yml does not scrape db-replica-exporter:9104 in job mysql")
	}
	user, primaryFlags := ralMysqldFlags(t, services["db-exporter"])
	_, replicaFlags := ralMysqldFlags(t, services["db-replica-exporter"])

	primary := ralStartMariadb(t, 1, "--log-bin=mysql-bin", "--binlog-format=ROW")
	replica := ralStartMariadb(t, 2, "--read-only")
	// What the mariadb image creates for MARIADB_USER (the exporter's account before 1.6), an
	// administrator that reaches the server over TCP as root does in compose, the replication
	// account.
	primary.sql(t, `CREATE DATABASE app; CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
GRANT ALL PRIVILEGES ON app.* TO 'app'@'%'; CREATE USER 'ral_admin'@'%' IDENTIFIED BY 'admin-pw';
GRANT ALL PRIVILEGES ON *.* TO 'ral_admin'@'%' WITH GRANT OPTION; CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pw';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1), (2);`)
	// Without the generated roles the application's account cannot list the binary logs
	// (the binlog_size collector); the exporter's role that ops/db/roles.sh creates can.
	if _, err := primary.sqlErr("app", "SHOW BINARY LOGS"); err == nil {
		t.Errorf("SHOW BINARY LOGS worked for app: this test cannot tell whether the exporter's grants are needed")
	}
	ralRunRoles(t, dir, primary)
	if _, err := primary.sqlErr(user, "SHOW BINARY LOGS"); err != nil {
		t.Errorf("SHOW BINARY LOGS as %s after ops/db/roles.sh: %v", user, err)
	}
	replica.sql(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos; START SLAVE;", primary.port))
	// The rows and the grants reach the replica through the binary log.
	ralWaitFor(t, "the replica has the rows and the exporter's grants", func() bool {
		n, _ := replica.sqlErr("", "SELECT COUNT(*) FROM app.t")
		gr, _ := replica.sqlErr("", fmt.Sprintf("SHOW GRANTS FOR '%s'@'%%'", user))
		return n == "2" && strings.Contains(gr, "SLAVE MONITOR")
	})
	if rows, err := replica.sqlErr(user, "SHOW ALL SLAVES STATUS"); err != nil || rows == "" {
		t.Errorf("SHOW ALL SLAVES STATUS as %s on the replica: %q %v", user, rows, err)
	}
	if rows := primary.sql(t, "SHOW ALL SLAVES STATUS"); rows != "" {
		t.Errorf("the primary has replica status: %q", rows)
	}
	ralWaitFor(t, "the primary counts its replica", func() bool { return ralMyConnectedRender(t, primary)[0].value == 1 })

	var primaryURL, replicaURL string
	if bin := ralExporter(t, "mysqld_exporter", version); bin != "" {
		env := []string{"MYSQLD_EXPORTER_PASSWORD=app-pw"}
		primaryURL = ralStartExporter(t, bin, env, append([]string{fmt.Sprintf("--mysqld.address=127.0.0.1:%d", primary.port), "--mysqld.username=" + user}, primaryFlags...)...)
		replicaURL = ralStartExporter(t, bin, env, append([]string{fmt.Sprintf("--mysqld.address=127.0.0.1:%d", replica.port), "--mysqld.username=" + user}, replicaFlags...)...)
	}
	// One scrape of each server: the series the two alerts read.
	take := func() (p, r []ralSample) {
		p, r = ralMyConnectedRender(t, primary), append(ralMyReplicaRender(t, replica), ralMyConnectedRender(t, replica)...)
		if primaryURL == "" {
			return p, r
		}
		names := []string{"mysql_global_status_slaves_connected", "mysql_slave_status_slave_io_running", "mysql_slave_status_slave_sql_running", "mysql_slave_status_master_server_id"}
		realP, realR := ralScrape(t, primaryURL), ralScrape(t, replicaURL)
		ralSameSeries(t, "mysqld_exporter "+version+" (primary)", p, realP, true)
		ralSameSeries(t, "mysqld_exporter "+version+" (replica)", r, realR, true)
		for _, s := range realP {
			switch {
			case strings.HasPrefix(s.name, "mysql_slave_status_"):
				t.Errorf("the primary's exporter reports %s", s.key())
			case s.name == "mysql_exporter_collector_success" && s.value != 1:
				t.Errorf("the primary's exporter: %s = 0 (a collector failed: flags or grants)", s.key())
			}
		}
		if len(ralPick(realP, "mysql_binlog_size_bytes")) != 1 {
			t.Errorf("the primary's exporter has no mysql_binlog_size_bytes (flags %q, grants of ops/db/roles.sh)", primaryFlags)
		}
		return ralPick(realP, names...), ralPick(realR, names...)
	}
	p0, r0 := take()
	replica.sql(t, "STOP SLAVE IO_THREAD")
	// The primary's dump thread notices the closed connection when it next sends: a write
	// makes it send now rather than at the next heartbeat.
	n := 2
	ralWaitFor(t, "the IO thread stops and the primary sees no replica", func() bool {
		n++
		primary.sql(t, fmt.Sprintf("INSERT INTO app.t VALUES (%d)", n))
		return replica.status(t, "SHOW ALL SLAVES STATUS")["Slave_IO_Running"] == "No" && ralMyConnectedRender(t, primary)[0].value == 0
	})
	p1, r1 := take()
	t.Logf("replica before: %v, after STOP SLAVE IO_THREAD: %v; primary before: %v, after: %v (metrics from %s)", r0, r1, p0, p1,
		map[bool]string{true: "mysqld_exporter " + version, false: "the rendering"}[primaryURL != ""])

	// One scrape a minute: healthy at 0-1m, the IO thread stopped at 2-3m.
	inputs := map[string]string{}
	for _, s := range r1 {
		k, v := ralInput([][]ralSample{r0, r0, r1, r1}, s, "mysql", "db-replica-exporter:9104")
		inputs[k] = v
	}
	ralExprTest(t, promtool, t.TempDir(), "io-thread", ioStopped, inputs, []int{0, 1}, []int{2, 3})
	// The primary's side: it counts no replica; the replica (it has replica status, and no
	// replica of its own) never counts. Both servers' series, as Prometheus holds them.
	for _, s := range p1 {
		k, v := ralInput([][]ralSample{p0, p0, p1, p1}, s, "mysql", "db-exporter:9104")
		inputs[k] = v
	}
	ralExprTest(t, promtool, t.TempDir(), "replica-missing", missing, inputs, []int{0, 1}, []int{2, 3})
}

// ralPgRender renders, with postgres_exporter 0.17.1's own queries, the series the
// replication alerts read: pg_replication_is_replica (collector replication), the built-in
// pg_stat_replication and pg_replication_slots maps (labels and server="host:port"), and the
// stat_wal_receiver collector's received_tli (a row with a NULL column is left out, as the
// collector does).
func ralPgRender(t *testing.T, p ralPg) []ralSample {
	t.Helper()
	server := fmt.Sprintf("127.0.0.1:%d", p.port)
	out := []ralSample{{name: "pg_replication_is_replica", labels: map[string]string{},
		value: map[string]float64{"t": 1, "f": 0}[p.psql(t, "SELECT pg_is_in_recovery()")]}}
	rows := func(sql string) [][]string {
		var rs [][]string
		if o := p.psql(t, sql); o != "" {
			for _, l := range strings.Split(o, "\n") {
				rs = append(rs, strings.Split(l, "|"))
			}
		}
		return rs
	}
	num := func(s string) float64 {
		if s == "" {
			return 0
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	// 0.17.1 labels the row with slot_name, which holds the WAL sender's pid.
	for _, r := range rows(`SELECT application_name, coalesce(host(client_addr), ''), state, pid,
		(CASE pg_is_in_recovery() WHEN 't' THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), replay_lsn)::float ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float END)
		FROM pg_stat_replication`) {
		out = append(out, ralSample{name: "pg_stat_replication_pg_wal_lsn_diff",
			labels: map[string]string{"application_name": r[0], "client_addr": r[1], "state": r[2], "slot_name": r[3], "server": server}, value: num(r[4])})
	}
	for _, r := range rows(`SELECT slot_name, coalesce(database, ''),
		(CASE pg_is_in_recovery() WHEN 't' THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), restart_lsn) ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END)
		FROM pg_replication_slots`) {
		out = append(out, ralSample{name: "pg_replication_slots_pg_wal_lsn_diff",
			labels: map[string]string{"slot_name": r[0], "database": r[1], "server": server}, value: num(r[2])})
	}
	for _, r := range rows(`SELECT trim(both '''' from substring(conninfo from 'host=([^ ]*)')), slot_name, status, received_tli
		FROM pg_catalog.pg_stat_wal_receiver
		WHERE conninfo ~ 'host=' AND slot_name IS NOT NULL AND status IS NOT NULL AND receive_start_lsn IS NOT NULL
		AND flushed_lsn IS NOT NULL AND last_msg_send_time IS NOT NULL AND last_msg_receipt_time IS NOT NULL
		AND latest_end_lsn IS NOT NULL AND latest_end_time IS NOT NULL`) {
		out = append(out, ralSample{name: "pg_stat_wal_receiver_received_tli",
			labels: map[string]string{"upstream_host": r[0], "slot_name": r[1], "status": r[2]}, value: num(r[3])})
	}
	return out
}

// TestRalPostgresReplication: a primary and a hot standby of it (pg_basebackup with a
// replication slot); the standby's WAL receiver is stopped (primary_conninfo emptied), WAL is
// written on the primary. PostgresReplicaMissing turns true on the primary's metrics,
// PostgresReplicaNotStreaming on the standby's, PostgresReplicationSlotRetainingWal on the
// slot's (against a file system five times the WAL it holds).
func TestRalPostgresReplication(t *testing.T) {
	t.Parallel()
	promtool := e2eutil.RequireTool(t, "promtool")
	e2eutil.RequireTool(t, "psql")
	if _, err := os.Stat(filepath.Join(ralPgBin, "pg_basebackup")); err != nil {
		e2eutil.Unavailable(t, "PostgreSQL 15 server binaries are not installed: "+err.Error())
	}
	dir := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_replica": "streaming"})
	ralCheckCompose(t, dir)
	rules := filepath.Join(dir, "monitoring", "prometheus", "rules", "replication.yml")
	missing := ralRuleExpr(t, rules, "PostgresReplicaMissing")
	notStreaming := ralRuleExpr(t, rules, "PostgresReplicaNotStreaming")
	retaining := ralRuleExpr(t, rules, "PostgresReplicationSlotRetainingWal")
	services := ralMonitoringServices(t, dir)
	version := ralPinned(t, services, "db-exporter")
	if v := ralPinned(t, services, "db-replica-exporter"); v != version {
		t.Errorf("db-replica-exporter pins postgres_exporter %s, db-exporter %s", v, version)
	}
	prom := e2eutil.ReadFile(t, filepath.Join(dir, "monitoring", "prometheus", "prometheus.yml"))
	if !strings.Contains(prom, `"db-exporter:9187", "db-replica-exporter:9187"`) {
		t.Errorf("prometheus.yml does not scrape db-replica-exporter:9187 in job postgres")
	}

	primary := ralStartPostgres(t, "wal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5")
	primary.psql(t, "CREATE ROLE app LOGIN PASSWORD 'app-pw' IN ROLE pg_monitor")
	primary.psql(t, "SELECT pg_create_physical_replication_slot('db_replica')")
	standby := ralPg{port: e2eutil.FreePort(t), uid: primary.uid, gid: primary.gid, sock: primary.sock}
	standby.dir = filepath.Join(filepath.Dir(primary.dir), "standby")
	if out, err := primary.as(exec.Command(filepath.Join(ralPgBin, "pg_basebackup"), "-h", primary.sock, "-p", strconv.Itoa(primary.port),
		"-U", "postgres", "-D", standby.dir, "-R", "-S", "db_replica", "-X", "stream")).CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(standby.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "port = %d\nhot_standby = on\n", standby.port)
	f.Close()
	pgctl := func(args ...string) error {
		out, err := standby.as(exec.Command(filepath.Join(ralPgBin, "pg_ctl"), args...)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := pgctl("-D", standby.dir, "-l", filepath.Join(standby.dir, "server.log"), "-w", "-t", "180", "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pgctl("-D", standby.dir, "-m", "immediate", "-w", "-t", "120", "stop"); err != nil {
			t.Errorf("stop the standby: %v", err)
		}
	})
	primary.waitSQL(t, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL", "1")
	// latest_end_lsn stays NULL on a standby just seeded from an idle primary (and the
	// exporter then leaves the receiver out): a write moves it.
	primary.psql(t, "CREATE TABLE ral_seed AS SELECT 1 AS one")
	standby.waitSQL(t, "SELECT status = 'streaming' AND latest_end_lsn IS NOT NULL FROM pg_stat_wal_receiver", "t")

	var primaryURL, standbyURL string
	if bin := ralExporter(t, "postgres_exporter", version); bin != "" {
		dsn := func(p ralPg) []string {
			return []string{fmt.Sprintf("DATA_SOURCE_URI=127.0.0.1:%d/postgres?sslmode=disable", p.port), "DATA_SOURCE_USER=app", "DATA_SOURCE_PASS=app-pw"}
		}
		primaryURL = ralStartExporter(t, bin, dsn(primary), services["db-exporter"].Command...)
		standbyURL = ralStartExporter(t, bin, dsn(standby), services["db-replica-exporter"].Command...)
	}
	names := []string{"pg_replication_is_replica", "pg_stat_replication_pg_wal_lsn_diff", "pg_replication_slots_pg_wal_lsn_diff", "pg_stat_wal_receiver_received_tli"}
	take := func() (p, s []ralSample) {
		p, s = ralPgRender(t, primary), ralPgRender(t, standby)
		if primaryURL == "" {
			return p, s
		}
		allP, allS := ralScrape(t, primaryURL), ralScrape(t, standbyURL)
		realP, realS := ralPick(allP, names...), ralPick(allS, names...)
		ralSameSeries(t, "postgres_exporter "+version+" (primary)", p, realP, false)
		ralSameSeries(t, "postgres_exporter "+version+" (standby)", s, realS, false)
		ralSameSeries(t, "postgres_exporter "+version+" (primary, reverse)", realP, p, false)
		ralSameSeries(t, "postgres_exporter "+version+" (standby, reverse)", realS, s, false)
		return realP, realS
	}
	p0, s0 := take()
	if len(ralPick(s0, "pg_stat_wal_receiver_received_tli")) != 1 {
		t.Errorf("the streaming standby's metrics have no pg_stat_wal_receiver_received_tli: %v", s0)
	}

	// Break it: the standby's WAL receiver stops; the primary writes on, the slot keeps it.
	standby.psql(t, "ALTER SYSTEM SET primary_conninfo = ''")
	standby.psql(t, "SELECT pg_reload_conf()")
	standby.waitSQL(t, "SELECT count(*) FROM pg_stat_wal_receiver", "0")
	primary.waitSQL(t, "SELECT count(*) FROM pg_stat_replication", "0")
	primary.psql(t, "CREATE TABLE ral_fill AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 50000) g")
	primary.psql(t, "SELECT pg_switch_wal()")
	p1, s1 := take()
	t.Logf("primary healthy: %v; broken: %v", p0, p1)
	t.Logf("standby healthy: %v; broken: %v (metrics from %s)", s0, s1, map[bool]string{true: "postgres_exporter " + version, false: "the rendering"}[primaryURL != ""])

	both := func(pa, pb, sa, sb []ralSample) map[string]string {
		in := map[string]string{}
		for _, x := range append(append([]ralSample{}, pa...), pb...) {
			k, v := ralInput([][]ralSample{pa, pa, pb, pb}, x, "postgres", "db-exporter:9187")
			in[k] = v
		}
		for _, x := range append(append([]ralSample{}, sa...), sb...) {
			k, v := ralInput([][]ralSample{sa, sa, sb, sb}, x, "postgres", "db-replica-exporter:9187")
			in[k] = v
		}
		return in
	}
	inputs := both(p0, p1, s0, s1)
	ralExprTest(t, promtool, t.TempDir(), "replica-missing", missing, inputs, []int{0, 1}, []int{2, 3})
	ralExprTest(t, promtool, t.TempDir(), "not-streaming", notStreaming, inputs, []int{0, 1}, []int{2, 3})
	// The standby's own view decides when the primary's exporter is not there.
	ralExprTest(t, promtool, t.TempDir(), "not-streaming-standby-only", notStreaming, both(nil, nil, s0, s1), []int{0, 1}, []int{2, 3})

	// The slot's WAL against a file system of five times what it holds when broken: over 10%.
	var held float64
	for _, x := range ralPick(p1, "pg_replication_slots_pg_wal_lsn_diff") {
		held = x.value
	}
	for _, x := range ralPick(p0, "pg_replication_slots_pg_wal_lsn_diff") {
		if x.value >= held/2 {
			t.Fatalf("the slot held %v bytes while streaming and %v after: the write did not show", x.value, held)
		}
	}
	size := strconv.FormatFloat(5*held, 'f', 0, 64)
	inputs[`node_filesystem_size_bytes{device="/dev/sda1",fstype="ext4",instance="node-exporter:9100",job="node",mountpoint="/"}`] = strings.Repeat(size+" ", 3) + size
	ralExprTest(t, promtool, t.TempDir(), "slot-retaining", retaining, inputs, []int{0, 1}, []int{2, 3})
}

// ralRunRoles runs the generated ops/db/roles.sh against m as ral_admin, every role's password
// app-pw (the one sqlErr logs in with).
func ralRunRoles(t *testing.T, dir string, m ralMy) {
	t.Helper()
	pw := t.TempDir()
	env := append(os.Environ(), "DB_HOST=127.0.0.1", "DB_PORT="+strconv.Itoa(m.port), "DB_ADMIN_USER=ral_admin", "DB_WAIT_SECONDS=30")
	for _, v := range []string{"ADMIN", "APP", "MIGRATE", "MONITOR", "BACKUP"} {
		content := "app-pw"
		if v == "ADMIN" {
			content = "admin-pw"
		}
		f := filepath.Join(pw, v)
		if err := os.WriteFile(f, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "DB_"+v+"_PASSWORD_FILE="+f)
	}
	cmd := exec.Command("bash", filepath.Join(dir, "ops", "db", "roles.sh"))
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ops/db/roles.sh: %v\n%s", err, out)
	}
}
