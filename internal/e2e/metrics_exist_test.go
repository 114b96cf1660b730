package e2e

// Metric existence: every metric and label that a generated alert rule, recording rule or
// Grafana query uses must exist in what the exporters compose.monitoring.yaml pins expose,
// with the flags it passes. A rule on a series that never exists is an alert that never fires.
//
// What the exporters expose is read from testdata/scrapes/, real /metrics captured by
// `internal/e2e/testdata/scrapes/capture.sh BINDIR` (not part of `make test`: its header says how
// to build each exporter at its pinned version into BINDIR; it needs the local PostgreSQL and
// Redis, starts its own MariaDB primary and replica, and takes a few minutes). Rerun it after
// changing an exporter's version or collector flags: TestMetricsExist compares both with the
// compose file and fails until the captures match. Captured on 2026-12-02:
//
//	mysqld_exporter 0.17.2     a primary and a replica MariaDB (10.11 here; the image is 11.4),
//	                           as the app user with the SLAVE MONITOR grant
//	postgres_exporter 0.17.1   PostgreSQL 15 here (the image is 17), as a non-superuser owner
//	redis_exporter 1.74.0      Redis 7.0 here (the image is 7.4)
//	node_exporter 1.9.1        this host; the textfile metrics are read from the generated
//	                           backup scripts' writers (ops/backup/*.sh), not from a run
//	blackbox_exporter 0.27.0   its own /metrics, and probes of a local HTTPS and HTTP site
//	prometheus 3.5.0, alertmanager 0.28.1   their own /metrics
//	cadvisor 0.52.1            NOT a live scrape: cAdvisor's cmd module is not served by the module
//	                           proxy here, so the file is cAdvisor v0.52.1's own expected
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
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/project"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// mexExposure is what one Prometheus job's targets expose: metric name -> label names.
type mexExposure struct {
	exporter string // for messages: the exporter and version, or where the names come from
	metrics  map[string]map[string]bool
}

func (e *mexExposure) add(metric string, lbls ...string) {
	if e.metrics == nil {
		e.metrics = map[string]map[string]bool{}
	}
	if e.metrics[metric] == nil {
		e.metrics[metric] = map[string]bool{}
	}
	for _, l := range lbls {
		e.metrics[metric][l] = true
	}
}

// mexScrape is one capture file: its header and its series.
type mexScrape struct {
	file, exporter, version, flags string
	metrics                        map[string]map[string]bool
}

var mexLabelName = regexp.MustCompile(`(?:^|,)\s*([a-zA-Z_][a-zA-Z0-9_]*)="`)

// mexParseExposition reads the Prometheus text format: sample names (histograms and summaries
// appear as their _bucket/_sum/_count samples) and the label names each one has.
func mexParseExposition(text string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if strings.HasPrefix(rest, "{") {
			if j := strings.LastIndex(rest, "}"); j > 0 {
				for _, m := range mexLabelName.FindAllStringSubmatch(rest[1:j], -1) {
					out[name][m[1]] = true
				}
			}
		}
	}
	return out
}

// mexLoadScrapes reads every capture of testdata/scrapes by file name.
func mexLoadScrapes(t *testing.T) map[string]mexScrape {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "scrapes", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata/scrapes (%v)", err)
	}
	out := map[string]mexScrape{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := mexScrape{file: filepath.Base(f), metrics: mexParseExposition(string(b))}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "# mex-exporter: "); ok {
				s.exporter = v
			} else if v, ok := strings.CutPrefix(line, "# mex-version: "); ok {
				s.version = v
			} else if v, ok := strings.CutPrefix(line, "# mex-flags:"); ok {
				s.flags = strings.TrimSpace(v)
			}
		}
		if s.exporter == "" || s.version == "" {
			t.Fatalf("%s: no mex-exporter/mex-version header (see capture.sh)", f)
		}
		out[s.exporter] = s
	}
	return out
}

// mexTextfileMetrics are the series the generated scripts write for node-exporter's textfile
// collector: each `# TYPE name` of a heredoc, with the labels of its sample lines (literal,
// or a `labels="..."`-style variable assigned in the same script).
func mexTextfileMetrics(t *testing.T, dir string, into *mexExposure) {
	t.Helper()
	scripts, _ := filepath.Glob(filepath.Join(dir, "ops", "backup", "*.sh"))
	if len(scripts) == 0 {
		t.Fatalf("%s: no ops/backup/*.sh", dir)
	}
	typeLine := regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) `)
	varLabel := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)=\\"`)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range typeLine.FindAllStringSubmatch(text, -1) {
			name := m[1]
			into.add(name)
			sample := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\}`)
			for _, sm := range sample.FindAllStringSubmatch(text, -1) {
				body := sm[1]
				if v, ok := strings.CutPrefix(body, "$"); ok {
					assign := regexp.MustCompile(`(?m)\b` + regexp.QuoteMeta(strings.Trim(v, "{}")) + `="([^\n]*)"`)
					for _, am := range assign.FindAllStringSubmatch(text, -1) {
						for _, lm := range varLabel.FindAllStringSubmatch(am[1], -1) {
							into.add(name, lm[1])
						}
					}
					continue
				}
				for _, lm := range mexLabelName.FindAllStringSubmatch(body, -1) {
					into.add(name, lm[1])
				}
			}
		}
	}
}

// mexExporterService ties a capture to the compose service that runs the exporter.
type mexExporterService struct {
	service, capture string
}

// mexJobs maps each Prometheus job of the generated prometheus.yml to the captures of its
// exporter and the compose service that runs it, for the answers in set.
func mexJobs(set map[string]string) map[string][]mexExporterService {
	probe := "blackbox_exporter-probe-http"
	if set["tls"] == "letsencrypt" {
		probe = "blackbox_exporter-probe"
	}
	jobs := map[string][]mexExporterService{
		"prometheus":        {{"prometheus", "prometheus"}},
		"alertmanager":      {{"alertmanager", "alertmanager"}},
		"node":              {{"node-exporter", "node_exporter"}},
		"cadvisor":          {{"cadvisor", "cadvisor"}},
		"backend":           {{"", "backend-go"}},
		"blackbox":          {{"blackbox", probe}},
		"blackbox-exporter": {{"blackbox", "blackbox_exporter"}},
	}
	if set["db"] == "mariadb" {
		jobs["mysql"] = []mexExporterService{{"db-exporter", "mysqld_exporter"}, {"db-exporter", "mysqld_exporter-replica"}}
	} else {
		jobs["postgres"] = []mexExporterService{{"db-exporter", "postgres_exporter"}}
	}
	if set["cache"] == "redis" {
		jobs["redis"] = []mexExporterService{{"redis-exporter", "redis_exporter"}}
	}
	return jobs
}

// mexCollectorFlags are the flags of an exporter's command line that change which series it
// exposes: collector switches, and cAdvisor's metric and label selection.
var mexCollectorFlags = regexp.MustCompile(`--(?:no-)?collect(?:or)?\.[a-z_.]+(?:\s|$)|--(?:disable_metrics|store_container_labels|whitelisted_container_labels|docker_only)=\S+`)

// mexServiceFlags returns an exporter service's image version and collector flags.
func mexServiceFlags(s types.ServiceConfig) (version, flags string) {
	args := strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
	var found []string
	for _, f := range mexCollectorFlags.FindAllString(args+" ", -1) {
		found = append(found, strings.TrimSpace(f))
	}
	tag := s.Image[strings.LastIndex(s.Image, ":")+1:]
	tag = strings.TrimSuffix(strings.TrimPrefix(tag, "v"), "-alpine")
	return tag, strings.Join(found, " ")
}

// mexExposures builds the exposure of every job for a generated project, and checks that each
// capture was taken at the version and with the collector flags the compose file uses.
func mexExposures(t *testing.T, dir string, set map[string]string, scrapes map[string]mexScrape) map[string]*mexExposure {
	t.Helper()
	p, err := mcLoad(dir, map[string]string{"REGISTRY": testRegistry, "TAG": testTag})
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	out := map[string]*mexExposure{}
	for job, srcs := range mexJobs(set) {
		e := &mexExposure{}
		var names []string
		for _, src := range srcs {
			sc, ok := scrapes[src.capture]
			if !ok {
				t.Errorf("job %s: no capture %s in testdata/scrapes (run capture.sh)", job, src.capture)
				continue
			}
			names = append(names, sc.exporter+" "+sc.version)
			if src.service != "" {
				svc, ok := p.Services[src.service]
				if !ok {
					t.Errorf("job %s: no compose service %s", job, src.service)
				} else if v, f := mexServiceFlags(svc); v != sc.version || f != sc.flags {
					t.Errorf("job %s: compose service %s runs version %s with collector flags %q, but %s was captured at %s with %q: the metrics it exposes differ; rerun testdata/scrapes/capture.sh with the compose file's flags",
						job, src.service, v, f, sc.file, sc.version, sc.flags)
				}
			}
			for m, ls := range sc.metrics {
				e.add(m, "job", "instance")
				for l := range ls {
					e.add(m, l)
				}
			}
		}
		e.exporter = strings.Join(names, " + ")
		if job == "node" {
			tf := &mexExposure{}
			mexTextfileMetrics(t, dir, tf)
			for m, ls := range tf.metrics {
				e.add(m, "job", "instance")
				for l := range ls {
					e.add(m, l)
				}
			}
			e.exporter += " (with the textfile metrics of ops/backup/*.sh)"
		}
		if job == "cadvisor" {
			svc := p.Services["cadvisor"]
			var kept []string
			for _, a := range svc.Command {
				if v, ok := strings.CutPrefix(a, "--whitelisted_container_labels="); ok {
					kept = strings.Split(v, ",")
				}
			}
			for m, ls := range e.metrics {
				if !ls["name"] {
					continue // machine-level series carry no container labels
				}
				e.add(m, "service") // metric_relabel_configs in prometheus.yml
				for _, k := range kept {
					e.add(m, "container_label_"+strings.NewReplacer(".", "_", "-", "_").Replace(k))
				}
			}
		}
		out[job] = e
	}
	return out
}

// mexUse is where a PromQL expression comes from, for messages.
type mexUse struct {
	where string // "monitoring/prometheus/rules/x.yml: alert Foo" or "dashboard x.json: panel Bar"
	expr  string
}

// mexProblem is one metric or label that does not exist.
type mexProblem struct{ where, what string }

// mexChecker checks PromQL expressions against the exposures.
type mexChecker struct {
	jobs     map[string]*mexExposure
	recorded map[string]map[string]bool // recording rule outputs -> their labels
	problems []mexProblem
}

// mexSynthetic are series Prometheus makes itself, with their labels.
var mexSynthetic = map[string][]string{
	"up":                                    {"job", "instance"},
	"scrape_duration_seconds":               {"job", "instance"},
	"scrape_samples_scraped":                {"job", "instance"},
	"scrape_samples_post_metric_relabeling": {"job", "instance"},
	"scrape_series_added":                   {"job", "instance"},
}

// exposers returns the jobs that may answer a selector: the one its job matcher names, or all.
func (c *mexChecker) exposers(ms []*labels.Matcher) []string {
	for _, m := range ms {
		if m.Name == "job" && m.Type == labels.MatchEqual {
			return []string{m.Value}
		}
	}
	var all []string
	for j := range c.jobs {
		all = append(all, j)
	}
	sort.Strings(all)
	return all
}

// labelsOf returns the label names a selector's series can have, or nil when its metric
// exists nowhere (a problem is recorded then).
func (c *mexChecker) labelsOf(where string, vs *parser.VectorSelector) map[string]bool {
	name := vs.Name
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if name == "" {
		c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("selector %s has no metric name", vs)})
		return nil
	}
	have := map[string]bool{}
	found := false
	switch {
	case name == "ALERTS" || name == "ALERTS_FOR_STATE":
		return nil // any label of any rule: not checked
	case mexSynthetic[name] != nil:
		found = true
		for _, l := range mexSynthetic[name] {
			have[l] = true
		}
	case c.recorded[name] != nil:
		found = true
		have = c.recorded[name]
	}
	jobs := c.exposers(vs.LabelMatchers)
	var in []string
	for _, j := range jobs {
		e, ok := c.jobs[j]
		if !ok {
			continue
		}
		in = append(in, fmt.Sprintf("%s (%s)", j, e.exporter))
		if ls, ok := e.metrics[name]; ok {
			found = true
			for l := range ls {
				have[l] = true
			}
		}
	}
	if !found {
		if len(in) == 0 {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s: no job %v is scraped", name, jobs)})
		} else {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s does not exist in job %s", name, strings.Join(in, ", "))})
		}
		return nil
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName {
			continue
		}
		if !have[m.Name] {
			c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("metric %s has no label %s (it has %s) in %s", name, m.Name, mexKeys(have), strings.Join(in, ", "))})
		}
	}
	return have
}

func mexKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// labels returns the label names the result of expr can carry (nil: unknown or any), and
// records a problem for every metric, matcher, `by`/`without` and `on`/`ignoring` label
// that does not exist.
func (c *mexChecker) labels(where string, e parser.Expr) map[string]bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return c.labelsOf(where, n)
	case *parser.MatrixSelector:
		return c.labels(where, n.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(where, n.Expr)
	case *parser.ParenExpr:
		return c.labels(where, n.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(where, n.Expr)
	case *parser.UnaryExpr:
		return c.labels(where, n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return map[string]bool{}
	case *parser.Call:
		// The labels of the first vector or range argument (histogram_quantile's second).
		var out map[string]bool
		seen := false
		for _, a := range n.Args {
			ls := c.labels(where, a)
			if t := a.Type(); !seen && (t == parser.ValueTypeVector || t == parser.ValueTypeMatrix) {
				out, seen = ls, true
			}
		}
		switch n.Func.Name {
		case "vector", "time", "scalar":
			return map[string]bool{}
		case "absent", "absent_over_time", "label_replace", "label_join":
			return nil
		}
		return out
	case *parser.AggregateExpr:
		inner := c.labels(where, n.Expr)
		if n.Param != nil {
			c.labels(where, n.Param)
		}
		if inner != nil {
			for _, l := range n.Grouping {
				if !inner[l] {
					c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("%s by/without label %s: the aggregated series have no such label (they have %s)", n.Op, l, mexKeys(inner))})
				}
			}
		}
		if n.Without || inner == nil {
			return inner
		}
		out := map[string]bool{}
		for _, l := range n.Grouping {
			out[l] = true
		}
		if n.Op == parser.TOPK || n.Op == parser.BOTTOMK {
			return inner
		}
		return out
	case *parser.BinaryExpr:
		lhs, rhs := c.labels(where, n.LHS), c.labels(where, n.RHS)
		if vm := n.VectorMatching; vm != nil && vm.On {
			for _, side := range []map[string]bool{lhs, rhs} {
				if side == nil {
					continue
				}
				for _, l := range vm.MatchingLabels {
					if !side[l] {
						c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("on (%s): one side has no label %s (it has %s)", strings.Join(vm.MatchingLabels, ", "), l, mexKeys(side))})
					}
				}
			}
		}
		// The result has the labels of its vector side (the left one of two); unknown (nil)
		// when that side's metric does not exist, so no follow-up errors are reported.
		if n.LHS.Type() == parser.ValueTypeVector {
			return lhs
		}
		if n.RHS.Type() == parser.ValueTypeVector {
			return rhs
		}
		return map[string]bool{}
	}
	return nil
}

// check parses expr and checks it; a parse error is a problem too.
func (c *mexChecker) check(u mexUse) map[string]bool {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(u.expr)
	if err != nil {
		c.problems = append(c.problems, mexProblem{u.where, fmt.Sprintf("PromQL does not parse: %v", err)})
		return nil
	}
	return c.labels(u.where, expr)
}

// mexRuleFile is the part of a Prometheus rules file the check reads.
type mexRuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// mexCheckRules checks every rule of the given files: recording rules first (their outputs,
// with the labels their expressions keep, become known metrics), then alerts.
func (c *mexChecker) checkRules(t *testing.T, dir string, files []string) {
	t.Helper()
	type rule struct{ where, record, expr string }
	var records, alerts []rule
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var rf mexRuleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, rule{fmt.Sprintf("%s: group %s: record %s", f, g.Name, r.Record), r.Record, r.Expr})
				} else {
					alerts = append(alerts, rule{fmt.Sprintf("%s: group %s: alert %s", f, g.Name, r.Alert), "", r.Expr})
				}
			}
		}
	}
	for _, r := range records {
		ls := c.check(mexUse{r.where, r.expr})
		if ls == nil {
			ls = map[string]bool{}
		}
		c.recorded[r.record] = ls
	}
	for _, r := range alerts {
		c.check(mexUse{r.where, r.expr})
	}
}

// mexGrafanaVars replaces Grafana's variables by values PromQL accepts.
var mexGrafanaVars = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)

func mexGrafanaExpr(expr string) string {
	return mexGrafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return ".*"
	})
}

// checkDashboards checks every panel target and every label_values(...) variable query.
func (c *mexChecker) checkDashboards(t *testing.T, dir string) {
	t.Helper()
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	dashDir := filepath.Join(dir, "monitoring", "grafana", "dashboards")
	for _, name := range mustReadDir(t, dashDir) {
		var d mcDashboard
		b, err := os.ReadFile(filepath.Join(dashDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("dashboard %s: %v", name, err)
			continue
		}
		for _, p := range mcAllPanels(d.Panels) {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					c.check(mexUse{fmt.Sprintf("dashboard %s: panel %q", name, p.Title), mexGrafanaExpr(tg.Expr)})
				}
			}
		}
		for _, v := range d.Templating.List {
			m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
			if m == nil {
				continue
			}
			where := fmt.Sprintf("dashboard %s: variable %s", name, v.Name)
			if ls := c.check(mexUse{where, m[1]}); ls != nil && !ls[m[2]] {
				c.problems = append(c.problems, mexProblem{where, fmt.Sprintf("label_values: %s has no label %s (it has %s)", m[1], m[2], mexKeys(ls))})
			}
		}
	}
}

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
	dir := generate(t, set) // the newest version always: this tests the check itself
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
		"alert MexWrongJob: metric redis_up does not exist in job postgres (postgres_exporter 0.17.1)",
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

// mexGenerate generates a project of the newest webapp, or of MEX_BLUEPRINT when set (such as
// webapp@1.3.0: `MEX_BLUEPRINT=webapp@1.3.0 go test ./internal/e2e -run 'TestMetricsExist$|TestMex'`
// shows what these tests find in an older version).
func mexGenerate(t *testing.T, set map[string]string) string {
	t.Helper()
	bp := os.Getenv("MEX_BLUEPRINT")
	if bp == "" {
		return generate(t, set)
	}
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{Dir: dir, Blueprint: bp, Set: set, Defaults: true, Version: "test"}); err != nil {
		t.Fatalf("generate %s %v: %v", bp, set, err)
	}
	return dir
}

// TestMexMysqlReplicaStatus: MysqlReplicationLag reads mysql_slave_status_*, so the exporter
// must run the replica-status collector, and its user must hold the privilege MariaDB asks
// for SHOW REPLICA STATUS, granted by the compose file before the exporter starts. The grant
// statement is run against the local MariaDB to prove it is the one that works.
func TestMexMysqlReplicaStatus(t *testing.T) {
	t.Parallel()
	dir := mexGenerate(t, map[string]string{"db": "mariadb"})
	p, err := mcLoad(dir, map[string]string{"REGISTRY": testRegistry, "TAG": testTag})
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	exp, ok := p.Services["db-exporter"]
	if !ok {
		t.Fatal("no db-exporter service")
	}
	args := strings.Join(append(append([]string{}, exp.Entrypoint...), exp.Command...), " ")
	if strings.Contains(args, "--no-collect.slave_status") {
		t.Errorf("db-exporter runs with --no-collect.slave_status: mysql_slave_status_* never exist and MysqlReplicationLag can never fire")
	}
	user := regexp.MustCompile(`--mysqld\.username=(\S+)`).FindStringSubmatch(args)
	if user == nil {
		t.Fatalf("db-exporter: no --mysqld.username in %q", args)
	}
	grantRe := regexp.MustCompile(`(?i)GRANT ((?:SLAVE|REPLICA) MONITOR) ON \*\.\* TO '` + regexp.QuoteMeta(user[1]) + `'@'%'`)
	var grant, grantSvc string
	for name, s := range p.Services {
		cmd := strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), " ")
		if m := grantRe.FindString(cmd); m != "" {
			grant, grantSvc = m, name
		}
	}
	if grant == "" {
		t.Fatalf("no service grants SLAVE MONITOR (or REPLICA MONITOR) to the exporter's user %s: on MariaDB >= 10.5.9 the replica-status collector is refused without it", user[1])
	}
	if dep, ok := exp.DependsOn[grantSvc]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("db-exporter does not wait for %s to complete (depends_on condition %q)", grantSvc, dep.Condition)
	}
	gs := p.Services[grantSvc]
	if !slices.ContainsFunc(gs.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == "db_root_password" }) {
		t.Errorf("%s has no db_root_password secret to grant with", grantSvc)
	}
	if gs.Restart != "no" {
		t.Errorf("%s: restart %q, want \"no\" (a one-shot)", grantSvc, gs.Restart)
	}

	requireServer(t, "MariaDB", 3306)
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
	asUser := []string{"-h", "127.0.0.1", "-P", "3306", "-u", u, "-pmex-pw", "--batch", "-e", "SHOW REPLICA STATUS"}
	if _, err := mariadb(asUser...); err == nil {
		t.Fatalf("SHOW REPLICA STATUS works without any grant: the check below proves nothing")
	}
	stmt := strings.Replace(grant, "'"+user[1]+"'", "'"+u+"'", 1)
	if out, err := mariadb(append(root, stmt)...); err != nil {
		t.Fatalf("%s: %v\n%s", stmt, err, out)
	}
	if out, err := mariadb(asUser...); err != nil {
		t.Errorf("after %q (from %s), SHOW REPLICA STATUS is still refused: %v\n%s", grant, grantSvc, err, out)
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
		for _, name := range mustReadDir(t, dashDir) {
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
