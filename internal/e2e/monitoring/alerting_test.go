package monitoring

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The alerting tests check the generated monitoring/alertmanager/alertmanager.yml with the
// real amtool, for each alert channel alone and all three together: `amtool check-config`
// accepts it, `amtool config routes test` sends severity=critical to `critical`,
// severity=warning to `warning` and the Watchdog to `deadman`, the generated route tests
// (ops/monitoring/test-routes.sh over monitoring/alertmanager/route-tests.txt) pass and fail
// when an expectation is wrong, every receiver sends to exactly the chosen channels, and no
// credential is in the file: every secret is a *_file field naming a /run/secrets/ file that
// `new` created under secrets/.
//
// The configuration uses bot_token_file and url_file, which Alertmanager knows from v0.26
// (and runs without crashing from v0.28): Debian bookworm's amtool 0.25 rejects them, so
// `make tools` installs amtool v0.28 with `go install`.

const (
	amPath       = "monitoring/alertmanager/alertmanager.yml"
	amRouteTests = "monitoring/alertmanager/route-tests.txt"
	amScript     = "ops/monitoring/test-routes.sh"
)

// amChannelKeys maps each alert channel answer to its Alertmanager receiver field.
var amChannelKeys = map[string]string{
	"email":    "email_configs",
	"telegram": "telegram_configs",
	"webhook":  "webhook_configs",
}

// amVariant is one answer set for the alert channels.
type amVariant struct {
	name     string
	channels []string
}

func amVariants() []amVariant {
	return []amVariant{
		{"email", []string{"email"}},
		{"telegram", []string{"telegram"}},
		{"webhook", []string{"webhook"}},
		{"all", []string{"email", "telegram", "webhook"}},
	}
}

func (v amVariant) set() map[string]string {
	s := map[string]string{
		"name": "am-app", "domain": "am-app.example.test",
		"alert_channels": strings.Join(v.channels, ","),
	}
	if slices.Contains(v.channels, "email") {
		s["alert_email_to"] = "oncall@am-app.example.test"
		s["smtp_smarthost"] = "mail.am-app.example.test:587"
		s["smtp_from"] = "alerts@am-app.example.test"
		s["smtp_username"] = "alerts@am-app.example.test"
	}
	if slices.Contains(v.channels, "telegram") {
		s["telegram_chat_id"] = "-100123456789"
	}
	return s
}

// amSecrets are the external secrets each channel needs; deadman_url is always needed.
var amSecrets = map[string]string{
	"email":    "smtp_password",
	"telegram": "telegram_bot_token",
	"webhook":  "alert_webhook_url",
}

// amRequireTool returns the path of an amtool (or alertmanager) new enough for the
// generated configuration: one that accepts bot_token_file and url_file. An older one
// (Debian bookworm's 0.25) fails the test under CI and skips it elsewhere.
func amRequireTool(t *testing.T) string {
	t.Helper()
	amtool := e2eutil.RequireTool(t, "amtool")
	probe := filepath.Join(t.TempDir(), "probe.yml")
	const cfg = `route: {receiver: r}
receivers:
  - name: r
    telegram_configs: [{chat_id: 1, bot_token_file: /run/secrets/t}]
    webhook_configs: [{url_file: /run/secrets/u}]
`
	if err := os.WriteFile(probe, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(amtool, "check-config", probe).CombinedOutput(); err != nil {
		ver, _ := exec.Command(amtool, "--version").CombinedOutput()
		first, _, _ := strings.Cut(string(ver), "\n")
		msg := fmt.Sprintf("%s (%s) is too old: it rejects bot_token_file/url_file (v0.28 or newer needed: run `make tools`): %s",
			amtool, strings.TrimSpace(first), strings.TrimSpace(string(out)))
		if e2eutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return amtool
}

// amRoute runs `amtool config routes test` and returns the receivers the labels reach.
func amRoute(t *testing.T, amtool, config string, labels ...string) string {
	t.Helper()
	args := append([]string{"config", "routes", "test", "--config.file=" + config}, labels...)
	out, err := exec.Command(amtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// amFileFields walks a YAML tree and calls fn with the path and value of every scalar.
func amFileFields(node any, path string, fn func(path, key string, value any)) {
	switch n := node.(type) {
	case map[string]any:
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch v := n[k].(type) {
			case map[string]any, []any:
				amFileFields(v, path+"."+k, fn)
			default:
				fn(path+"."+k, k, v)
			}
		}
	case []any:
		for i, v := range n {
			amFileFields(v, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// amCredentialKey matches the Alertmanager fields that hold a credential or a URL with one.
var amCredentialKey = regexp.MustCompile(`(password|token|secret|api_key|routing_key|url)$`)

func TestAlertingConfig(t *testing.T) {
	amtool := amRequireTool(t)
	bash := e2eutil.RequireTool(t, "bash")
	for _, v := range amVariants() {
		t.Run(v.name, func(t *testing.T) {
			dir := e2eutil.Generate(t, v.set())
			config := filepath.Join(dir, amPath)
			text, err := os.ReadFile(config)
			if err != nil {
				t.Fatal(err)
			}

			// The external secrets `new` created (empty) get dummy values, as a team would
			// fill them in; none of them may appear in the configuration.
			needed := []string{"deadman_url"}
			for _, ch := range v.channels {
				needed = append(needed, amSecrets[ch])
			}
			for _, name := range needed {
				p := filepath.Join(dir, "secrets", name)
				if _, err := os.Stat(p); err != nil {
					t.Errorf("secret %s was not created by new: %v", name, err)
				}
				val := "dummy-" + name + "-0fa9c3"
				if strings.HasSuffix(name, "_url") {
					val = "https://hooks.example.test/" + val
				}
				if err := os.WriteFile(p, []byte(val+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(text), val) || strings.Contains(string(text), "0fa9c3") {
					t.Errorf("%s holds the value of secret %s", amPath, name)
				}
			}

			out, err := exec.Command(amtool, "check-config", config).CombinedOutput()
			if err != nil {
				t.Fatalf("amtool check-config: %v\n%s", err, out)
			}

			for _, c := range []struct {
				want   string
				labels []string
			}{
				{"critical", []string{"alertname=BackupStale", "severity=critical", "store=postgres"}},
				{"warning", []string{"alertname=HostOutOfDisk", "severity=warning", "instance=node-exporter:9100"}},
				{"deadman", []string{"alertname=Watchdog", "severity=none"}},
				{"deadman", []string{"alertname=Watchdog", "severity=critical"}},
				{"default", []string{"alertname=SomethingElse"}},
			} {
				if got := amRoute(t, amtool, config, c.labels...); got != c.want {
					t.Errorf("routes test %v: got receiver %q, want %q", c.labels, got, c.want)
				}
			}

			// The generated route tests pass, and catch a wrong expectation.
			env := append(os.Environ(), "AMTOOL="+amtool)
			cmd := exec.Command(bash, filepath.Join(dir, amScript))
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %v\n%s", amScript, err, out)
			} else if !strings.Contains(string(out), "PASS alertname=Watchdog") {
				t.Errorf("%s ran no Watchdog case:\n%s", amScript, out)
			}
			cases := filepath.Join(dir, amRouteTests)
			orig, err := os.ReadFile(cases)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cases, append(orig, "warning alertname=Watchdog severity=warning\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd = exec.Command(bash, filepath.Join(dir, amScript))
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "FAIL alertname=Watchdog severity=warning -> warning") {
				t.Errorf("%s passed a wrong expectation (err %v):\n%s", amScript, err, out)
			}

			var doc map[string]any
			if err := yaml.Unmarshal(text, &doc); err != nil {
				t.Fatal(err)
			}
			amCheckReceivers(t, doc, v.channels)
			amCheckNoCredentials(t, doc, dir, needed)
		})
	}
}

// amCheckReceivers: default, critical and warning send to exactly the chosen channels; the
// dead man's switch is one webhook; the routes' repeat intervals are the documented ones.
func amCheckReceivers(t *testing.T, doc map[string]any, channels []string) {
	t.Helper()
	want := []string{}
	for _, ch := range channels {
		want = append(want, amChannelKeys[ch])
	}
	sort.Strings(want)
	receivers, _ := doc["receivers"].([]any)
	seen := map[string]bool{}
	for _, r := range receivers {
		m, _ := r.(map[string]any)
		name, _ := m["name"].(string)
		seen[name] = true
		var got []string
		for k := range m {
			if strings.HasSuffix(k, "_configs") {
				got = append(got, k)
			}
		}
		sort.Strings(got)
		switch name {
		case "default", "critical", "warning":
			if !slices.Equal(got, want) {
				t.Errorf("receiver %s sends to %v, want %v", name, got, want)
			}
		case "deadman":
			hooks, _ := m["webhook_configs"].([]any)
			if !slices.Equal(got, []string{"webhook_configs"}) || len(hooks) != 1 ||
				hooks[0].(map[string]any)["url_file"] != "/run/secrets/deadman_url" {
				t.Errorf("receiver deadman is %v, want one webhook to /run/secrets/deadman_url", m)
			}
		default:
			t.Errorf("unexpected receiver %q", name)
		}
	}
	for _, name := range []string{"default", "critical", "warning", "deadman"} {
		if !seen[name] {
			t.Errorf("receiver %s missing", name)
		}
	}

	route, _ := doc["route"].(map[string]any)
	routes, _ := route["routes"].([]any)
	repeat := map[string]string{}
	for i, r := range routes {
		m, _ := r.(map[string]any)
		recv, _ := m["receiver"].(string)
		repeat[recv], _ = m["repeat_interval"].(string)
		if i == 0 && (recv != "deadman" || m["continue"] != false) {
			t.Errorf("first route is %v, want the Watchdog to deadman with continue: false", m)
		}
	}
	for recv, want := range map[string]string{"deadman": "1m", "critical": "1h", "warning": "4h"} {
		if repeat[recv] != want {
			t.Errorf("route to %s: repeat_interval %q, want %q", recv, repeat[recv], want)
		}
	}
	if gb, _ := route["group_by"].([]any); fmt.Sprint(gb) != "[alertname severity]" {
		t.Errorf("route group_by %v, want [alertname severity]", gb)
	}
	inhibit, _ := doc["inhibit_rules"].([]any)
	if len(inhibit) == 0 {
		t.Fatal("no inhibit_rules")
	}
	rule, _ := inhibit[0].(map[string]any)
	eq := fmt.Sprint(rule["equal"])
	if fmt.Sprint(rule["source_matchers"]) != `[severity="critical"]` ||
		fmt.Sprint(rule["target_matchers"]) != `[severity="warning"]` ||
		!strings.Contains(eq, "alertname") || !strings.Contains(eq, "instance") || !strings.Contains(eq, "job") {
		t.Errorf("inhibit rule %v, want critical to mute warning of the same alertname, job and instance", rule)
	}
}

// amCheckNoCredentials: no field holds a credential or a URL inline, and every *_file field
// names /run/secrets/<name> for a secret `new` created.
func amCheckNoCredentials(t *testing.T, doc map[string]any, dir string, needed []string) {
	t.Helper()
	var files []string
	amFileFields(doc, "", func(path, key string, value any) {
		if strings.HasSuffix(key, "_file") {
			s, _ := value.(string)
			name, ok := strings.CutPrefix(s, "/run/secrets/")
			if !ok {
				t.Errorf("%s: %q is not a file under /run/secrets/", path, s)
				return
			}
			files = append(files, name)
			if _, err := os.Stat(filepath.Join(dir, "secrets", name)); err != nil {
				t.Errorf("%s: secret %s is not in the generated tree: %v", path, name, err)
			}
			return
		}
		if amCredentialKey.MatchString(key) {
			t.Errorf("%s: credential field %s set inline (%v); use %s_file", path, key, value, key)
		}
	})
	slices.Sort(files)
	files = slices.Compact(files)
	slices.Sort(needed)
	if !slices.Equal(files, needed) {
		t.Errorf("secret files used %v, want %v", files, needed)
	}
}
