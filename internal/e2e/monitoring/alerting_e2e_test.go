package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestAlertingEndToEnd runs the generated alerting pipeline for real: Prometheus (Debian's
// package) evaluates the generated alert rules on a fake node-exporter textfile endpoint whose
// postgres backup last succeeded 30 hours ago, and Alertmanager (v0.28, see alerting_test.go)
// routes the generated configuration's alerts to local webhook receivers. It asserts that
// BackupStale arrives at the alert webhook through the `critical` receiver with its runbook
// link, that the runbook exists in the generated tree, and that the Watchdog reaches the dead
// man's switch (and nothing else does).
//
// What the test changes in its copies of the generated files, and why:
//   - alertmanager.yml: /run/secrets/ (the Docker secrets mount) becomes a temp directory
//     holding the webhook URLs of the local receivers. Nothing else: routes, group_wait and
//     repeat intervals are the generated ones (the critical route waits 10 s).
//   - rule files: every rule is loaded unchanged except that a `for:` longer than 2 s
//     becomes 2 s and a group `interval:` is dropped (the global evaluation interval of 1 s
//     applies), so that a rule meant to wait 30 minutes fires within seconds.
//   - prometheus.yml: written by the test (the generated one scrapes container names through
//     Docker's DNS): scrape and evaluation interval 1 s, the generated rule files, the local
//     Alertmanager, and one scrape job `node` on the fake textfile endpoint. Prometheus runs
//     with --rules.alert.resend-delay=1s: an alert sent before the Alertmanager target is
//     discovered would otherwise wait a minute for its resend.
//
// The whole test is bounded by amE2ETimeout and stops every process it started.
func TestAlertingEndToEnd(t *testing.T) {
	prometheus := e2eutil.RequireTool(t, "prometheus")
	amRequireTool(t) // Alertmanager and amtool come from the same `make tools` step
	alertmanager := e2eutil.RequireTool(t, "alertmanager")

	const runbookBase = "https://git.example.test/ops/am-e2e/-/blob/main"
	dir := e2eutil.Generate(t, map[string]string{
		"name": "am-e2e", "domain": "am-e2e.example.test", "db": "postgres",
		"alert_channels": "webhook", "runbook_base_url": runbookBase,
	})
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), amE2ETimeout)
	defer cancel()

	// Local receivers of the two webhooks (alerts and dead man's switch).
	hooks := amNewHooks(t)

	// The fake node-exporter: backup metrics of the textfile collector, one of them stale.
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().Unix()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, `# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{store="postgres",kind="logical"} %d
# TYPE backup_last_duration_seconds gauge
backup_last_duration_seconds{store="postgres",kind="logical"} 42
# TYPE backup_last_size_bytes gauge
backup_last_size_bytes{store="postgres",kind="logical"} 1048576
# TYPE restore_test_last_success_timestamp_seconds gauge
restore_test_last_success_timestamp_seconds{store="postgres"} %d
# TYPE restore_test_last_duration_seconds gauge
restore_test_last_duration_seconds{store="postgres"} 90
# TYPE restore_test_last_result gauge
restore_test_last_result{store="postgres"} 1
`, now-30*3600, now-3600)
	}))
	t.Cleanup(metrics.Close)

	// Alertmanager with the generated configuration, secrets in a temp directory.
	secrets := filepath.Join(work, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, url := range map[string]string{
		"alert_webhook_url": hooks.url + "/alerts",
		"deadman_url":       hooks.url + "/deadman",
	} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	amText, err := os.ReadFile(filepath.Join(dir, amPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`_file: /run/secrets/(\S+)`).FindAllStringSubmatch(string(amText), -1) {
		if _, err := os.Stat(filepath.Join(secrets, m[1])); err != nil {
			t.Fatalf("%s reads secret %s, which a webhook-only project should not need", amPath, m[1])
		}
	}
	amConfig := filepath.Join(work, "alertmanager.yml")
	amText = []byte(strings.ReplaceAll(string(amText), "/run/secrets/", secrets+"/"))
	if err := os.WriteFile(amConfig, amText, 0o644); err != nil {
		t.Fatal(err)
	}
	amPort := e2eutil.FreePort(t)
	amURL := fmt.Sprintf("http://127.0.0.1:%d", amPort)
	amStart(t, work, "alertmanager", alertmanager,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(work, "am-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", amPort),
		"--cluster.listen-address=",
	)

	// Prometheus with the generated rules.
	ruleFiles, err := filepath.Glob(filepath.Join(dir, "monitoring/prometheus/rules/*.yml"))
	if err != nil || len(ruleFiles) == 0 {
		t.Fatalf("no generated rule files (monitoring/prometheus/rules/*.yml): %v", err)
	}
	var rules []string
	found := false
	for _, f := range ruleFiles {
		out, has := amFastRules(t, f, "BackupStale")
		found = found || has
		p := filepath.Join(work, "rules", filepath.Base(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, p)
	}
	if !found {
		t.Fatal("no generated rule file defines BackupStale")
	}
	promConfig := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files": rules,
		"alerting": map[string]any{"alertmanagers": []any{map[string]any{
			"static_configs": []any{map[string]any{"targets": []string{fmt.Sprintf("127.0.0.1:%d", amPort)}}},
		}}},
		"scrape_configs": []any{map[string]any{
			"job_name":       "node",
			"static_configs": []any{map[string]any{"targets": []string{strings.TrimPrefix(metrics.URL, "http://")}}},
		}},
	}
	promYAML, err := yaml.Marshal(promConfig)
	if err != nil {
		t.Fatal(err)
	}
	promConfigPath := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(promConfigPath, promYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	promPort := e2eutil.FreePort(t)
	amStart(t, work, "prometheus", prometheus,
		"--config.file="+promConfigPath,
		"--storage.tsdb.path="+filepath.Join(work, "prom-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort),
		// Alerts sent before the Alertmanager target is discovered are lost until the next
		// resend, a minute later by default.
		"--rules.alert.resend-delay=1s",
	)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	amWaitReady(ctx, t, "alertmanager", amURL+"/-/ready", work)
	amWaitReady(ctx, t, "prometheus", promURL+"/-/ready", work)

	// Wait for the stale backup alert at the alert webhook.
	start := time.Now()
	alert, ok := hooks.wait(ctx, "/alerts", func(m amWebhookMsg, a amWebhookAlert) bool {
		return a.Labels["alertname"] == "BackupStale" && a.Status == "firing"
	})
	if !ok {
		amDumpLogs(t, work)
		t.Fatalf("BackupStale did not reach the alert webhook within %s; received: %s\nPrometheus alerts: %s",
			amE2ETimeout, hooks.summary(), amGet(promURL+"/api/v1/alerts"))
	}
	t.Logf("BackupStale reached the webhook %.1fs after Prometheus was ready", time.Since(start).Seconds())
	if alert.msg.Receiver != "critical" {
		t.Errorf("BackupStale came through receiver %q, want critical", alert.msg.Receiver)
	}
	for k, want := range map[string]string{"severity": "critical", "store": "postgres"} {
		if got := alert.alert.Labels[k]; got != want {
			t.Errorf("BackupStale label %s = %q, want %q (labels %v)", k, got, want, alert.alert.Labels)
		}
	}
	wantRunbook := runbookBase + "/docs/runbooks/backup-stale.md"
	if got := alert.alert.Annotations["runbook_url"]; got != wantRunbook {
		t.Errorf("BackupStale runbook_url = %q, want %q", got, wantRunbook)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs/runbooks/backup-stale.md")); err != nil {
		t.Errorf("the runbook BackupStale links to is not in the generated tree: %v", err)
	}
	for _, k := range []string{"summary", "description"} {
		if alert.alert.Annotations[k] == "" {
			t.Errorf("BackupStale has no %s annotation", k)
		}
	}

	amCheckInhibition(t, amURL)

	// The Watchdog keeps the dead man's switch alive, and goes nowhere else.
	if _, ok := hooks.wait(ctx, "/deadman", func(m amWebhookMsg, a amWebhookAlert) bool {
		return a.Labels["alertname"] == "Watchdog" && m.Receiver == "deadman"
	}); !ok {
		t.Errorf("the Watchdog did not reach the dead man's switch; received: %s\nAlertmanager groups: %s",
			hooks.summary(), amGet(amURL+"/api/v2/alerts/groups")+"\nPrometheus rules: "+amGet(promURL+"/api/v1/rules"))
	}
	for _, got := range hooks.all() {
		for _, a := range got.msg.Alerts {
			if (got.path == "/deadman") != (a.Labels["alertname"] == "Watchdog") {
				t.Errorf("%s received %s through receiver %s", got.path, a.Labels["alertname"], got.msg.Receiver)
			}
		}
	}
	if t.Failed() {
		amDumpLogs(t, work)
	}
}

// amCheckInhibition posts alerts straight to Alertmanager's API and reads back which are
// inhibited: a critical BackendErrorBudgetBurn mutes the warning one of the same job (another
// burn window), and a critical alert does not mute a warning about another instance.
func amCheckInhibition(t *testing.T, amURL string) {
	t.Helper()
	ends := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	alert := func(labels ...string) map[string]any {
		l := map[string]string{}
		for i := 0; i < len(labels); i += 2 {
			l[labels[i]] = labels[i+1]
		}
		return map[string]any{"labels": l, "endsAt": ends}
	}
	body, _ := json.Marshal([]any{
		alert("alertname", "BackendErrorBudgetBurn", "severity", "critical", "job", "backend", "window", "1h", "test", "inhibit"),
		alert("alertname", "BackendErrorBudgetBurn", "severity", "warning", "job", "backend", "window", "1d", "test", "inhibit"),
		alert("alertname", "InhibitProbe", "severity", "critical", "job", "node", "instance", "a:9100", "test", "inhibit"),
		alert("alertname", "InhibitProbe", "severity", "warning", "job", "node", "instance", "b:9100", "test", "inhibit"),
	})
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post alerts: %s", resp.Status)
	}
	// Alertmanager marks inhibitions asynchronously (its inhibitor reads the alerts from a
	// subscription): poll until the expected marks are there, bounded for a hang.
	var wrong []string
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(amGet(amURL+`/api/v2/alerts?filter=test%3D%22inhibit%22`)), &got); err != nil {
			t.Fatal(err)
		}
		wrong = nil
		if len(got) != 4 {
			wrong = append(wrong, fmt.Sprintf("Alertmanager holds %d of the 4 posted alerts", len(got)))
		}
		for _, a := range got {
			want := a.Labels["alertname"] == "BackendErrorBudgetBurn" && a.Labels["severity"] == "warning"
			if inhibited := len(a.Status.InhibitedBy) > 0; inhibited != want {
				wrong = append(wrong, fmt.Sprintf("alert %v: inhibited %v, want %v", a.Labels, inhibited, want))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range wrong {
		t.Error(w)
	}
}

// amE2ETimeout bounds the wait for the alerts; starting and stopping add a few seconds.
const amE2ETimeout = 50 * time.Second

// amFastRules returns the rule file with every `for:` over 2 s set to 2 s and group
// `interval:` removed, and whether it defines the alert named want.
func amFastRules(t *testing.T, path, want string) ([]byte, bool) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []map[string]any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	has := false
	for _, g := range doc.Groups {
		delete(g, "interval")
		rules, _ := g["rules"].([]any)
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			if rule["alert"] == want {
				has = true
			}
			if f, ok := rule["for"].(string); ok {
				if d, err := amParseDuration(f); err != nil {
					t.Fatalf("%s: alert %v: for %q: %v", path, rule["alert"], f, err)
				} else if d > 2*time.Second {
					rule["for"] = "2s"
				}
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out, has
}

// amParseDuration parses a Prometheus duration such as 30m, 1h30m, 1d or 2w.
func amParseDuration(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		if i == 0 || j == i {
			return 0, fmt.Errorf("not a duration: %q", s)
		}
		var n int64
		fmt.Sscan(rest[:i], &n)
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
			"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[rest[i:j]]
		if unit == 0 {
			return 0, fmt.Errorf("unknown unit in %q", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}

// amStart starts a server in its own process group, logging to work/<name>.log, and stops
// the whole group when the test ends (SIGTERM, then SIGKILL after 5 s).
func amStart(t *testing.T, work, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		defer logf.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

// amWaitReady polls a readiness URL until it answers 200.
func amWaitReady(ctx context.Context, t *testing.T, name, url, work string) {
	t.Helper()
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			amDumpLogs(t, work)
			t.Fatalf("%s was not ready at %s", name, url)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func amGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// amDumpLogs logs the end of every server log in work.
func amDumpLogs(t *testing.T, work string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(work, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		t.Logf("--- %s (end)\n%s", filepath.Base(l), b)
	}
}

// amWebhookMsg is the part of Alertmanager's webhook payload the test reads.
type amWebhookMsg struct {
	Receiver string           `json:"receiver"`
	Status   string           `json:"status"`
	Alerts   []amWebhookAlert `json:"alerts"`
}

type amWebhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type amReceived struct {
	path  string
	msg   amWebhookMsg
	alert amWebhookAlert
}

// amHooks records every webhook POST it receives.
type amHooks struct {
	url    string
	mu     sync.Mutex
	got    []amReceived
	notify chan struct{}
}

func amNewHooks(t *testing.T) *amHooks {
	h := &amHooks{notify: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m amWebhookMsg
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, amReceived{path: r.URL.Path, msg: m})
		h.mu.Unlock()
		select {
		case h.notify <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *amHooks) all() []amReceived {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]amReceived(nil), h.got...)
}

// wait returns the first alert received at path that satisfies match.
func (h *amHooks) wait(ctx context.Context, path string, match func(amWebhookMsg, amWebhookAlert) bool) (amReceived, bool) {
	for {
		for _, r := range h.all() {
			if r.path != path {
				continue
			}
			for _, a := range r.msg.Alerts {
				if match(r.msg, a) {
					return amReceived{path: r.path, msg: r.msg, alert: a}, true
				}
			}
		}
		select {
		case <-ctx.Done():
			return amReceived{}, false
		case <-h.notify:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (h *amHooks) summary() string {
	var parts []string
	for _, r := range h.all() {
		for _, a := range r.msg.Alerts {
			parts = append(parts, fmt.Sprintf("%s %s via %s (%s)", r.path, a.Labels["alertname"], r.msg.Receiver, a.Status))
		}
	}
	if parts == nil {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}
