package adopt

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
	"github.com/opsready/opsready/internal/project"
)

// The tests of this file run the tools on the ops layer adopt wrote around each corpus project:
//   - TestAdoptMonitoring: promtool (config, rules, unit tests) and amtool (config, routes) pass,
//     and prometheus.yml scrapes what the team's compose files hold: an exporter job for a
//     PostgreSQL or MariaDB database and a Redis cache, never the team's app (no `backend` job),
//     and a blackbox probe of the public URL (domain answer + recorded health path);
//   - TestAdoptSmoke: ops/smoke/smoke.sh against a local HTTP server;
//   - TestAdoptMake: every target of opsready.mk under `make -n` drives compose with the team's
//     files plus the three of the ops layer, help-ops lists them all, and including opsready.mk
//     in the team's Makefile redefines none of the team's targets;
//   - TestAdoptMonitoringTargetDown, TestAdoptMakeTeamMakefile, TestAdoptMakeRenamed: the same
//     promises where the corpus alone does not put them to the test (a TargetDown rule per
//     scraped job only; a team Makefile with targets of the ops layer's names; a team file where
//     adopt writes compose.prod.yaml).

// amonOpsFiles are the ops layer's compose files, loaded after the team's in this order.
var amonOpsFiles = []string{"compose.prod.yaml", "compose.monitoring.yaml", "compose.backup.yaml"}

// amonDomain is the domain answered for a project, so that a default baked into a template fails.
func amonDomain(name string) string { return "mon-" + name + ".example.test" }

// amonRun runs argv in dir with env added to a clean environment and returns its combined
// output; a program that cannot be started fails the test.
func amonRun(t testing.TB, dir string, env []string, argv ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(amonEnviron(), env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return string(out), err
}

// amonEnviron is the test's environment without what would change a script's or make's
// behaviour: the variables opsready.mk and smoke.sh read, and a parent make's flags (the
// tests may run under `make test`). Messages are in English for the checks that read them.
func amonEnviron() []string {
	drop := map[string]bool{
		"MAKEFLAGS": true, "MFLAGS": true, "MAKELEVEL": true, "MAKEOVERRIDES": true, "GNUMAKEFLAGS": true,
		"COMPOSE": true, "BACKUP_RUN": true, "STORE": true, "REPOSITORY": true, "SUBSET": true,
		"SYSTEMD_DIR": true, "PROMTOOL": true, "AMTOOL": true, "OPSREADY": true,
		"BASE_URL": true, "SMOKE_PATH": true, "SMOKE_TRIES": true, "COMPOSE_FILE": true,
		"http_proxy": true, "HTTP_PROXY": true, "https_proxy": true, "HTTPS_PROXY": true,
		"all_proxy": true, "ALL_PROXY": true, "no_proxy": true, "NO_PROXY": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] && !strings.HasPrefix(k, "LC_") && k != "LANG" && k != "LANGUAGE" {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// amonAmtool returns an amtool new enough for the generated configuration (v0.28: the *_file
// credential fields); an older one is unavailable (fails under CI, skips elsewhere).
func amonAmtool(t *testing.T) string {
	t.Helper()
	amtool := e2eutil.RequireTool(t, "amtool")
	out, _ := exec.Command(amtool, "--version").CombinedOutput()
	m := regexp.MustCompile(`version (\d+)\.(\d+)\.`).FindStringSubmatch(string(out))
	if m == nil {
		e2eutil.Unavailable(t, fmt.Sprintf("%s: no version in %q (v0.28 or newer needed: run `make tools`)", amtool, out))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major == 0 && minor < 28 {
		e2eutil.Unavailable(t, fmt.Sprintf("%s is %s.%s: v0.28 or newer needed for bot_token_file/url_file (run `make tools`)", amtool, m[1], m[2]))
	}
	return amtool
}

// amonPinnedPrometheus is the Prometheus version compose.monitoring.yaml runs.
func amonPinnedPrometheus(t testing.TB, dir string) string {
	t.Helper()
	m := regexp.MustCompile(`image: prom/prometheus:v(\S+)`).FindStringSubmatch(e2eutil.ReadFile(t, filepath.Join(dir, "compose.monitoring.yaml")))
	if m == nil {
		t.Fatal("compose.monitoring.yaml runs no prom/prometheus:v<version> image")
	}
	return m[1]
}

// amonProm is prometheus.yml, as far as these checks read it.
type amonProm struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string              `yaml:"job_name"`
		MetricsPath   string              `yaml:"metrics_path"`
		Params        map[string][]string `yaml:"params"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			TargetLabel  string   `yaml:"target_label"`
			Replacement  string   `yaml:"replacement"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// jobs is each scrape job's static targets.
func (p amonProm) jobs() map[string][]string {
	out := map[string][]string{}
	for _, sc := range p.ScrapeConfigs {
		targets := []string{}
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
		out[sc.JobName] = targets
	}
	return out
}

// amonStack is what the team's compose files run, read from the images alone (not from adopt's
// detection, which the test checks against it).
type amonStack struct{ postgres, mariadb, redis []string }

func amonTeamStack(t testing.TB, a *adopted) amonStack {
	t.Helper()
	p, err := e2eutil.LoadCompose(a.Dir, nil, "", a.Plan.Record.ComposeFiles...)
	if err != nil {
		t.Fatalf("the team's compose files %v: %v", a.Plan.Record.ComposeFiles, err)
	}
	var st amonStack
	for _, name := range p.ServiceNames() {
		img := p.Services[name].Image
		img, _, _ = strings.Cut(img, "@")
		repo := img[strings.LastIndex(img, "/")+1:]
		repo, _, _ = strings.Cut(repo, ":")
		switch {
		case repo == "postgres" || strings.HasPrefix(repo, "postgis"):
			st.postgres = append(st.postgres, name)
		case repo == "mariadb" || repo == "mysql":
			st.mariadb = append(st.mariadb, name)
		case strings.Contains(repo, "redis"):
			st.redis = append(st.redis, name)
		}
	}
	return st
}

// amonStacks holds the stacks whose rule unit tests ran (TestAdoptMonitoring).
var amonStacks sync.Map

// TestAdoptMonitoring runs promtool and amtool on the monitoring adopt wrote for every corpus
// project and checks that prometheus.yml scrapes the detected stack and probes the public URL.
func TestAdoptMonitoring(t *testing.T) {
	t.Parallel()
	promtool := e2eutil.RequireTool(t, "promtool")
	amtool := amonAmtool(t)
	promVersion, _ := exec.Command(promtool, "--version").CombinedOutput()
	names := corpusProjects(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := adoptCorpus(t, name, map[string]string{"domain": amonDomain(name)})
			if name == names[0] {
				// Debian's promtool may be older than the Prometheus the compose file runs.
				first, _, _ := strings.Cut(string(promVersion), "\n")
				t.Logf("%s; compose.monitoring.yaml runs prometheus %s", first, amonPinnedPrometheus(t, a.Dir))
			}
			prom := filepath.Join(a.Dir, "monitoring", "prometheus")
			rules := amonGlob(t, prom, "rules/*.yml")
			tests := amonGlob(t, prom, "tests/*.test.yml")
			if len(rules) == 0 || len(tests) == 0 {
				t.Fatalf("%d rule files and %d test files under monitoring/prometheus", len(rules), len(tests))
			}

			// check config in the file's folder, as Prometheus resolves rules/*.yml relative to
			// it: a glob that matches nothing passes, so each rules file must be listed as checked.
			out, err := amonRun(t, prom, nil, promtool, "check", "config", "prometheus.yml")
			if err != nil {
				t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
			}
			for _, r := range rules {
				if !strings.Contains(out, "Checking "+r+"\n") {
					t.Errorf("promtool check config did not load %s (rule_files does not reach it):\n%s", r, out)
				}
			}
			var wg sync.WaitGroup
			run := func(args ...string) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e2eutil.Promtool(t, promtool, prom, args...)
				}()
			}
			for _, r := range rules {
				run("check", "rules", r)
			}
			// The unit tests are the same for every project of one stack but for names (about
			// 14 CPU-s a project): run them once per database engine and cache.
			stack := "none"
			if db := a.Plan.Record.DB; db != nil {
				stack = db.Engine
			}
			if a.Plan.Record.Cache != nil {
				stack += "+redis"
			}
			if _, seen := amonStacks.LoadOrStore(stack, name); !seen {
				for _, f := range tests {
					run("test", "rules", f)
				}
			}
			amonRuleTests(t, prom, rules, tests)

			if out, err := amonRun(t, a.Dir, nil, amtool, "check-config", "monitoring/alertmanager/alertmanager.yml"); err != nil {
				t.Errorf("amtool check-config: %v\n%s", err, out)
			}
			out, err = amonRun(t, a.Dir, []string{"AMTOOL=" + amtool}, filepath.Join(a.Dir, "ops", "monitoring", "test-routes.sh"))
			if err != nil || !strings.Contains(out, "PASS ") || strings.Contains(out, "FAIL") {
				t.Errorf("ops/monitoring/test-routes.sh: %v\n%s", err, out)
			}

			amonScrapeJobs(t, a, name)
			wg.Wait()
		})
	}
}

func amonGlob(t testing.TB, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i], _ = filepath.Rel(dir, m[i])
		m[i] = filepath.ToSlash(m[i])
	}
	return m
}

// amonRuleTests checks that each rules file has its test file and back, that the test file
// loads that rules file, and that it tests every alert of it.
func amonRuleTests(t *testing.T, prom string, rules, tests []string) {
	t.Helper()
	for _, r := range rules {
		want := "tests/" + strings.TrimSuffix(path.Base(r), ".yml") + ".test.yml"
		if !slices.Contains(tests, want) {
			t.Errorf("%s has no test file %s", r, want)
			continue
		}
		var tf struct {
			RuleFiles []string `yaml:"rule_files"`
			Tests     []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		e2eutil.ReadYAML(t, filepath.Join(prom, want), &tf)
		loaded := false
		for _, rf := range tf.RuleFiles {
			loaded = loaded || path.Clean(path.Join("tests", rf)) == r
		}
		if !loaded {
			t.Errorf("%s loads %v, not %s", want, tf.RuleFiles, r)
		}
		tested := map[string]bool{}
		for _, c := range tf.Tests {
			for _, a := range c.AlertRuleTest {
				tested[a.Alertname] = true
			}
		}
		var rf e2eutil.PromRuleFile
		e2eutil.ReadYAML(t, filepath.Join(prom, r), &rf)
		n := 0
		for _, g := range rf.Groups {
			for _, rule := range g.Rules {
				if rule.Alert == "" {
					continue
				}
				n++
				if !tested[rule.Alert] {
					t.Errorf("%s: alert %s is not tested in %s", r, rule.Alert, want)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s has no alert rule", r)
		}
	}
	for _, f := range tests {
		r := "rules/" + strings.TrimSuffix(path.Base(f), ".test.yml") + ".yml"
		if !slices.Contains(rules, r) {
			t.Errorf("%s tests %s, which adopt did not write", f, r)
		}
	}
}

// amonScrapeJobs checks the scrape jobs of prometheus.yml against the team's stack.
func amonScrapeJobs(t *testing.T, a *adopted, name string) {
	t.Helper()
	rec := a.Plan.Record
	st := amonTeamStack(t, a)
	var cfg amonProm
	e2eutil.ReadYAML(t, filepath.Join(a.Dir, "monitoring", "prometheus", "prometheus.yml"), &cfg)
	got := cfg.jobs()

	if d, _ := a.Result.Answers["domain"].(string); d != amonDomain(name) {
		t.Fatalf("domain answer %q, want %q (given with --set)", d, amonDomain(name))
	}
	scheme := "http"
	if a.Result.Answers["tls"] == "letsencrypt" {
		scheme = "https"
	}
	publicURL := scheme + "://" + amonDomain(name) + rec.HealthPath
	want := map[string][]string{
		"prometheus":        {"localhost:9090"},
		"alertmanager":      {"alertmanager:9093"},
		"node":              {"node-exporter:9100"},
		"cadvisor":          {"cadvisor:8080"},
		"blackbox":          {publicURL},
		"blackbox-exporter": {"blackbox:9115"},
	}
	// One database is what adopt backs up and watches; the corpus has at most one.
	switch {
	case len(st.postgres) > 0:
		want["postgres"] = []string{"db-exporter:9187"}
		if rec.DB == nil || rec.DB.Engine != "postgres" || !slices.Contains(st.postgres, rec.DB.Service) {
			t.Errorf("the team runs PostgreSQL in %v, adopt recorded db %+v", st.postgres, rec.DB)
		}
	case len(st.mariadb) > 0:
		want["mysql"] = []string{"db-exporter:9104"}
		if rec.DB == nil || rec.DB.Engine != "mariadb" || !slices.Contains(st.mariadb, rec.DB.Service) {
			t.Errorf("the team runs MariaDB/MySQL in %v, adopt recorded db %+v", st.mariadb, rec.DB)
		}
	default:
		if rec.DB != nil {
			t.Errorf("the team runs neither PostgreSQL nor MariaDB, adopt recorded db %+v", rec.DB)
		}
	}
	if rec.Cache != nil {
		want["redis"] = []string{"redis-exporter:9121"}
		if !slices.Contains(st.redis, rec.Cache.Service) {
			t.Errorf("adopt recorded cache %+v, the team's Redis services are %v", rec.Cache, st.redis)
		}
	}
	for _, s := range st.redis {
		if (rec.Cache == nil || rec.Cache.Service != s) && !slices.ContainsFunc(rec.Unsupported, func(u string) bool { return strings.Contains(u, "service "+s+":") }) {
			t.Errorf("the team's Redis service %s is neither adopted as the cache nor named unsupported (%q)", s, rec.Unsupported)
		}
	}
	if _, ok := got["backend"]; ok {
		t.Errorf("prometheus.yml scrapes a backend job %v: adopt does not scrape the team's app", got["backend"])
	}
	for job, targets := range want {
		if !slices.Equal(got[job], targets) {
			t.Errorf("scrape job %s: targets %q, want %q", job, got[job], targets)
		}
	}
	for job, targets := range got {
		if _, ok := want[job]; !ok {
			t.Errorf("scrape job %s (%q): not one the adopted stack calls for", job, targets)
		}
	}

	// The probe goes through the blackbox exporter, with a module it has.
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "blackbox" {
			continue
		}
		mods := sc.Params["module"]
		if sc.MetricsPath != "/probe" || len(mods) != 1 {
			t.Errorf("blackbox job: metrics_path %q, modules %q; want /probe and one module", sc.MetricsPath, mods)
			continue
		}
		var bb struct {
			Modules map[string]any `yaml:"modules"`
		}
		e2eutil.ReadYAML(t, filepath.Join(a.Dir, "monitoring", "blackbox", "blackbox.yml"), &bb)
		if _, ok := bb.Modules[mods[0]]; !ok {
			t.Errorf("blackbox job uses module %s, blackbox.yml has %v", mods[0], bb.Modules)
		}
		viaExporter := false
		for _, rc := range sc.RelabelConfigs {
			viaExporter = viaExporter || rc.TargetLabel == "__address__" && rc.Replacement == "blackbox:9115"
		}
		if !viaExporter {
			t.Errorf("blackbox job does not send the probe to blackbox:9115: %+v", sc.RelabelConfigs)
		}
	}

	// Every scraped host is a service of the production model, so the names resolve.
	p, err := e2eutil.LoadCompose(a.Dir, nil, "", append(slices.Clone(rec.ComposeFiles), amonOpsFiles...)...)
	if err != nil {
		t.Fatalf("production model: %v", err)
	}
	for job, targets := range got {
		if job == "blackbox" {
			continue
		}
		for _, tg := range targets {
			host, _, _ := strings.Cut(tg, ":")
			if _, ok := p.Services[host]; !ok && host != "localhost" {
				t.Errorf("scrape job %s targets %s: no service %s in the production model", job, tg, host)
			}
		}
	}
}

// amonUpJob is the expression of a TargetDown rule of rules/targets.yml, and its job.
var amonUpJob = regexp.MustCompile(`^up\{job="([^"]+)"\} == 0$`)

// TestAdoptMonitoringTargetDown checks rules/targets.yml against the scrape jobs: a TargetDown
// rule for each scraped exporter, and none for a job that is not scraped (it can never fire,
// and its test feeds a series Prometheus will never have).
func TestAdoptMonitoringTargetDown(t *testing.T) {
	t.Parallel()
	for _, name := range corpusProjects(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := adoptCorpus(t, name, nil)
			prom := filepath.Join(a.Dir, "monitoring", "prometheus")
			var cfg amonProm
			e2eutil.ReadYAML(t, filepath.Join(prom, "prometheus.yml"), &cfg)
			scraped := cfg.jobs()
			var rf e2eutil.PromRuleFile
			e2eutil.ReadYAML(t, filepath.Join(prom, "rules", "targets.yml"), &rf)
			watched := map[string]bool{}
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					m := amonUpJob.FindStringSubmatch(strings.TrimSpace(r.Expr))
					if r.Alert != "TargetDown" || m == nil {
						t.Errorf("rules/targets.yml: %s %q is not a TargetDown rule of one job", r.Alert, r.Expr)
						continue
					}
					watched[m[1]] = true
					if _, ok := scraped[m[1]]; !ok {
						t.Errorf("rules/targets.yml: TargetDown for job %q, which prometheus.yml does not scrape", m[1])
					}
				}
			}
			// Prometheus cannot report itself down; the probe has ProbeFailed.
			for job := range scraped {
				if job != "prometheus" && job != "blackbox" && !watched[job] {
					t.Errorf("scrape job %s has no TargetDown rule", job)
				}
			}
		})
	}
}

// TestAdoptSmoke runs ops/smoke/smoke.sh of an adopted project against a local server: an
// answer passes, a server that keeps failing fails naming the URL, a server that recovers
// within the tries passes, a bad SMOKE_TRIES is a usage error, and without BASE_URL and
// SMOKE_PATH the public URL (domain answer + recorded health path) is asked.
func TestAdoptSmoke(t *testing.T) {
	t.Parallel()
	e2eutil.RequireTool(t, "curl")
	const name = "nginx-golang-postgres"
	a := adoptCorpus(t, name, map[string]string{"domain": amonDomain(name)})
	script := filepath.Join(a.Dir, "ops", "smoke", "smoke.sh")
	// The script waits 3 s between tries; a sleep that returns at once keeps the test short.
	stub := t.TempDir()
	if err := os.WriteFile(filepath.Join(stub, "sleep"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pathEnv := "PATH=" + stub + string(os.PathListSeparator) + os.Getenv("PATH")

	cases := []struct {
		name  string
		codes []int // answers in turn; the last repeats
		env   []string
		// viaProxy: no BASE_URL; the server is curl's proxy, so it sees the public URL asked.
		viaProxy bool
		// wantCode is the exit status, wantAsked the requests the server got.
		wantCode, wantAsked int
		wantPath            string // the path asked; "" for none
		wantErr             string // in stderr ("{url}" is the URL asked)
	}{
		{name: "ok", codes: []int{200}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=3"}, wantCode: 0, wantAsked: 1, wantPath: "/healthz"},
		{name: "redirect", codes: []int{302}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=3"}, wantCode: 0, wantAsked: 1, wantPath: "/healthz"},
		{name: "always-500", codes: []int{500}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=3"}, wantCode: 1, wantAsked: 3, wantPath: "/healthz", wantErr: "{url}"},
		{name: "recovers", codes: []int{500, 500, 200}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=4"}, wantCode: 0, wantAsked: 3, wantPath: "/healthz"},
		{name: "recovers-too-late", codes: []int{500, 500, 200}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=2"}, wantCode: 1, wantAsked: 2, wantPath: "/healthz", wantErr: "{url}"},
		{name: "bad-tries", codes: []int{200}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=abc"}, wantCode: 2, wantAsked: 0, wantErr: "SMOKE_TRIES"},
		{name: "zero-tries", codes: []int{200}, env: []string{"SMOKE_PATH=/healthz", "SMOKE_TRIES=0"}, wantCode: 2, wantAsked: 0, wantErr: "SMOKE_TRIES"},
		{name: "default-path", codes: []int{200}, env: []string{"SMOKE_TRIES=1"}, wantCode: 0, wantAsked: 1, wantPath: a.Plan.Record.HealthPath},
		{name: "default-url", codes: []int{200}, env: []string{"SMOKE_TRIES=1"}, viaProxy: true, wantCode: 0, wantAsked: 1, wantPath: a.Plan.Record.HealthPath},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var asked, hosts []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				asked = append(asked, r.URL.Path)
				hosts = append(hosts, r.Host)
				code := c.codes[min(len(asked), len(c.codes))-1]
				mu.Unlock()
				if code/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(code)
			}))
			defer srv.Close()

			// A trailing slash on BASE_URL must not double the one of the path.
			env := append([]string{pathEnv, "BASE_URL=" + srv.URL + "/"}, c.env...)
			wantHost := srv.Listener.Addr().String()
			if c.viaProxy {
				env = append([]string{pathEnv, "http_proxy=" + srv.URL}, c.env...)
				wantHost = amonDomain(name) // the default is http: adopt fixes tls none
			}
			cmd := exec.Command(script)
			cmd.Dir = a.Dir
			cmd.Env = append(amonEnviron(), env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("smoke.sh: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if code != c.wantCode || len(asked) != c.wantAsked {
				t.Errorf("smoke.sh with %v: exit %d after %d requests, want %d after %d\nstdout: %s\nstderr: %s",
					c.env, code, len(asked), c.wantCode, c.wantAsked, stdout.String(), stderr.String())
			}
			for i, p := range asked {
				if p != c.wantPath || hosts[i] != wantHost {
					t.Errorf("smoke.sh asked %s%s, want %s%s", hosts[i], p, wantHost, c.wantPath)
				}
			}
			if w := strings.ReplaceAll(c.wantErr, "{url}", srv.URL+c.wantPath); !strings.Contains(stderr.String(), w) {
				t.Errorf("smoke.sh stderr does not name %q:\n%s", w, stderr.String())
			}
		})
	}
}

// TestAdoptSmokeShellcheck runs shellcheck on the smoke test and the backup scripts of the
// adopted project with the most data stores.
func TestAdoptSmokeShellcheck(t *testing.T) {
	t.Parallel()
	shellcheck := e2eutil.RequireTool(t, "shellcheck")
	a := adoptCorpus(t, "nextcloud-redis-mariadb", nil)
	scripts := append([]string{"ops/smoke/smoke.sh"}, amonGlob(t, a.Dir, "ops/backup/*.sh")...)
	if len(scripts) < 5 {
		t.Fatalf("scripts %v: want the smoke test and the backup scripts", scripts)
	}
	if out, err := amonRun(t, a.Dir, nil, append([]string{shellcheck, "--external-sources", "--format=gcc"}, scripts...)...); err != nil {
		t.Errorf("shellcheck %v: %v\n%s", scripts, err, out)
	}
}

// amonMk is opsready.mk, read as far as these checks need it.
type amonMk struct {
	help    []string            // targets with a `## ` help text, in file order
	phony   []string            // the .PHONY targets
	rules   []string            // every rule's target, in file order
	recipes map[string][]string // target -> recipe lines
}

var (
	amonRuleHead = regexp.MustCompile(`^([A-Za-z0-9_.%/-]+)\s*:([^=].*|)$`)
	amonHelpHead = regexp.MustCompile(`^([a-z-]+):.*## `)
)

func amonReadMk(t testing.TB, file string) amonMk {
	t.Helper()
	mk := amonMk{recipes: map[string][]string{}}
	cur := ""
	for _, line := range strings.Split(e2eutil.ReadFile(t, file), "\n") {
		if strings.HasPrefix(line, "\t") {
			if cur != "" {
				mk.recipes[cur] = append(mk.recipes[cur], line[1:])
			}
			continue
		}
		cur = ""
		m := amonRuleHead.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		if m[1] == ".PHONY" {
			mk.phony = append(mk.phony, strings.Fields(strings.SplitN(m[2], "#", 2)[0])...)
			continue
		}
		cur = m[1]
		mk.rules = append(mk.rules, cur)
		if amonHelpHead.MatchString(line) {
			mk.help = append(mk.help, cur)
		}
	}
	return mk
}

// amonTeamTargets are the explicit targets of a Makefile of the team's.
func amonTeamTargets(t testing.TB, file string) []string {
	t.Helper()
	mk := amonReadMk(t, file)
	var out []string
	for _, r := range mk.rules {
		if !strings.HasPrefix(r, ".") && !strings.Contains(r, "%") {
			out = append(out, r)
		}
	}
	return append(out, mk.phony...)
}

var amonOverride = regexp.MustCompile(`warning: overriding recipe for target '([^']+)'`)

// amonCollisions includes mk in a copy of the team's Makefile (first or last) and returns the
// targets the two both define: those make warns it overrides, and those both declare.
func amonCollisions(t testing.TB, makeBin, dir, teamFile, mk string, first bool) []string {
	t.Helper()
	team := e2eutil.ReadFile(t, filepath.Join(dir, teamFile))
	content := team + "\ninclude " + mk + "\n"
	if first {
		content = "include " + mk + "\n" + team
	}
	cp := filepath.Join(dir, teamFile+".amon-include")
	if err := os.WriteFile(cp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cp)
	ours := amonReadMk(t, filepath.Join(dir, mk))
	help := "help-ops"
	for _, tg := range ours.help {
		if strings.HasSuffix(tg, "help-ops") {
			help = tg // ops-help-ops when the team's targets made adopt prefix its own
		}
	}
	out, err := amonRun(t, dir, nil, makeBin, "-f", filepath.Base(cp), "-n", help)
	if err != nil {
		t.Errorf("make -f %s (with include %s) -n %s: %v\n%s", filepath.Base(cp), mk, help, err, out)
	}
	set := map[string]bool{}
	for _, m := range amonOverride.FindAllStringSubmatch(out, -1) {
		set[m[1]] = true
	}
	for _, tg := range amonTeamTargets(t, filepath.Join(dir, teamFile)) {
		if slices.Contains(ours.rules, tg) || slices.Contains(ours.phony, tg) {
			set[tg] = true
		}
	}
	var got []string
	for k := range set {
		got = append(got, k)
	}
	sort.Strings(got)
	return got
}

// amonComposeArgs returns the compose files (-f) of each line of make's output that runs
// docker compose or opsready check.
func amonComposeArgs(out string) [][]string {
	var all [][]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "docker compose ") && !strings.Contains(line, "opsready check ") {
			continue
		}
		// The -f options before the subcommand (`logs -f` follows).
		f := strings.Fields(line)
		start := slices.Index(f, "compose") + 1
		if start == 0 {
			start = slices.Index(f, "check") + 1
		}
		files := []string{}
		for i := start; i+1 < len(f) && f[i] == "-f"; i += 2 {
			files = append(files, f[i+1])
		}
		all = append(all, files)
	}
	return all
}

// amonComposeTargets are the targets of opsready.mk that act on production or its backups
// through compose (or score it with opsready check), whatever their recipes look like.
var amonComposeTargets = []string{
	"prod-config", "prod-up", "prod-down", "prod-ps", "prod-logs", "monitoring-reload", "check-readiness",
	"backup", "restore-test", "backups", "prune", "verify",
}

// amonCheckMk runs every target of the opsready.mk in dir (named mk) under `make -n` and
// help-ops for real: the commands name want as compose files, help-ops lists every target.
func amonCheckMk(t *testing.T, makeBin, dir, mk string, want []string) {
	t.Helper()
	m := amonReadMk(t, filepath.Join(dir, mk))
	if len(m.help) < 10 {
		t.Fatalf("%s declares %d targets with help (%v), want the ops layer's", mk, len(m.help), m.help)
	}
	if a, b := slices.Sorted(slices.Values(m.rules)), slices.Sorted(slices.Values(m.help)); !slices.Equal(a, b) {
		t.Errorf("%s: rules %v, with help %v: every target must have a `## ` help text", mk, a, b)
	}
	if a, b := slices.Sorted(slices.Values(m.phony)), slices.Sorted(slices.Values(m.help)); !slices.Equal(a, b) {
		t.Errorf("%s: .PHONY %v, targets %v", mk, a, b)
	}
	for _, tg := range m.help {
		out, err := amonRun(t, dir, nil, makeBin, "-f", mk, "-n", tg)
		if err != nil {
			t.Errorf("make -f %s -n %s: %v\n%s", mk, tg, err, out)
			continue
		}
		if strings.Contains(out, "warning:") {
			t.Errorf("make -f %s -n %s warns:\n%s", mk, tg, out)
		}
		runs := amonComposeArgs(out)
		for _, files := range runs {
			if !slices.Equal(files, want) {
				t.Errorf("make -f %s -n %s runs compose with -f %v, want %v:\n%s", mk, tg, files, want, out)
			}
		}
		// A recipe that goes through $(PROD), $(BACKUP_RUN) or opsready check must show it, and
		// so must the targets that act on production by their purpose.
		recipe := strings.Join(m.recipes[tg], "\n")
		viaVar := strings.Contains(recipe, "$(PROD)") || strings.Contains(recipe, "$(BACKUP_RUN)") || strings.Contains(recipe, "$(OPSREADY)")
		if (viaVar || slices.Contains(amonComposeTargets, tg)) && len(runs) == 0 {
			t.Errorf("make -f %s -n %s runs no compose command:\n%s", mk, tg, out)
		}
	}
	out, err := amonRun(t, dir, nil, makeBin, "-f", mk, "help-ops")
	if err != nil {
		t.Errorf("make -f %s help-ops: %v\n%s", mk, err, out)
	}
	amonCheckHelp(t, "make -f "+mk+" help-ops", out, m.help)
}

// amonCheckHelp checks that help-ops printed each target once, with its help text.
func amonCheckHelp(t *testing.T, what, out string, targets []string) {
	t.Helper()
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, text, ok := strings.Cut(line, "\t")
		if ok && strings.TrimSpace(text) != "" {
			listed = append(listed, name)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(listed)), slices.Sorted(slices.Values(targets))) {
		t.Errorf("%s lists %v, want %v:\n%s", what, listed, targets, out)
	}
}

// TestAdoptMake checks opsready.mk of every corpus project under make, and that including it
// in the team's Makefile redefines none of the team's targets.
func TestAdoptMake(t *testing.T) {
	t.Parallel()
	makeBin := e2eutil.RequireTool(t, "make")
	// The targets that collide with the team's Makefile, by project: none (the corpus projects
	// have no Makefile so far; one added to the corpus is checked by this).
	wantCollide := map[string][]string{}
	for _, name := range corpusProjects(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := adoptCorpus(t, name, nil)
			want := append(slices.Clone(a.Plan.Record.ComposeFiles), amonOpsFiles...)
			amonCheckMk(t, makeBin, a.Dir, "opsready.mk", want)

			found := false
			for _, f := range []string{"GNUmakefile", "makefile", "Makefile"} {
				if _, theirs := a.Before[f]; !theirs {
					continue
				}
				found = true
				for _, first := range []bool{false, true} {
					if got := amonCollisions(t, makeBin, a.Dir, f, "opsready.mk", first); !slices.Equal(got, wantCollide[name]) {
						t.Errorf("%s with `include opsready.mk` (first: %v) redefines the team's targets %v, want %v", f, first, got, wantCollide[name])
					}
				}
			}
			if !found {
				t.Logf("%s has no Makefile: no target of the team's to collide with", name)
			}
		})
	}
}

// amonAdoptWith copies a corpus project, adds the team's files extra, and adopts it as
// adoptCorpus does.
func amonAdoptWith(t *testing.T, name string, extra map[string]string) (string, *project.Adopted, []string) {
	t.Helper()
	dir := copyCorpus(t, name)
	for p, c := range extra {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := adoptDir(t, dir, nil)
	return dir, a.Result, a.Plan.Record.ComposeFiles
}

// amonTeamMakefile is a team's Makefile with targets of the names opsready.mk uses, and an
// include of its own (local.mk, as many read .env).
const amonTeamMakefile = `-include local.mk
.PHONY: test backup prod-up
test:
	go test ./...
backup:
	./scripts/our-backup.sh
prod-up:
	docker compose up -d
`

// TestAdoptMakeTeamMakefile adopts a project whose team has a Makefile with targets named as
// the ops layer's: including adopt's make file in theirs must redefine none of them (the issue:
// "Makefile targets that do not collide with existing ones"), and `make help-ops` through
// their Makefile must list the ops targets wherever the include stands.
func TestAdoptMakeTeamMakefile(t *testing.T) {
	t.Parallel()
	makeBin := e2eutil.RequireTool(t, "make")
	dir, res, _ := amonAdoptWith(t, "nginx-golang-postgres", map[string]string{
		"Makefile": amonTeamMakefile, "local.mk": "# the team's local settings\nGOFLAGS ?= -race\n",
	})
	mk := "opsready.mk"
	if to, ok := res.Renamed[mk]; ok {
		mk = to
	}
	targets := amonReadMk(t, filepath.Join(dir, mk)).help
	for _, first := range []bool{false, true} {
		if got := amonCollisions(t, makeBin, dir, "Makefile", mk, first); len(got) > 0 {
			t.Errorf("Makefile with `include %s` (first: %v) redefines the team's targets %v", mk, first, got)
		}
		team := e2eutil.ReadFile(t, filepath.Join(dir, "Makefile"))
		content := team + "\ninclude " + mk + "\n"
		if first {
			content = "include " + mk + "\n" + team
		}
		cp := filepath.Join(dir, "Makefile.amon-help")
		if err := os.WriteFile(cp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		help := "help-ops"
		for _, tg := range targets {
			if strings.HasSuffix(tg, "help-ops") {
				help = tg // ops-help-ops: the team's targets made adopt prefix its own
			}
		}
		out, err := amonRun(t, dir, nil, makeBin, "-f", filepath.Base(cp), help)
		if err != nil {
			t.Errorf("help-ops through the team's Makefile: %v\n%s", err, out)
		}
		amonCheckHelp(t, fmt.Sprintf("help-ops through the team's Makefile (include first: %v)", first), out, targets)
	}
}

// TestAdoptMakeRenamed adopts a project whose team already has a compose.prod.yaml: adopt
// writes its own under a free name, and the make file must run that one, not the team's.
func TestAdoptMakeRenamed(t *testing.T) {
	t.Parallel()
	makeBin := e2eutil.RequireTool(t, "make")
	dir, res, teamFiles := amonAdoptWith(t, "nginx-golang-postgres", map[string]string{
		"compose.prod.yaml": "services:\n  backend:\n    environment:\n      MODE: prod\n",
	})
	prod, ok := res.Renamed["compose.prod.yaml"]
	if !ok {
		t.Fatalf("adopt did not rename its compose.prod.yaml beside the team's: %v", res.Renamed)
	}
	want := append(slices.Clone(teamFiles), prod, "compose.monitoring.yaml", "compose.backup.yaml")
	amonCheckMk(t, makeBin, dir, "opsready.mk", want)
}
