package monitoring

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// capVariants cover every conditional part of the capacity, acceptance and configuration docs.
var capVariants = []map[string]string{
	{},
	{"db": "mariadb", "cache": "redis", "tls": "none", "frontend": "none", "backend": "python", "ci": "gitlab",
		"alert_channels": "email,telegram,webhook", "telegram_chat_id": "-100123", "load_peak_rps": "120",
		"cpu_limit": "1.5", "memory_limit": "1g"},
	{"frontend": "static", "backend": "node", "ci": "both", "alert_channels": "webhook", "name": "shop"},
}

// capPython is the Python 3 the generated tools must work with: the system's /usr/bin/python3.
func capPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return e2eutil.RequireTool(t, "python3")
}

// capRun runs name with args in dir and returns its stdout, stderr and exit status.
func capRun(t *testing.T, dir, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "COMPOSE_PROJECT_NAME=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// capQuotas runs the generated ops/load/quotas.py.
func capQuotas(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	return capRun(t, dir, capPython(t), append([]string{"ops/load/quotas.py"}, args...)...)
}

// capService is one proposal of quotas.py --json.
type capService struct {
	Service       string  `json:"service"`
	Containers    int     `json:"containers"`
	PeakCPU       float64 `json:"peak_cpu"`
	PeakMemoryMiB float64 `json:"peak_memory_mib"`
	Cpus          string  `json:"cpus"`
	Memory        string  `json:"memory"`
	File          string  `json:"file"`
}

type capReport struct {
	Services    []capService      `json:"services"`
	Default     map[string]string `json:"default"`
	Trustworthy bool              `json:"trustworthy"`
	Problems    []string          `json:"problems"`
	Summary     struct {
		Requests         int      `json:"requests"`
		RPS              float64  `json:"rps"`
		P95              float64  `json:"p95_ms"`
		FailedThresholds []string `json:"failed_thresholds"`
		Hold             struct {
			RPS float64 `json:"rps"`
		} `json:"hold"`
	} `json:"summary"`
}

func capDecode(t *testing.T, out string) capReport {
	t.Helper()
	var r capReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("quotas.py --json: %v\n%s", err, out)
	}
	return r
}

// TestCapacityQuotasUnitTests runs the generated project's own unit tests of quotas.py.
func TestCapacityQuotasUnitTests(t *testing.T) {
	dir := e2eutil.Generate(t, nil)
	stdout, stderr, code := capRun(t, dir, capPython(t), "-m", "unittest", "discover", "-s", "ops/load", "-p", "test_*.py", "-v")
	if code != 0 {
		t.Fatalf("python3 -m unittest: exit %d\n%s%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`Ran (\d+) tests`).FindStringSubmatch(stderr)
	if m == nil || m[1] == "0" || !strings.Contains(stderr, "\nOK") {
		t.Fatalf("unittest ran no tests or did not pass:\n%s", stderr)
	}
	t.Logf("quotas unit tests: %s tests passed", m[1])
}

// TestCapacityQuotasKnownAnswers runs quotas.py on the recorded fixtures and compares every
// number with the answer worked out by hand from the headroom rule.
func TestCapacityQuotasKnownAnswers(t *testing.T) {
	dir := e2eutil.Generate(t, nil)
	fx := "ops/load/fixtures/"

	t.Run("docker-stats", func(t *testing.T) {
		out, stderr, code := capQuotas(t, dir, "--summary", fx+"k6-load-summary.json", "--docker-stats", fx+"docker-stats.jsonl",
			"--project", "shop", "--target-rps", "50", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		r := capDecode(t, out)
		// memory = peak x 1.5 up to 64 MiB (min 64), cpus = peak x 2 up to 0.25 (min 0.25):
		// backend 86.27 MiB -> 129.4 -> 192m, 0.618 -> 1.236 -> 1.25 (busiest of 2 replicas);
		// db 201.3 MiB -> 301.95 -> 320m, 0.2305 -> 0.461 -> 0.5; frontend and proxy: the minimums.
		want := []capService{
			{"backend", 2, 0.618, 86.3, "1.25", "192m", "compose.prod.yaml"},
			{"db", 1, 0.2305, 201.3, "0.5", "320m", "compose.prod.yaml"},
			{"frontend", 1, 0.0102, 6.9, "0.25", "64m", "compose.prod.yaml"},
			{"proxy", 1, 0.0987, 38.5, "0.25", "64m", "compose.prod.yaml"},
		}
		capCompare(t, r.Services, want)
		if r.Default["cpus"] != "1.25" || r.Default["memory"] != "320m" || !r.Trustworthy {
			t.Errorf("default %v trustworthy %v, want cpus 1.25 memory 320m, trustworthy", r.Default, r.Trustworthy)
		}
		if r.Summary.Requests != 34512 || r.Summary.Hold.RPS != 49.94 || r.Summary.P95 != 184.23 {
			t.Errorf("summary %+v, want 34512 requests, hold 49.94 req/s, p95 184.23 ms", r.Summary)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		out, stderr, code := capQuotas(t, dir, "--summary", fx+"k6-load-summary.json", "--prom-memory", fx+"prometheus-memory.json",
			"--prom-cpu", fx+"prometheus-cpu.json", "--project", "shop", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		// backend 100 MiB -> 150 -> 192m, 0.37 -> 0.74 -> 0.75; db 256 -> 384 -> 384m,
		// 0.125 -> 0.25 exactly; prometheus 400 -> 600 -> 640m; proxy 48 -> 72 -> 128m, 0.3 -> 0.75.
		// Another project's container and cAdvisor's root cgroup are left out.
		want := []capService{
			{"backend", 2, 0.37, 100, "0.75", "192m", "compose.prod.yaml"},
			{"db", 1, 0.125, 256, "0.25", "384m", "compose.prod.yaml"},
			{"frontend", 1, 0.01, 8, "0.25", "64m", "compose.prod.yaml"},
			{"prometheus", 1, 0.05, 400, "0.25", "640m", "compose.monitoring.yaml"},
			{"proxy", 1, 0.3, 48, "0.75", "128m", "compose.prod.yaml"},
		}
		capCompare(t, capDecode(t, out).Services, want)
	})

	t.Run("markdown-and-compose", func(t *testing.T) {
		out, stderr, code := capQuotas(t, dir, "--summary", fx+"k6-load-summary.json", "--docker-stats", fx+"docker-stats.jsonl",
			"--project", "shop", "--compose")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{
			"| service | containers | peak CPU (cores) | peak memory | proposed cpus | proposed memory | file |",
			"| backend | 2 | 0.618 | 86.3 MiB | 1.25 | 192m | compose.prod.yaml |",
			"| db | 1 | 0.231 | 201.3 MiB | 0.5 | 320m | compose.prod.yaml |",
			"Thresholds: passed.",
			"Rule: memory = peak x 1.5 rounded up to 64 MiB (at least 64 MiB); cpus = peak cores x 2 rounded up to 0.25",
			"  backend:\n    deploy:\n      resources:\n        limits:\n          cpus: \"1.25\"\n          memory: 192m\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("failed-thresholds", func(t *testing.T) {
		before := e2eutil.ReadFile(t, filepath.Join(dir, "docs/capacity.md"))
		out, stderr, code := capQuotas(t, dir, "--summary", fx+"k6-failed-summary.json", "--docker-stats", fx+"docker-stats.jsonl",
			"--project", "shop", "--json")
		if code != 1 {
			t.Fatalf("exit %d, want 1 (not trustworthy): %s", code, stderr)
		}
		r := capDecode(t, out)
		if r.Trustworthy || len(r.Summary.FailedThresholds) != 5 || !strings.Contains(stderr, "limits not trustworthy") {
			t.Errorf("trustworthy %v, failed thresholds %v, stderr %q", r.Trustworthy, r.Summary.FailedThresholds, stderr)
		}
		_, stderr, code = capQuotas(t, dir, "--summary", fx+"k6-failed-summary.json", "--docker-stats", fx+"docker-stats.jsonl",
			"--project", "shop", "--write-doc", "docs/capacity.md")
		if code != 2 || !strings.Contains(stderr, "not writing docs/capacity.md") {
			t.Errorf("--write-doc of a failed run: exit %d, stderr %q; want 2 and a refusal", code, stderr)
		}
		if e2eutil.ReadFile(t, filepath.Join(dir, "docs/capacity.md")) != before {
			t.Error("docs/capacity.md changed although the run failed its thresholds")
		}
	})
}

func capCompare(t *testing.T, got, want []capService) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("services %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("service %d: got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// TestCapacityQuotasBadInput: every kind of bad input ends with exit 2 and one clear line
// naming the file and the problem, never a Python traceback.
func TestCapacityQuotasBadInput(t *testing.T) {
	dir := e2eutil.Generate(t, nil)
	bad := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(bad, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sum, stats := "ops/load/fixtures/k6-load-summary.json", "ops/load/fixtures/docker-stats.jsonl"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--summary", filepath.Join(bad, "nope.json"), "--docker-stats", stats}, "nope.json: no such file (k6 summary)"},
		{[]string{"--summary", write("trunc.json", `{"metrics": {`), "--docker-stats", stats}, "trunc.json: not JSON (k6 summary)"},
		{[]string{"--summary", write("export.json", `{"metrics": {"http_reqs": {"count": 3, "rate": 1}}}`), "--docker-stats", stats},
			"metrics.http_reqs.values is missing"},
		{[]string{"--summary", sum, "--docker-stats", write("text.jsonl", "CONTAINER ID   NAME   CPU %\n")}, "text.jsonl:1: not a JSON line"},
		{[]string{"--summary", sum, "--docker-stats", write("unit.jsonl", `{"Name":"shop-db-1","CPUPerc":"1%","MemUsage":"3 parsecs / 1GiB"}`+"\n")},
			"unit.jsonl:1: unknown size unit"},
		{[]string{"--summary", sum, "--docker-stats", stats, "--project", "elsewhere"}, "no container of compose project 'elsewhere'"},
		{[]string{"--summary", sum, "--prom-memory", write("err.json", `{"status":"error","errorType":"bad_data","error":"parse error"}`),
			"--prom-cpu", "ops/load/fixtures/prometheus-cpu.json"}, "the Prometheus query failed: parse error"},
		{[]string{"--summary", sum}, "give either --docker-stats FILE or --prom-memory FILE --prom-cpu FILE"},
		{[]string{"--results", bad}, "no k6 summary (*-summary.json)"},
	}
	for _, c := range cases {
		args := c.args
		if !slices.Contains(args, "--project") {
			args = append(args, "--project", "shop")
		}
		stdout, stderr, code := capQuotas(t, dir, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", c.args, code, stdout, stderr)
		}
		if !strings.HasPrefix(stderr, "quotas.py: error: ") || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "Traceback") {
			t.Errorf("%v: stderr %q, want one error line containing %q", c.args, stderr, c.want)
		}
	}
}

// TestCapacityAcceptanceCheck shellchecks ops/acceptance/check.sh and ops/load/run.sh and runs
// check.sh in generated projects: every item with a status, exit 0 unless --strict, and the
// statuses that follow from what the project holds.
func TestCapacityAcceptanceCheck(t *testing.T) {
	shellcheck := e2eutil.RequireTool(t, "shellcheck")
	for i, set := range capVariants {
		set := set
		t.Run(strings.Join(capKeys(set), "-")+"#"+string(rune('0'+i)), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			if out, err := exec.Command(shellcheck, "--format=gcc", filepath.Join(dir, "ops/acceptance/check.sh"),
				filepath.Join(dir, "ops/load/run.sh")).CombinedOutput(); err != nil {
				t.Fatalf("shellcheck: %v\n%s", err, out)
			}
			out, stderr, code := capRun(t, dir, "ops/acceptance/check.sh")
			if code != 0 {
				t.Fatalf("check.sh: exit %d\n%s%s", code, out, stderr)
			}
			st := e2eutil.AcceptanceStatuses(t, out)
			want := map[string]string{
				e2eutil.AcceptanceItems[1]: "MET",     // a runbook per alert
				e2eutil.AcceptanceItems[2]: "NOT MET", // no restore test has run yet
				e2eutil.AcceptanceItems[4]: "NOT MET", // no measurements yet
				e2eutil.AcceptanceItems[5]: "MET",     // healthchecks
				e2eutil.AcceptanceItems[6]: "MET",     // secrets ignored, no leak
				e2eutil.AcceptanceItems[7]: "UNKNOWN", // CI result is on the server
				e2eutil.AcceptanceItems[8]: "NOT MET", // contacts TODO, channel credentials empty
				e2eutil.AcceptanceItems[9]: "MET",     // postmortem template and process
			}
			if _, err := exec.LookPath("promtool"); err == nil {
				if _, err := exec.LookPath("amtool"); err == nil {
					want[e2eutil.AcceptanceItems[0]] = "MET"
				}
			}
			if _, err := exec.LookPath("logrotate"); err == nil {
				want[e2eutil.AcceptanceItems[3]] = "MET"
			}
			for item, w := range want {
				if st[item] != w {
					t.Errorf("%s: %s, want %s\n%s", item, st[item], w, out)
				}
			}
			if !regexp.MustCompile(`(?m)^10 items: \d+ met, \d+ not met, \d+ unknown$`).MatchString(out) {
				t.Errorf("no totals line:\n%s", out)
			}
			if _, _, code := capRun(t, dir, "ops/acceptance/check.sh", "--strict"); code != 1 {
				t.Errorf("check.sh --strict: exit %d, want 1 while items are not met", code)
			}
			if _, stderr, code := capRun(t, dir, "ops/acceptance/check.sh", "--bogus"); code != 2 || !strings.Contains(stderr, "--bogus") {
				t.Errorf("check.sh --bogus: exit %d, stderr %q", code, stderr)
			}
		})
	}

	t.Run("after-a-load-test", func(t *testing.T) {
		t.Parallel()
		// The fixture run needs backend cpus 1.25 and db memory 320m: the default limits
		// (1.0, 512m) are too small for the backend, 1.5 and 512m fit every service.
		for _, c := range []struct {
			cpu, status, evidence string
		}{
			{"1.0", "NOT MET", "backend in compose.prod.yaml: cpus 1.0, memory 512m; the measurements need cpus 1.25, memory 192m"},
			{"1.5", "MET", "the limits of all 4 measured services are at least what the measurements need"},
		} {
			dir := e2eutil.Generate(t, map[string]string{"name": "shop", "cpu_limit": c.cpu})
			results := filepath.Join(dir, "ops/load/results")
			for src, dst := range map[string]string{"k6-load-summary.json": "load-summary.json", "docker-stats.jsonl": "load-docker-stats.jsonl"} {
				b, err := os.ReadFile(filepath.Join(dir, "ops/load/fixtures", src))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(results, dst), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// What `make quotas` runs; the project name comes from compose.yaml.
			out, stderr, code := capQuotas(t, dir, "--results", "ops/load/results", "--target-rps", "50", "--write-doc", "docs/capacity.md", "--compose")
			if code != 0 || !strings.Contains(out, "updated docs/capacity.md") {
				t.Fatalf("quotas: exit %d\n%s%s", code, out, stderr)
			}
			doc := e2eutil.ReadFile(t, filepath.Join(dir, "docs/capacity.md"))
			if !strings.Contains(doc, "<!-- quotas:begin -->\nLoad test: `ops/load/results/load-summary.json` (profile load)") ||
				!strings.Contains(doc, "| backend | 2 | 0.618 | 86.3 MiB | 1.25 | 192m | compose.prod.yaml |\n") {
				t.Errorf("docs/capacity.md measurements not written:\n%s", doc)
			}
			out, _, _ = capRun(t, dir, "ops/acceptance/check.sh")
			if st := e2eutil.AcceptanceStatuses(t, out); st[e2eutil.AcceptanceItems[4]] != c.status || !strings.Contains(out, c.evidence) {
				t.Errorf("cpu_limit %s: quotas item %s, want %s with %q\n%s", c.cpu, st[e2eutil.AcceptanceItems[4]], c.status, c.evidence, out)
			}
		}
	})

	t.Run("leaked-secret", func(t *testing.T) {
		t.Parallel()
		dir := e2eutil.Generate(t, nil)
		pw := strings.TrimSpace(e2eutil.ReadFile(t, filepath.Join(dir, "secrets/db_password")))
		f, err := os.OpenFile(filepath.Join(dir, "README.md"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\ndatabase password: " + pw + "\n")
		f.Close()
		out, _, _ := capRun(t, dir, "ops/acceptance/check.sh")
		if st := e2eutil.AcceptanceStatuses(t, out); st[e2eutil.AcceptanceItems[6]] != "NOT MET" ||
			!strings.Contains(out, "the value of secrets/db_password appears in: ./README.md") {
			t.Errorf("a password pasted into README.md: %s\n%s", st[e2eutil.AcceptanceItems[6]], out)
		}
		if strings.Contains(out, pw) {
			t.Error("check.sh printed the secret value")
		}
	})
}

func capKeys(m map[string]string) []string {
	keys := []string{"defaults"}
	if len(m) > 0 {
		keys = keys[:0]
		for k, v := range m {
			if k == "db" || k == "ci" || k == "frontend" {
				keys = append(keys, v)
			}
		}
		sort.Strings(keys)
	}
	return keys
}

// TestCapacityDocs: docs/production-acceptance.md lists every required item, docs/configuration.md
// every variable of .env.example and the compose files and every secret file, and
// docs/capacity.md the load profile and the limits compose.prod.yaml uses.
func TestCapacityDocs(t *testing.T) {
	envVar := regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]*)=`)
	composeVar := regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)
	for i, set := range capVariants {
		set := set
		t.Run(strings.Join(capKeys(set), "-")+"#"+string(rune('0'+i)), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)

			acc := e2eutil.ReadFile(t, filepath.Join(dir, "docs/production-acceptance.md"))
			for _, item := range e2eutil.AcceptanceItems {
				if !strings.Contains(acc, "\n## "+item+"\n") {
					t.Errorf("docs/production-acceptance.md has no section %q", item)
				}
			}
			for _, want := range []string{"**Where**", "**Verify**", "make check", "ops/acceptance/check.sh"} {
				if !strings.Contains(acc, want) {
					t.Errorf("docs/production-acceptance.md lacks %q", want)
				}
			}

			conf := e2eutil.ReadFile(t, filepath.Join(dir, "docs/configuration.md"))
			vars := map[string]bool{}
			for _, m := range envVar.FindAllStringSubmatch(e2eutil.ReadFile(t, filepath.Join(dir, ".env.example")), -1) {
				vars[m[1]] = true
			}
			for _, f := range []string{"compose.yaml", "compose.override.yaml", "compose.prod.yaml", "compose.monitoring.yaml"} {
				for _, m := range composeVar.FindAllStringSubmatch(e2eutil.ReadFile(t, filepath.Join(dir, f)), -1) {
					vars[m[1]] = true
				}
			}
			if len(vars) < 8 {
				t.Fatalf("found only %d variables in .env.example and the compose files: %v", len(vars), vars)
			}
			for v := range vars {
				if !strings.Contains(conf, "`"+v+"`") {
					t.Errorf("docs/configuration.md does not mention the variable %s", v)
				}
			}
			entries, err := os.ReadDir(filepath.Join(dir, "secrets"))
			if err != nil || len(entries) == 0 {
				t.Fatalf("secrets/: %v (%d files)", err, len(entries))
			}
			for _, e := range entries {
				if !strings.Contains(conf, "`secrets/"+e.Name()+"`") {
					t.Errorf("docs/configuration.md does not mention secrets/%s", e.Name())
				}
			}

			capDoc := e2eutil.ReadFile(t, filepath.Join(dir, "docs/capacity.md"))
			peak := set["load_peak_rps"]
			if peak == "" {
				peak = "50"
			}
			cpu, mem := set["cpu_limit"], set["memory_limit"]
			if cpu == "" {
				cpu = "1.0"
			}
			if mem == "" {
				mem = "512m"
			}
			for _, want := range []string{
				"**" + peak + " requests per second**",
				"<!-- quotas:begin -->\nNo measurements yet",
				"<!-- quotas:end -->",
				"Default limits (`x-resources` in compose.prod.yaml): cpus `" + cpu + "`, memory `" + mem + "`.",
				"## Headroom rule",
				"## Re-measuring",
			} {
				if !strings.Contains(capDoc, want) {
					t.Errorf("docs/capacity.md lacks %q", want)
				}
			}
			prod := e2eutil.ReadFile(t, filepath.Join(dir, "compose.prod.yaml"))
			if !strings.Contains(prod, "cpus: \""+cpu+"\"") || !strings.Contains(prod, "memory: \""+mem+"\"") {
				t.Errorf("compose.prod.yaml does not use the limits recorded in docs/capacity.md (cpus %s, memory %s)", cpu, mem)
			}
		})
	}
}
