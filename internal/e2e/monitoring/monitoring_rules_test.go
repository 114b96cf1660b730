package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The monitoring rules tests check the generated Prometheus configuration, alert rules and
// their promtool unit tests with the real promtool, for answer sets covering every database,
// both cache answers, both TLS answers, every backend (their histograms differ) and several
// service level objectives, including ones too low for the fastest burn-rate windows:
//   - `promtool check config` on monitoring/prometheus/prometheus.yml, run in its folder so
//     that `rule_files: [rules/*.yml]` resolves; `promtool check rules` on every rules file
//     (lint included); `promtool test rules` on every test file;
//   - the YAML itself: the scrape jobs and probe targets the answers call for; each rules
//     file has a test file and back; the alerts are exactly those of the answers; every alert
//     has severity, summary, description and a runbook_url of <runbook_base_url>/docs/runbooks/
//     <alert-in-kebab-case>.md; every alert has at least one test case where it fires and
//     one where it does not (the always-firing Watchdog excepted), and no test names an alert
//     that does not exist (promtool would pass `exp_alerts: []` for a misspelt name).

// monRunbookBase is the runbook_base_url answered in every case, so a hard-coded default fails.
const monRunbookBase = "https://git.example.test/ops/mon-app/-/blob/main"

type monCase struct {
	db, cache, tls, backend, slo string
	latencyMs                    int
	// noReplica answers db_replica=none (the default is a streaming replica); physical answers
	// db_backup_method=physical (WAL archiving for PostgreSQL).
	noReplica, physical bool
	// wantLE is the `le` matcher the latency SLO must select for this backend and objective.
	wantLE string
}

func (c monCase) String() string {
	return fmt.Sprintf("%s-%s-%s-%s-slo%s-%dms-replica=%v-physical=%v", c.db, c.cache, c.tls, c.backend, c.slo, c.latencyMs, !c.noReplica, c.physical)
}

func (c monCase) set() map[string]string {
	return map[string]string{
		"name": "mon-app", "domain": "mon-app.example.test", "runbook_base_url": monRunbookBase,
		"db": c.db, "cache": c.cache, "tls": c.tls, "backend": c.backend,
		"slo_availability": c.slo, "slo_latency_ms": fmt.Sprint(c.latencyMs),
		"db_replica":       map[bool]string{false: "streaming", true: "none"}[c.noReplica],
		"db_backup_method": map[bool]string{false: "logical", true: "physical"}[c.physical],
	}
}

func monCases() []monCase {
	return []monCase{
		// The defaults' shape: 300 ms falls in the 0.5 s bucket of every backend.
		{db: "postgres", cache: "none", tls: "letsencrypt", backend: "go", slo: "99.9", latencyMs: 300, wantLE: `le="0.5"`},
		// Python has a 0.75 s bucket that Go and Node lack.
		{db: "mariadb", cache: "redis", tls: "none", backend: "python", slo: "99.95", latencyMs: 700, wantLE: `le="0.75"`},
		{db: "postgres", cache: "redis", tls: "none", backend: "node", slo: "99.99", latencyMs: 1000, wantLE: `le=~"1(\\.0)?"`, physical: true},
		// 95%: every window still possible. Above 10 s there is no bucket: 10 s is used.
		{db: "mariadb", cache: "none", tls: "letsencrypt", backend: "node", slo: "95", latencyMs: 20000, wantLE: `le=~"10(\\.0)?"`, noReplica: true},
		// 50%: a budget of 50% leaves only the 1x/3d window.
		{db: "postgres", cache: "redis", tls: "letsencrypt", backend: "python", slo: "50", latencyMs: 10, wantLE: `le="0.01"`, noReplica: true, physical: true},
	}
}

// monBurns are the burn-rate windows of the SLO alerts: long window and burn rate.
var monBurns = []struct {
	window string
	burn   float64
}{{"1h", 14.4}, {"6h", 6}, {"1d", 3}, {"3d", 1}}

// monWantAlerts is the alert list of docs/monitoring-contract.md for one answer set.
func monWantAlerts(c monCase) []string {
	want := []string{
		"TargetDown",
		"HostOutOfMemory", "HostOutOfDiskSpace", "HostOutOfInodes", "HostDiskWillFillIn24Hours", "HostOomKillDetected",
		"ContainerMemoryNearLimit", "ContainerCpuThrottled", "ContainerRestarting",
		// webapp 1.6.0 (issue 13): a cAdvisor that answers but sees no container.
		"ContainerMetricsMissing",
		"ProbeFailed", "ProbeSlow",
		"BackendErrorBudgetBurn", "BackendLatencyBudgetBurn",
		"BackupStale", "BackupMissing", "RestoreTestStale", "RestoreTestMissing", "RestoreTestFailed",
		// webapp 1.3.1 (issue 10): failed jobs and the verification of the local repositories.
		"BackupFailed", "BackupVerifyFailed", "BackupVerifyStale",
		"PrometheusConfigReloadFailed", "PrometheusRuleEvaluationFailures", "PrometheusNotificationsFailing",
		"AlertmanagerConfigReloadFailed", "AlertmanagerNotificationsFailing",
		"Watchdog",
	}
	if c.db == "postgres" {
		want = append(want, "PostgresDown", "PostgresTooManyConnections", "PostgresDeadlocks", "PostgresTooManyDeadTuples", "PostgresReplicationLag")
	} else {
		want = append(want, "MysqlDown", "MysqlTooManyConnections", "MysqlDeadlocks", "MysqlReplicationLag")
	}
	// webapp 1.6.0 (issue 13): replication and WAL archiving.
	switch {
	case c.noReplica:
	case c.db == "postgres":
		want = append(want, "PostgresReplicaMissing", "PostgresReplicaNotStreaming", "PostgresReplicationLagOverRpo", "PostgresReplicationSlotRetainingWal")
	default:
		want = append(want, "MysqlReplicaIoThreadStopped", "MysqlReplicaSqlThreadStopped", "MysqlReplicationLagOverRpo", "MysqlReplicaMissing", "MysqlBinlogDiskUsage")
	}
	if c.db == "postgres" && c.physical {
		want = append(want, "PostgresWalArchivingFailing", "PostgresWalArchiveTooOld")
	}
	if c.cache == "redis" {
		want = append(want, "RedisDown", "RedisMemoryNearMax", "RedisRejectedConnections")
	}
	if c.tls == "letsencrypt" {
		want = append(want, "TlsCertificateExpiresSoon", "TlsCertificateExpiresVerySoon")
	}
	sort.Strings(want)
	return want
}

// monTestFile is a promtool unit test file, as far as these checks need it.
type monTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// monKebab turns a CamelCase alert name into its runbook file stem, a number being a word of
// its own: HostDiskWillFillIn24Hours -> host-disk-will-fill-in-24-hours.
func monKebab(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			prev := rs[i-1]
			switch {
			case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)),
				unicode.IsUpper(r) && unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]),
				unicode.IsDigit(r) && unicode.IsLetter(prev):
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func monReadYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// monPromtool runs promtool in dir and fails the test with its output when it fails.
func monPromtool(t *testing.T, promtool, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func monGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMonitoringRules(t *testing.T) {
	promtool := e2eutil.RequireTool(t, "promtool")
	if out, err := exec.Command(promtool, "--version").CombinedOutput(); err == nil {
		t.Logf("%s", strings.SplitN(string(out), "\n", 2)[0])
	}
	for _, c := range monCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			prom := filepath.Join(dir, "monitoring", "prometheus")
			monCheckPrometheusConfig(t, c, prom)

			ruleFiles := monGlob(t, filepath.Join(prom, "rules", "*.yml"))
			testFiles := monGlob(t, filepath.Join(prom, "tests", "*.test.yml"))
			if len(ruleFiles) == 0 || len(testFiles) == 0 {
				t.Fatalf("no rules (%d) or no tests (%d) under %s", len(ruleFiles), len(testFiles), prom)
			}

			// promtool, in parallel: `test rules` is mostly waiting.
			var wg sync.WaitGroup
			run := func(args ...string) {
				wg.Add(1)
				go func() { defer wg.Done(); monPromtool(t, promtool, prom, args...) }()
			}
			run("check", "config", "prometheus.yml")
			for _, f := range ruleFiles {
				run("check", "rules", filepath.Join("rules", filepath.Base(f)))
			}
			for _, f := range testFiles {
				run("test", "rules", filepath.Join("tests", filepath.Base(f)))
			}

			alerts := monCheckRules(t, c, ruleFiles)
			monCheckTests(t, prom, ruleFiles, testFiles, alerts)
			wg.Wait()
		})
	}
}

// monCheckPrometheusConfig checks the scrape jobs, probe targets and rule files of prometheus.yml.
func monCheckPrometheusConfig(t *testing.T, c monCase, prom string) {
	t.Helper()
	var cfg struct {
		Global struct {
			ExternalLabels map[string]string `yaml:"external_labels"`
		} `yaml:"global"`
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string              `yaml:"job_name"`
			MetricsPath   string              `yaml:"metrics_path"`
			Params        map[string][]string `yaml:"params"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			RelabelConfigs []map[string]any `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	monReadYAML(t, filepath.Join(prom, "prometheus.yml"), &cfg)

	if got := cfg.Global.ExternalLabels["project"]; got != "mon-app" {
		t.Errorf("external label project = %q, want mon-app", got)
	}
	if len(cfg.Alerting.Alertmanagers) != 1 || len(cfg.Alerting.Alertmanagers[0].StaticConfigs) != 1 ||
		!slices.Equal(cfg.Alerting.Alertmanagers[0].StaticConfigs[0].Targets, []string{"alertmanager:9093"}) {
		t.Errorf("alerting: want one Alertmanager at alertmanager:9093, got %+v", cfg.Alerting)
	}
	if !slices.Equal(cfg.RuleFiles, []string{"rules/*.yml"}) {
		t.Errorf("rule_files = %q, want [rules/*.yml]", cfg.RuleFiles)
	}

	scheme := map[string]string{"letsencrypt": "https", "none": "http"}[c.tls]
	dbJob, dbPort := "postgres", ":9187"
	if c.db == "mariadb" {
		dbJob, dbPort = "mysql", ":9104"
	}
	dbTargets := []string{"db-exporter" + dbPort}
	if !c.noReplica {
		dbTargets = append(dbTargets, "db-replica-exporter"+dbPort)
	}
	want := map[string][]string{
		"prometheus":        {"localhost:9090"},
		"alertmanager":      {"alertmanager:9093"},
		"backend":           nil, // DNS service discovery, checked below
		"node":              {"node-exporter:9100"},
		"cadvisor":          {"cadvisor:8080"},
		dbJob:               dbTargets,
		"blackbox":          {scheme + "://mon-app.example.test/healthz", scheme + "://mon-app.example.test/readyz"},
		"blackbox-exporter": {"blackbox:9115"},
	}
	if c.cache == "redis" {
		want["redis"] = []string{"redis-exporter:9121"}
	}
	seen := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if seen[sc.JobName] {
			t.Errorf("job %s is defined twice", sc.JobName)
		}
		seen[sc.JobName] = true
		targets, ok := want[sc.JobName]
		if !ok {
			t.Errorf("unexpected scrape job %s", sc.JobName)
			continue
		}
		var got []string
		for _, s := range sc.StaticConfigs {
			got = append(got, s.Targets...)
		}
		if !slices.Equal(got, targets) {
			t.Errorf("job %s: targets %q, want %q", sc.JobName, got, targets)
		}
		switch sc.JobName {
		case "backend":
			if len(sc.DNSSDConfigs) != 1 || !slices.Equal(sc.DNSSDConfigs[0].Names, []string{"backend"}) ||
				sc.DNSSDConfigs[0].Type != "A" || sc.DNSSDConfigs[0].Port != 8080 {
				t.Errorf("job backend: want dns_sd_configs of A records of backend on port 8080, got %+v", sc.DNSSDConfigs)
			}
		case "blackbox":
			if sc.MetricsPath != "/probe" || !slices.Equal(sc.Params["module"], []string{"http_2xx"}) {
				t.Errorf("job blackbox: want metrics_path /probe and module http_2xx, got %q %v", sc.MetricsPath, sc.Params)
			}
			relabel := fmt.Sprint(sc.RelabelConfigs)
			for _, s := range []string{"__param_target", "instance", "blackbox:9115"} {
				if !strings.Contains(relabel, s) {
					t.Errorf("job blackbox: relabel_configs do not mention %s: %s", s, relabel)
				}
			}
		}
	}
	for job := range want {
		if !seen[job] {
			t.Errorf("scrape job %s is missing", job)
		}
	}

	// The blackbox module the probes use.
	var bb struct {
		Modules map[string]struct {
			Prober string `yaml:"prober"`
			HTTP   struct {
				FailIfNotSSL        bool   `yaml:"fail_if_not_ssl"`
				PreferredIPProtocol string `yaml:"preferred_ip_protocol"`
			} `yaml:"http"`
		} `yaml:"modules"`
	}
	bbPath := filepath.Join(prom, "..", "blackbox", "blackbox.yml")
	monReadYAML(t, bbPath, &bb)
	m, ok := bb.Modules["http_2xx"]
	if !ok || m.Prober != "http" || m.HTTP.PreferredIPProtocol != "ip4" || m.HTTP.FailIfNotSSL != (c.tls == "letsencrypt") {
		t.Errorf("blackbox.yml: module http_2xx = %+v (found %v), want prober http, ip4, fail_if_not_ssl %v", m, ok, c.tls == "letsencrypt")
	}
	if bbx, err := exec.LookPath("prometheus-blackbox-exporter"); err == nil {
		if out, err := exec.Command(bbx, "--config.check", "--config.file", bbPath).CombinedOutput(); err != nil {
			t.Errorf("blackbox exporter --config.check: %v\n%s", err, out)
		}
	} else if e2eutil.InCI() {
		t.Error("prometheus-blackbox-exporter is not installed (run `make tools`)")
	}
}

// monCheckRules checks every rule and returns the alerting rules by name.
func monCheckRules(t *testing.T, c monCase, ruleFiles []string) map[string][]e2eutil.PromRule {
	t.Helper()
	alerts := map[string][]e2eutil.PromRule{}
	for _, f := range ruleFiles {
		var rf e2eutil.PromRuleFile
		monReadYAML(t, f, &rf)
		if len(rf.Groups) != 1 {
			t.Errorf("%s: %d groups, want one group per component", filepath.Base(f), len(rf.Groups))
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts[r.Alert] = append(alerts[r.Alert], r)
				where := fmt.Sprintf("%s: %s", filepath.Base(f), r.Alert)
				sev := r.Labels["severity"]
				switch {
				case r.Alert == "Watchdog" && sev != "none":
					t.Errorf("%s: severity %q, want none", where, sev)
				case r.Alert != "Watchdog" && sev != "critical" && sev != "warning":
					t.Errorf("%s: severity %q, want critical or warning", where, sev)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: no %s annotation", where, a)
					}
				}
				wantURL := monRunbookBase + "/docs/runbooks/" + monKebab(r.Alert) + ".md"
				if got := r.Annotations["runbook_url"]; got != wantURL {
					t.Errorf("%s: runbook_url %q, want %q", where, got, wantURL)
				}
			}
		}
	}
	var names []string
	for n := range alerts {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := monWantAlerts(c); !slices.Equal(names, want) {
		t.Errorf("alerts:\n got %q\nwant %q", names, want)
	}

	// The SLO alerts: the burn-rate windows this objective can reach, the latency bucket.
	var budget float64
	if _, err := fmt.Sscan(c.slo, &budget); err != nil {
		t.Fatal(err)
	}
	budget = (100 - budget) / 100
	for _, name := range []string{"BackendErrorBudgetBurn", "BackendLatencyBudgetBurn"} {
		var got, want []string
		for _, r := range alerts[name] {
			got = append(got, r.Labels["window"]+"/"+r.Labels["severity"])
		}
		for _, b := range monBurns {
			sev := "critical"
			if b.burn < 6 {
				sev = "warning"
			}
			if name == "BackendLatencyBudgetBurn" || b.burn*budget < 1 {
				want = append(want, b.window+"/"+sev)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s windows %q, want %q", name, got, want)
		}
	}
	sloRaw, err := os.ReadFile(filepath.Join(filepath.Dir(ruleFiles[0]), "slo.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(sloRaw), "http_request_duration_seconds_bucket{"); n == 0 ||
		n != strings.Count(string(sloRaw), c.wantLE+",") {
		t.Errorf("slo.yml: the latency ratios must all select %s (latency objective %d ms, backend %s)", c.wantLE, c.latencyMs, c.backend)
	}

	// Rules files only for the chosen components.
	hasFile := func(name string) bool {
		return slices.ContainsFunc(ruleFiles, func(f string) bool { return filepath.Base(f) == name })
	}
	if hasFile("redis.yml") != (c.cache == "redis") {
		t.Errorf("rules/redis.yml generated: %v, want %v (cache=%s)", hasFile("redis.yml"), c.cache == "redis", c.cache)
	}
	return alerts
}

// monCheckTests checks that the test files match the rules files and that every alert has a
// firing and a non-firing test case.
func monCheckTests(t *testing.T, prom string, ruleFiles, testFiles []string, alerts map[string][]e2eutil.PromRule) {
	t.Helper()
	var rulesCovered []string
	firing, quiet := map[string]int{}, map[string]int{}
	for _, f := range testFiles {
		var tf monTestFile
		monReadYAML(t, f, &tf)
		base := strings.TrimSuffix(filepath.Base(f), ".test.yml")
		if !slices.Equal(tf.RuleFiles, []string{"../rules/" + base + ".yml"}) {
			t.Errorf("%s: rule_files %q, want [../rules/%s.yml]", filepath.Base(f), tf.RuleFiles, base)
		}
		for _, rf := range tf.RuleFiles {
			if _, err := os.Stat(filepath.Join(prom, "tests", rf)); err != nil {
				t.Errorf("%s: rule file %s: %v", filepath.Base(f), rf, err)
			}
			rulesCovered = append(rulesCovered, filepath.Base(rf))
		}
		for _, tc := range tf.Tests {
			for _, at := range tc.AlertRuleTest {
				if _, ok := alerts[at.Alertname]; !ok {
					t.Errorf("%s: test of unknown alert %q at %s", filepath.Base(f), at.Alertname, at.EvalTime)
				}
				if len(at.ExpAlerts) == 0 {
					quiet[at.Alertname]++
					continue
				}
				firing[at.Alertname]++
				for _, exp := range at.ExpAlerts {
					labels, _ := exp["exp_labels"].(map[string]any)
					annotations, _ := exp["exp_annotations"].(map[string]any)
					if labels["severity"] == nil || len(annotations) != 3 {
						t.Errorf("%s: %s at %s: every expected alert names its severity and all three annotations, got %v %v",
							filepath.Base(f), at.Alertname, at.EvalTime, labels, annotations)
					}
				}
			}
		}
	}
	for _, f := range ruleFiles {
		if !slices.Contains(rulesCovered, filepath.Base(f)) {
			t.Errorf("rules/%s has no test file", filepath.Base(f))
		}
	}
	for name := range alerts {
		if firing[name] == 0 {
			t.Errorf("alert %s has no test case where it fires", name)
		}
		if quiet[name] == 0 && name != "Watchdog" {
			t.Errorf("alert %s has no test case where it does not fire", name)
		}
	}
}

func TestMonitoringKebab(t *testing.T) {
	for in, want := range map[string]string{
		"BackupStale": "backup-stale", "Watchdog": "watchdog", "HostOomKillDetected": "host-oom-kill-detected",
		"HostDiskWillFillIn24Hours": "host-disk-will-fill-in-24-hours", "TLSCertificateExpiry": "tls-certificate-expiry",
	} {
		if got := monKebab(in); got != want {
			t.Errorf("monKebab(%q) = %q, want %q", in, got, want)
		}
	}
}
