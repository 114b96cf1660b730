package monitoring

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
	"go.yaml.in/yaml/v3"
)

// The Grafana dashboards and their provisioning: every panel's queries draw on the jobs the
// dashboard is for, the datasource and the provisioning files match the compose mounts.

// mcMetricSources maps every metric name the dashboards may use to the job that exposes it
// (the job labels of docs/monitoring-contract.md). Names come from the exporters' collectors
// at the pinned versions, the backends' /metrics (docs/webapp-contract.md) and the textfile
// metrics of the contract.
var mcMetricSources = func() map[string]string {
	m := map[string]string{}
	add := func(job string, names ...string) {
		for _, n := range names {
			m[n] = job
		}
	}
	add("node", "node_cpu_seconds_total", "node_load1", "node_load5", "node_load15",
		"node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes", "node_filesystem_avail_bytes",
		"node_filesystem_size_bytes", "node_filesystem_files_free", "node_filesystem_files",
		"node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_vmstat_oom_kill", "node_boot_time_seconds",
		// Written by batch jobs into the textfile directory, exposed by node-exporter.
		"backup_last_success_timestamp_seconds", "backup_last_duration_seconds", "backup_last_size_bytes",
		"restore_test_last_success_timestamp_seconds", "restore_test_last_duration_seconds", "restore_test_last_result")
	add("cadvisor", "container_cpu_usage_seconds_total", "container_cpu_cfs_throttled_periods_total",
		"container_cpu_cfs_periods_total", "container_memory_working_set_bytes", "container_spec_memory_limit_bytes",
		"container_oom_events_total", "container_start_time_seconds", "container_network_receive_bytes_total",
		"container_network_transmit_bytes_total", "container_fs_reads_bytes_total", "container_fs_writes_bytes_total",
		"container_last_seen")
	add("postgres", "pg_up", "pg_stat_activity_count", "pg_settings_max_connections", "pg_database_size_bytes",
		"pg_stat_database_blks_hit", "pg_stat_database_blks_read", "pg_stat_database_xact_commit",
		"pg_stat_database_xact_rollback", "pg_stat_database_tup_fetched", "pg_stat_database_tup_inserted",
		"pg_stat_database_tup_updated", "pg_stat_database_tup_deleted", "pg_stat_database_deadlocks",
		"pg_stat_database_temp_bytes", "pg_stat_user_tables_n_dead_tup", "pg_replication_lag_seconds")
	add("mysql", "mysql_up", "mysql_global_status_threads_connected", "mysql_global_status_threads_running",
		"mysql_global_variables_max_connections", "mysql_global_status_uptime", "mysql_global_status_queries",
		"mysql_global_status_commands_total", "mysql_global_status_slow_queries", "mysql_global_status_aborted_connects",
		"mysql_global_status_aborted_clients", "mysql_global_status_innodb_row_lock_waits",
		"mysql_global_status_innodb_deadlocks", "mysql_global_status_bytes_received", "mysql_global_status_bytes_sent")
	add("redis", "redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_connected_clients",
		"redis_db_keys", "redis_commands_processed_total", "redis_keyspace_hits_total", "redis_keyspace_misses_total",
		"redis_evicted_keys_total", "redis_rejected_connections_total")
	add("backend", "http_requests_total", "http_request_duration_seconds_bucket",
		"http_request_duration_seconds_sum", "http_request_duration_seconds_count")
	add("blackbox", "probe_success", "probe_duration_seconds", "probe_ssl_earliest_cert_expiry", "probe_http_status_code",
		"probe_http_duration_seconds", "probe_tls_version_info")
	add("prometheus", "prometheus_rule_evaluation_failures_total", "prometheus_notifications_dropped_total",
		"prometheus_tsdb_storage_blocks_bytes", "prometheus_tsdb_head_series")
	add("alertmanager", "alertmanager_notifications_total", "alertmanager_notifications_failed_total")
	// Synthesised by Prometheus for every target and every alert: any job.
	add("", "up", "ALERTS")
	return m
}()

// mcDashboardJobs are the jobs each dashboard draws from.
var mcDashboardJobs = map[string][]string{
	"host.json":       {"node"},
	"containers.json": {"cadvisor"},
	"postgres.json":   {"postgres"},
	"mysql.json":      {"mysql"},
	"redis.json":      {"redis"},
	"backend.json":    {"backend", "blackbox", ""},
	"tls.json":        {"blackbox"},
	"alerts.json":     {"prometheus", "alertmanager", ""},
}

// mcSelector is one series selector of a PromQL expression: a metric name and its matchers.
type mcSelector struct {
	metric   string
	matchers map[string]string // label -> value, whatever the operator
}

// mcPromQLWords are PromQL keywords and aggregation operators, which are never metric names.
var mcPromQLWords = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "count_values": true, "stddev": true,
	"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "group": true, "and": true, "or": true,
	"unless": true, "bool": true, "offset": true, "by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "inf": true, "nan": true,
}

// mcSelectors extracts the series selectors of a PromQL expression: it skips strings, ranges,
// Grafana variables, function calls and the label lists of by/without/on/ignoring/group_*.
// It is no parser; promtool checks the syntax in TestGrafanaDashboardsPromQL.
func mcSelectors(expr string) ([]mcSelector, error) {
	var out []mcSelector
	isIdent := func(b byte, first bool) bool {
		return b == '_' || b == ':' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (!first && b >= '0' && b <= '9')
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	closing := func(i int, open, close byte) (int, error) { // i at open; returns index after close
		depth := 0
		for j := i; j < len(expr); j++ {
			switch expr[j] {
			case '"', '\'', '`':
				q := expr[j]
				for j++; j < len(expr) && expr[j] != q; j++ {
					if expr[j] == '\\' {
						j++
					}
				}
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	matcher := regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	for i := 0; i < len(expr); {
		b := expr[i]
		switch {
		case b == '"' || b == '\'' || b == '`':
			j := i + 1
			for j < len(expr) && expr[j] != b {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case b == '[':
			j, err := closing(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case b == '$':
			i++
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case b >= '0' && b <= '9' || b == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(b, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				i = j
				if next < len(expr) && expr[next] == '(' {
					k, err := closing(next, '(', ')')
					if err != nil {
						return nil, err
					}
					i = k
				}
			case mcPromQLWords[word]:
				i = j
			case next < len(expr) && expr[next] == '(':
				i = j // a function call
			default:
				sel := mcSelector{metric: word, matchers: map[string]string{}}
				i = j
				if j < len(expr) && expr[j] == '{' {
					k, err := closing(j, '{', '}')
					if err != nil {
						return nil, err
					}
					for _, part := range mcSplitMatchers(expr[j+1 : k-1]) {
						m := matcher.FindStringSubmatch(part)
						if m == nil {
							return nil, fmt.Errorf("cannot read matcher %q in %q", part, expr)
						}
						sel.matchers[m[1]] = m[3]
					}
					i = k
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out, nil
}

// mcSplitMatchers splits a matcher list at the commas outside quotes.
func mcSplitMatchers(s string) []string {
	var parts []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && inQuote:
			i++
		case s[i] == '"':
			inQuote = !inQuote
		case s[i] == ',' && !inQuote:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		parts = append(parts, s[start:])
	}
	return parts
}

func TestMonitoringSelectorsParser(t *testing.T) {
	got, err := mcSelectors(`sum by (le, route) (rate(http_request_duration_seconds_bucket{job="backend",route=~"$route"}[$__rate_interval])) / on (job) group_left (x) up{job="a,b"} or vector(0) and time() - node_boot_time_seconds offset 5m`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.metric)
	}
	if want := []string{"http_request_duration_seconds_bucket", "up", "node_boot_time_seconds"}; !slices.Equal(names, want) {
		t.Errorf("selectors %v, want %v", names, want)
	}
	if got[0].matchers["job"] != "backend" || got[0].matchers["route"] != "$route" || got[1].matchers["job"] != "a,b" {
		t.Errorf("matchers %+v", got)
	}
}

// mcDashboard is the part of a Grafana dashboard the tests read.
type mcDashboard struct {
	UID        string    `json:"uid"`
	Title      string    `json:"title"`
	Panels     []mcPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type mcPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *mcDatasource   `json:"datasource"`
	GridPos    *map[string]int `json:"gridPos"`
	Targets    []struct {
		Expr       string        `json:"expr"`
		Datasource *mcDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []mcPanel `json:"panels"`
}

type mcDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// mcGrafanaCases are the answer sets that change which dashboards exist.
var mcGrafanaCases = []map[string]string{
	{"db": "postgres", "cache": "none", "tls": "none"},
	{"db": "mariadb", "cache": "redis"},
	{"db": "postgres", "cache": "redis"},
	{"db": "mariadb", "cache": "none"},
}

// mcGrafanaFiles generates a project and returns its directory and its dashboards by file name.
func mcGrafanaFiles(t *testing.T, set map[string]string) (string, map[string]mcDashboard, map[string][]byte) {
	t.Helper()
	dir := e2eutil.Generate(t, set)
	dashDir := filepath.Join(dir, "monitoring", "grafana", "dashboards")
	dashboards, raw := map[string]mcDashboard{}, map[string][]byte{}
	for _, name := range e2eutil.ReadDirNames(t, dashDir) {
		b, err := os.ReadFile(filepath.Join(dashDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, ".json") {
			t.Errorf("monitoring/grafana/dashboards/%s: not a .json dashboard", name)
			continue
		}
		var d mcDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("monitoring/grafana/dashboards/%s: invalid JSON: %v", name, err)
			continue
		}
		dashboards[name], raw[name] = d, b
	}
	return dir, dashboards, raw
}

// mcAllPanels flattens the panels of a dashboard, rows included.
func mcAllPanels(ps []mcPanel) []mcPanel {
	var out []mcPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, mcAllPanels(p.Panels)...)
	}
	return out
}

func TestGrafanaDashboards(t *testing.T) {
	for _, set := range mcGrafanaCases {
		t.Run(set["db"]+"-"+set["cache"]+"-"+set["tls"], func(t *testing.T) {
			t.Parallel()
			dir, dashboards, _ := mcGrafanaFiles(t, set)

			want := []string{"alerts.json", "backend.json", "containers.json", "host.json"}
			want = append(want, map[string]string{"postgres": "postgres.json", "mariadb": "mysql.json"}[set["db"]])
			if set["tls"] != "none" { // the default is letsencrypt
				want = append(want, "tls.json")
			}
			if set["cache"] == "redis" {
				want = append(want, "redis.json")
			}
			slices.Sort(want)
			var got []string
			for name := range dashboards {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("dashboards %v, want %v (blueprint.yaml files: rules pick the database and cache ones)", got, want)
			}

			dsUID := mcCheckProvisioning(t, dir)
			uids, titles := map[string]string{}, map[string]string{}
			for name, d := range dashboards {
				if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
					t.Errorf("%s: uid %q title %q, want both (uid at most 40 characters)", name, d.UID, d.Title)
				}
				if prev, ok := uids[d.UID]; ok {
					t.Errorf("%s and %s share the uid %q", prev, name, d.UID)
				}
				if prev, ok := titles[d.Title]; ok {
					t.Errorf("%s and %s share the title %q", prev, name, d.Title)
				}
				uids[d.UID], titles[d.Title] = name, name
				mcCheckDashboard(t, name, d, dsUID)
			}
		})
	}
}

// mcCheckDashboard asserts panel ids, datasources and the metrics each query uses.
func mcCheckDashboard(t *testing.T, name string, d mcDashboard, dsUID string) {
	t.Helper()
	jobs, ok := mcDashboardJobs[name]
	if !ok {
		t.Errorf("%s: a dashboard the test does not know; add it to mcDashboardJobs", name)
		return
	}
	checkExpr := func(where, expr string) {
		sels, err := mcSelectors(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if len(sels) == 0 {
			t.Errorf("%s: %q selects no series", where, expr)
		}
		for _, s := range sels {
			job, known := mcMetricSources[s.metric]
			switch {
			case !known:
				t.Errorf("%s: metric %s is not exposed by any exporter or backend (expr %q)", where, s.metric, expr)
			case !slices.Contains(jobs, job):
				t.Errorf("%s: metric %s comes from job %q, not one of this dashboard's %v", where, s.metric, job, jobs)
			case job != "" && s.matchers["job"] != "" && s.matchers["job"] != job:
				t.Errorf("%s: %s{job=%q}, but job %q exposes it", where, s.metric, s.matchers["job"], job)
			}
		}
	}
	ids := map[int]bool{}
	var queries int
	for _, p := range mcAllPanels(d.Panels) {
		where := fmt.Sprintf("%s panel %q", name, p.Title)
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("%s: id %d is missing or not unique", where, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil {
			t.Errorf("%s: no gridPos", where)
		}
		if p.Type == "row" || len(p.Targets) == 0 { // rows and the alert list query nothing
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsUID {
			t.Errorf("%s: datasource %+v, want uid %q from the provisioned datasources", where, p.Datasource, dsUID)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != dsUID {
				t.Errorf("%s: target datasource %+v, want uid %q", where, tg.Datasource, dsUID)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: target without expr", where)
				continue
			}
			queries++
			checkExpr(where, tg.Expr)
		}
	}
	if queries < 4 {
		t.Errorf("%s: %d queries, want a real dashboard", name, queries)
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s variable %s: query %q, want label_values(<selector>, <label>)", name, v.Name, v.Definition)
			continue
		}
		checkExpr(name+" variable "+v.Name, m[1])
	}
}

// mcCheckProvisioning asserts that the datasource and dashboard provisioning files match the
// compose mounts, and returns the uid of the Prometheus datasource.
func mcCheckProvisioning(t *testing.T, dir string) string {
	t.Helper()
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	g := p.Services["grafana"]
	prov, ok := e2eutil.BindMount(g, "/etc/grafana/provisioning")
	if !ok || prov.Source != filepath.Join(dir, "monitoring", "grafana", "provisioning") || !prov.ReadOnly {
		t.Fatalf("grafana: /etc/grafana/provisioning is not monitoring/grafana/provisioning read-only: %+v", prov)
	}
	var dashMount string
	for _, v := range g.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == filepath.Join(dir, "monitoring", "grafana", "dashboards") {
			dashMount = v.Target
		}
	}
	if dashMount == "" {
		t.Fatalf("grafana: monitoring/grafana/dashboards is not mounted")
	}

	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	mcReadYAML(t, filepath.Join(dir, "monitoring", "grafana", "provisioning", "dashboards", "dashboards.yml"), &providers)
	if providers.APIVersion != 1 || len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || providers.Providers[0].Options.Path != dashMount {
		t.Errorf("dashboards.yml: %+v, want one file provider at %s (where compose mounts the dashboards)", providers, dashMount)
	}
	if home := e2eutil.Deref(g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]); home != "" {
		if rel, ok := strings.CutPrefix(home, dashMount+"/"); !ok {
			t.Errorf("grafana: home dashboard %s is not under %s", home, dashMount)
		} else if _, err := os.Stat(filepath.Join(dir, "monitoring", "grafana", "dashboards", rel)); err != nil {
			t.Errorf("grafana: home dashboard: %v", err)
		}
	}

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	mcReadYAML(t, filepath.Join(dir, "monitoring", "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	urls := map[string]string{"prometheus": "http://prometheus:9090", "alertmanager": "http://alertmanager:9093"}
	var promUID string
	for _, d := range ds.Datasources {
		want, ok := urls[d.Type]
		if !ok || d.URL != want {
			t.Errorf("datasource %s: type %s url %s, want a prometheus or alertmanager datasource at its compose service (%v)", d.Name, d.Type, d.URL, urls)
		}
		if d.Type == "prometheus" {
			promUID = d.UID
			if !d.IsDefault {
				t.Errorf("datasource %s is not the default", d.Name)
			}
		}
	}
	if ds.APIVersion != 1 || promUID == "" {
		t.Fatalf("datasources/prometheus.yml: %+v, want a prometheus datasource with a uid", ds)
	}
	return promUID
}

func mcReadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestGrafanaDashboardsPromQL checks the syntax of every dashboard query with promtool, as the
// expression of a recording rule (Grafana's variables replaced by plain values).
func TestGrafanaDashboardsPromQL(t *testing.T) {
	promtool := e2eutil.RequireTool(t, "promtool")
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	otherVars := regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)
	// Every dashboard file of the blueprint exists in one of these.
	for _, set := range []map[string]string{{"db": "postgres", "cache": "redis"}, {"db": "mariadb", "cache": "none"}} {
		_, dashboards, _ := mcGrafanaFiles(t, set)
		var rules strings.Builder
		rules.WriteString("groups:\n  - name: dashboards\n    rules:\n")
		n := 0
		for name, d := range dashboards {
			for _, p := range mcAllPanels(d.Panels) {
				for _, tg := range p.Targets {
					if tg.Expr == "" {
						continue
					}
					n++
					expr := otherVars.ReplaceAllString(vars.Replace(tg.Expr), "x")
					q, _ := json.Marshal(expr)
					fmt.Fprintf(&rules, "      # %s: %s\n      - record: dashboard:query_%d\n        expr: %s\n", name, strings.ReplaceAll(p.Title, "\n", " "), n, q)
				}
			}
		}
		path := filepath.Join(t.TempDir(), "dashboards.rules.yml")
		if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules on the %d dashboard queries (%v): %v\n%s", n, set, err, out)
		}
	}
}
