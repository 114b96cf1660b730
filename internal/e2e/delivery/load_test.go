package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The k6 profiles (ops/load) and the smoke script (ops/smoke/smoke.sh) of webapp 1.2.0+:
// syntax, the options the answers produce, and live runs against the Go backend stub with a
// scratch PostgreSQL database.

// ldAnswers are answers whose objectives differ from the defaults, so that the tests see
// them reach the thresholds.
var ldAnswers = map[string]string{
	"backend": "go", "frontend": "none", "db": "postgres", "cache": "none",
	"slo_availability": "99.5", "slo_latency_ms": "250", "load_peak_rps": "12",
}

// The thresholds ldAnswers give.
var ldWantThresholds = map[string]string{
	"http_req_duration": "p(95)<250",
	"http_req_failed":   "rate<0.005",
	"checks":            "rate>0.99",
}

// ldLiveAnswers are ldAnswers for the tests that run k6 against a live backend: a latency
// objective no busy machine misses (the live tests prove the profiles run, check and report;
// the threshold arithmetic is checked on ldAnswers without a clock).
var ldLiveAnswers = func() map[string]string {
	m := maps.Clone(ldAnswers)
	m["slo_latency_ms"] = ldLiveLatencyMs
	return m
}()

const ldLiveLatencyMs = "5000"

// ldProfiles are the k6 scripts every project has.
var ldProfiles = []string{"ops/load/smoke.js", "ops/load/load.js", "ops/load/stress.js", "ops/load/lib/common.js"}

// ldImport finds the module specifiers of static and dynamic imports.
var ldImport = regexp.MustCompile(`(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]`)

// TestLoadScriptsSyntax checks every generated k6 script with `node --check` (as an ES
// module), that none imports anything but k6's own modules and relative files (no remote
// jslib: the tests run offline), and that the answers reach lib/common.js.
func TestLoadScriptsSyntax(t *testing.T) {
	node := e2eutil.RequireTool(t, "node")
	for name, set := range map[string]map[string]string{"answers": ldAnswers, "defaults": {"frontend": "react"}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			scripts := ldFindJS(t, filepath.Join(dir, "ops", "load"))
			for _, want := range ldProfiles {
				if !slices.Contains(scripts, want) {
					t.Errorf("generated k6 scripts %v lack %s", scripts, want)
				}
			}
			for _, rel := range scripts {
				b, err := os.ReadFile(filepath.Join(dir, rel))
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(node, "--check", "--input-type=module")
				cmd.Stdin = strings.NewReader(string(b))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("node --check %s: %v\n%s", rel, err, out)
				}
				for _, m := range ldImport.FindAllStringSubmatch(string(b), -1) {
					spec := m[1]
					if spec != "k6" && !strings.HasPrefix(spec, "k6/") && !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
						t.Errorf("%s imports %q: only k6 modules and relative files (no remote imports)", rel, spec)
					}
				}
				if strings.Contains(string(b), "jslib.k6.io") {
					t.Errorf("%s refers to jslib.k6.io (a remote import)", rel)
				}
			}
		})
	}
	t.Run("objectives rendered", func(t *testing.T) {
		t.Parallel()
		dir := e2eutil.Generate(t, ldAnswers)
		b, err := os.ReadFile(filepath.Join(dir, "ops", "load", "lib", "common.js"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`availability: Number("99.5"),`, "latencyP95Ms: 250,", "answeredPeakRps = 12;"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("lib/common.js lacks %q", want)
			}
		}
	})
}

// ldFindJS returns the *.js files under dir, relative to dir's grandparent (ops/load/...).
func ldFindJS(t *testing.T, dir string) []string {
	t.Helper()
	root := filepath.Dir(filepath.Dir(dir))
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".js") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ldOptions is the part of `k6 inspect` the tests read.
type ldOptions struct {
	Scenarios map[string]struct {
		Executor string `json:"executor"`
		VUs      int    `json:"vus"`
		Duration string `json:"duration"`
		TimeUnit string `json:"timeUnit"`
		Stages   []struct {
			Duration string  `json:"duration"`
			Target   float64 `json:"target"`
		} `json:"stages"`
		PreAllocatedVUs int `json:"preAllocatedVUs"`
		MaxVUs          int `json:"maxVUs"`
	} `json:"scenarios"`
	Thresholds       map[string][]string `json:"thresholds"`
	SummaryTrendStat []string            `json:"summaryTrendStats"`
}

// ldInspect runs `k6 inspect` on a generated profile with env (-e NAME=value) and returns
// the options its init code computed.
func ldInspect(t *testing.T, k6, dir, script string, env ...string) ldOptions {
	t.Helper()
	args := []string{"inspect"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	cmd := exec.Command(k6, append(args, script)...)
	cmd.Dir = dir
	cmd.Env = ldEnv(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("k6 inspect %s %v: %v\n%s", script, env, err, ldStderr(err))
	}
	var o ldOptions
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("k6 inspect %s: %v\n%s", script, err, out)
	}
	return o
}

func ldStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// ldEnv is a minimal environment for k6: no usage report (no network), no colours.
func ldEnv(t *testing.T, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "K6_NO_USAGE_REPORT=true", "NO_COLOR=1"}, extra...)
}

// TestLoadK6Options has k6 evaluate each profile's options: the thresholds come from the
// answers, and each profile has its shape, with the environment overrides applied.
func TestLoadK6Options(t *testing.T) {
	k6 := e2eutil.RequireTool(t, "k6")
	dir := e2eutil.Generate(t, ldAnswers)
	checkThresholds := func(t *testing.T, o ldOptions) {
		t.Helper()
		for metric, want := range ldWantThresholds {
			if got := o.Thresholds[metric]; !slices.Equal(got, []string{want}) {
				t.Errorf("thresholds[%s] = %q, want [%q]", metric, got, want)
			}
		}
		for _, stat := range []string{"p(95)", "p(99)"} {
			if !slices.Contains(o.SummaryTrendStat, stat) {
				t.Errorf("summaryTrendStats %v lack %s (ops/load/quotas reads it)", o.SummaryTrendStat, stat)
			}
		}
	}
	targets := func(o ldOptions, scenario string) (out []float64, durations []string) {
		for _, s := range o.Scenarios[scenario].Stages {
			out = append(out, s.Target)
			durations = append(durations, s.Duration)
		}
		return out, durations
	}

	t.Run("smoke", func(t *testing.T) {
		o := ldInspect(t, k6, dir, "ops/load/smoke.js")
		checkThresholds(t, o)
		s := o.Scenarios["smoke"]
		if s.Executor != "constant-vus" || s.VUs < 1 || s.VUs > 2 || s.Duration != "30s" {
			t.Errorf("smoke scenario = %+v, want constant-vus, 1–2 VUs, 30s", s)
		}
		if s := ldInspect(t, k6, dir, "ops/load/smoke.js", "SMOKE_DURATION=5s").Scenarios["smoke"]; s.Duration != "5s" {
			t.Errorf("SMOKE_DURATION=5s: duration %q", s.Duration)
		}
	})
	t.Run("load", func(t *testing.T) {
		o := ldInspect(t, k6, dir, "ops/load/load.js")
		checkThresholds(t, o)
		s := o.Scenarios["load"]
		got, _ := targets(o, "load")
		// Targets per timeUnit of 4 s (4 requests an iteration): requests per second.
		if s.Executor != "ramping-arrival-rate" || s.TimeUnit != "4s" || !slices.Equal(got, []float64{12, 12, 0}) {
			t.Errorf("load scenario = %+v, want ramping-arrival-rate per 4s to 12, hold 12, down to 0", s)
		}
		if s.PreAllocatedVUs < 1 || s.MaxVUs < s.PreAllocatedVUs {
			t.Errorf("load scenario VUs %d..%d", s.PreAllocatedVUs, s.MaxVUs)
		}
		if o.Thresholds["http_req_duration{phase:hold}"] == nil {
			t.Errorf("no threshold on the hold's requests: %v", o.Thresholds)
		}
		o = ldInspect(t, k6, dir, "ops/load/load.js", "LOAD_HOLD=20m", "LOAD_RAMP_UP=30s", "LOAD_RAMP_DOWN=10s", "LOAD_PEAK_RPS=40")
		got, durs := targets(o, "load")
		if !slices.Equal(got, []float64{40, 40, 0}) || !slices.Equal(durs, []string{"30s", "20m0s", "10s"}) {
			t.Errorf("with LOAD_* overrides: stages %v %v, want [40 40 0] [30s 20m0s 10s]", got, durs)
		}
	})
	t.Run("stress", func(t *testing.T) {
		o := ldInspect(t, k6, dir, "ops/load/stress.js")
		for metric, want := range ldWantThresholds {
			if got := o.Thresholds[metric]; !slices.Equal(got, []string{want}) {
				t.Errorf("thresholds[%s] = %q, want [%q]", metric, got, want)
			}
		}
		got, _ := targets(o, "stress")
		if want := []float64{12, 12, 24, 24, 36, 36, 0}; !slices.Equal(got, want) {
			t.Errorf("stress targets %v, want %v (1x, 2x, 3x the peak, then down)", got, want)
		}
		for _, level := range []string{"1x", "2x", "3x"} {
			if o.Thresholds["http_req_duration{level:"+level+"}"] == nil {
				t.Errorf("no per-step threshold for %s: %v", level, o.Thresholds)
			}
		}
		o = ldInspect(t, k6, dir, "ops/load/stress.js", "STRESS_FACTOR=2", "STRESS_HOLD=1m")
		got, durs := targets(o, "stress")
		if !slices.Equal(got, []float64{12, 12, 24, 24, 0}) || durs[1] != "1m0s" {
			t.Errorf("STRESS_FACTOR=2 STRESS_HOLD=1m: stages %v %v", got, durs)
		}
	})
	t.Run("bad setting", func(t *testing.T) {
		cmd := exec.Command(k6, "inspect", "-e", "LOAD_HOLD=ten", "ops/load/load.js")
		cmd.Dir = dir
		cmd.Env = ldEnv(t)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "LOAD_HOLD=ten: want a duration") {
			t.Errorf("k6 inspect with LOAD_HOLD=ten: %v, want an error naming it:\n%s", err, out)
		}
	})
}

// ldStartGoBackend generates the project with ldLiveAnswers, builds its Go backend and starts it
// against a scratch PostgreSQL database (migrations applied on start), ready to serve.
func ldStartGoBackend(t *testing.T) (dir string, srv *e2eutil.Proc) {
	t.Helper()
	e2eutil.RequireTool(t, "go")
	db := e2eutil.NewScratchDB(t, "postgres")
	dir = e2eutil.Generate(t, ldLiveAnswers)
	backend := filepath.Join(dir, "backend")
	bin := e2eutil.GoBinary(t, backend, "server") // shared with the backends package through the build cache
	pwFile := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(pwFile, []byte(db.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := e2eutil.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "DB_HOST="+db.Host, "DB_PORT="+strconv.Itoa(db.Port),
		"DB_NAME="+db.Name, "DB_USER="+db.User, "DB_PASSWORD_FILE="+pwFile, "MIGRATE_ON_START=true", "LOG_LEVEL=warn")
	srv = e2eutil.StartProc(t, cmd, port)
	srv.WaitStatus(t, "/readyz", http.StatusOK)
	return dir, srv
}

// ldSummary is the part of a k6 handleSummary JSON the tests read.
type ldSummary struct {
	Profile struct {
		Name       string `json:"name"`
		BaseURL    string `json:"base_url"`
		Objectives struct {
			Availability float64 `json:"availability_percent"`
			LatencyP95Ms float64 `json:"latency_p95_ms"`
		} `json:"objectives"`
	} `json:"profile"`
	Metrics map[string]struct {
		Type       string                       `json:"type"`
		Values     map[string]float64           `json:"values"`
		Thresholds map[string]struct{ OK bool } `json:"thresholds"`
	} `json:"metrics"`
	RootGroup struct {
		Checks []struct {
			Name   string `json:"name"`
			Passes int    `json:"passes"`
			Fails  int    `json:"fails"`
		} `json:"checks"`
	} `json:"root_group"`
}

// ldRunK6 runs a generated profile in dir with env and returns its output and exit code.
func ldRunK6(t *testing.T, dir, script string, env ...string) (string, int) {
	t.Helper()
	k6 := e2eutil.RequireTool(t, "k6")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k6, "run", "--no-usage-report", script)
	cmd.Dir = dir
	cmd.Env = ldEnv(t, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("k6 run %s: %v\n%s", script, err, out)
		}
		code = ee.ExitCode()
	}
	t.Logf("k6 run %s %v: exit %d in %s", script, env, code, time.Since(start).Round(time.Millisecond))
	return string(out), code
}

// TestLoadLive starts the Go backend stub with the local PostgreSQL, runs the generated k6
// smoke profile against it (short duration) and checks the summary JSON it writes, then runs
// the smoke script against it; both are also pointed at a dead port, where they must fail
// with a clear message.
func TestLoadLive(t *testing.T) {
	e2eutil.RequireTool(t, "k6")
	e2eutil.RequireTool(t, "bash")
	e2eutil.RequireTool(t, "curl")
	dir, srv := ldStartGoBackend(t)

	t.Run("k6 smoke profile", func(t *testing.T) {
		out, code := ldRunK6(t, dir, "ops/load/smoke.js", "BASE_URL="+srv.Base+"/", "SMOKE_DURATION=4s", "SMOKE_PAUSE=0.2")
		if code != 0 {
			t.Fatalf("k6 smoke profile: exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"k6 smoke profile against " + srv.Base + "\n", "PASS http_req_duration p(95)<" + ldLiveLatencyMs,
			"PASS http_req_failed rate<0.005", "PASS checks rate>0.99", "RESULT: all thresholds met",
			"summary JSON: ops/load/results/smoke-summary.json"} {
			if !strings.Contains(out, want) {
				t.Errorf("k6 output lacks %q:\n%s", want, out)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "ops", "load", "results", "smoke-summary.json"))
		if err != nil {
			t.Fatalf("summary JSON: %v\n%s", err, out)
		}
		var s ldSummary
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("summary JSON: %v", err)
		}
		if s.Profile.Name != "smoke" || s.Profile.BaseURL != srv.Base || fmt.Sprint(s.Profile.Objectives.LatencyP95Ms) != ldLiveLatencyMs || s.Profile.Objectives.Availability != 99.5 {
			t.Errorf("summary profile = %+v", s.Profile)
		}
		for metric, stats := range map[string][]string{
			"http_reqs":         {"count", "rate"},
			"http_req_duration": {"avg", "med", "max", "p(90)", "p(95)", "p(99)"},
			"http_req_failed":   {"rate"},
			"checks":            {"rate", "passes", "fails"},
			"iterations":        {"count"},
		} {
			m, ok := s.Metrics[metric]
			if !ok {
				t.Errorf("summary lacks metrics.%s", metric)
				continue
			}
			for _, k := range stats {
				if _, ok := m.Values[k]; !ok {
					t.Errorf("summary metrics.%s.values lacks %q: %v", metric, k, m.Values)
				}
			}
		}
		for metric, expr := range ldWantThresholds {
			if metric == "http_req_duration" {
				expr = "p(95)<" + ldLiveLatencyMs
			}
			th, ok := s.Metrics[metric].Thresholds[expr]
			if !ok || !th.OK {
				t.Errorf("summary metrics.%s.thresholds[%q] = %+v (present %v), want ok", metric, expr, th, ok)
			}
		}
		if n := s.Metrics["http_reqs"].Values["count"]; n < 8 {
			t.Errorf("%v requests in 4 s with 2 VUs", n)
		}
		if r := s.Metrics["http_req_failed"].Values["rate"]; r != 0 {
			t.Errorf("http_req_failed rate %v against a healthy backend", r)
		}
		if c := s.Metrics["checks"].Values; c["fails"] != 0 || c["passes"] == 0 {
			t.Errorf("checks %v, want all passed", c)
		}
		var names []string
		for _, c := range s.RootGroup.Checks {
			names = append(names, c.Name)
			if c.Passes == 0 || c.Fails != 0 {
				t.Errorf("check %q: %d passes, %d fails", c.Name, c.Passes, c.Fails)
			}
		}
		for _, want := range []string{"GET /healthz: 200", "GET /api/items: a JSON list", "POST /api/items: 201",
			"POST /api/items: the item with an id", "GET /api/items/{id}: the created item"} {
			if !slices.Contains(names, want) {
				t.Errorf("summary checks %q lack %q", names, want)
			}
		}
		// The journey wrote its items to the database.
		_, body, _ := srv.Do(t, "GET", "/api/items", "")
		if !strings.Contains(string(body), `"name":"k6-`) {
			t.Errorf("GET /api/items after the k6 run has no k6- item: %.300s", body)
		}
	})

	t.Run("k6 load profile shortened", func(t *testing.T) {
		// 1 s ramp, 3 s hold at 20 requests/s, 1 s down: the hold is measured on its own.
		out, code := ldRunK6(t, dir, "ops/load/load.js", "BASE_URL="+srv.Base, "LOAD_PEAK_RPS=20",
			"LOAD_RAMP_UP=1s", "LOAD_HOLD=3s", "LOAD_RAMP_DOWN=1s")
		if code != 0 || !strings.Contains(out, "PASS http_req_duration{phase:hold} p(95)<"+ldLiveLatencyMs) {
			t.Fatalf("k6 load profile: exit %d, want 0 with the hold's threshold:\n%s", code, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "ops", "load", "results", "load-summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Profile struct {
				Name    string  `json:"name"`
				PeakRps float64 `json:"peak_rps"`
				Hold    struct {
					Seconds, Requests, Rps float64
					P95                    float64 `json:"p95_ms"`
					Failed                 float64 `json:"failed_rate"`
				} `json:"hold"`
			} `json:"profile"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		h := s.Profile.Hold
		if s.Profile.Name != "load" || s.Profile.PeakRps != 20 || h.Seconds != 3 || h.Rps < 16 || h.Rps > 24 || h.P95 <= 0 || h.Failed != 0 {
			t.Errorf("summary profile = %+v, want the hold at about 20 requests/s for 3 s", s.Profile)
		}
	})

	t.Run("k6 dead port", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", e2eutil.FreePort(t))
		path := filepath.Join(t.TempDir(), "dead-summary.json")
		out, code := ldRunK6(t, dir, "ops/load/smoke.js", "BASE_URL="+url, "SMOKE_DURATION=2s", "SUMMARY_PATH="+path)
		if code == 0 {
			t.Errorf("k6 against a dead port: exit 0:\n%s", out)
		}
		if want := url + "/healthz does not answer 200"; !strings.Contains(out, want) || !strings.Contains(out, "is the application running") {
			t.Errorf("k6 output lacks %q and a hint:\n%s", want, out)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("no summary at SUMMARY_PATH: %v", err)
		}
	})

	t.Run("smoke script", func(t *testing.T) {
		out, code := runSmoke(t, dir, "BASE_URL="+srv.Base, "SMOKE_RETRIES=1")
		if code != 0 {
			t.Fatalf("smoke.sh against the live backend: exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"PASS GET /healthz\n", "PASS GET /readyz", "PASS GET /api/items\n", "PASS POST /api/items",
			"SKIP Prometheus GET /-/ready: PROMETHEUS_URL is not set", "SKIP Alertmanager GET /-/ready", "SKIP Grafana GET /api/health",
			"OK: 5 checks passed against " + srv.Base} {
			if !strings.Contains(out, want) {
				t.Errorf("smoke.sh output lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`PASS GET /api/items/[0-9]+\n`).MatchString(out) {
			t.Errorf("smoke.sh output lacks the read of the created item:\n%s", out)
		}
		if strings.Contains(out, "frontend") || strings.Contains(out, "FAIL") {
			t.Errorf("smoke.sh with frontend=none checked a frontend or failed:\n%s", out)
		}
		// The backend's own /healthz, checked when BACKEND_URL is not BASE_URL.
		out, code = runSmoke(t, dir, "BASE_URL="+srv.Base, "BACKEND_URL="+strings.Replace(srv.Base, "127.0.0.1", "localhost", 1))
		if code != 0 || !strings.Contains(out, "PASS GET /healthz (backend)") || !strings.Contains(out, "OK: 6 checks") {
			t.Errorf("smoke.sh with BACKEND_URL: exit %d:\n%s", code, out)
		}
	})

	t.Run("smoke script dead port", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", e2eutil.FreePort(t))
		start := time.Now()
		out, code := runSmoke(t, dir, "BASE_URL="+url, "SMOKE_RETRIES=0", "SMOKE_TIMEOUT=3")
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{"FAIL GET /healthz: want 200", "no response (curl: (7)", "FAIL GET /readyz",
			"skipped: the item was not created", "FAILED: 5 of 5 checks against " + url,
			"hint: 4 request(s) got no response at all: is the stack running"} {
			if !strings.Contains(out, want) {
				t.Errorf("smoke.sh output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "PASS") {
			t.Errorf("a check passed against a dead port:\n%s", out)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %v against a dead port with SMOKE_RETRIES=0", d)
		}
	})
}
