package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The monitoring tests load production with monitoring (compose.yaml + compose.prod.yaml +
// compose.monitoring.yaml) as compose-go, the loader of docker compose, sees it, and assert
// docs/monitoring-contract.md on the loaded model: every monitoring service has a healthcheck,
// a restart policy, log rotation, limits and a pinned image, only Grafana is published (on the
// loopback interface), secrets come from files under secrets/, Prometheus keeps what the
// answers say. The Grafana tests check the dashboards and the provisioning that loads them.

// mcCase is one answer set for the monitoring tests.
type mcCase struct {
	composeCase
	channels                 []string
	retention, retentionSize string
}

func (c mcCase) set() map[string]string {
	m := c.composeCase.set()
	m["alert_channels"] = strings.Join(c.channels, ",")
	m["prometheus_retention"] = c.retention
	m["prometheus_retention_size"] = c.retentionSize
	if slices.Contains(c.channels, "telegram") {
		m["telegram_chat_id"] = "-1001234567890"
	}
	return m
}

func (c mcCase) String() string {
	return fmt.Sprintf("%s-%s-%s-%s", c.db, c.cache, c.tls, strings.Join(c.channels, "+"))
}

// mcCases covers each database, both caches, each alert channel alone and all together, with
// the limits, log rotation and retention varied so that a hard-coded value cannot pass.
func mcCases() []mcCase {
	cc := func(i int, fe, be, db, cache, tls, cpus, mem, size string, files int) composeCase {
		return composeCase{name: fmt.Sprintf("mon%d", i), frontend: fe, backend: be, db: db, cache: cache, tls: tls,
			replicas: 2 + i%3, cpus: cpus, memory: mem, logSize: size, logFiles: files, dbReplica: []string{"streaming", "none"}[i%2]}
	}
	return []mcCase{
		{cc(0, "react", "go", "postgres", "none", "letsencrypt", "1.0", "512m", "10m", 5), []string{"email"}, "15d", "10GB"},
		{cc(1, "none", "python", "mariadb", "redis", "none", "0.5", "1g", "20m", 3), []string{"telegram"}, "8w", "500MB"},
		{cc(2, "static", "node", "postgres", "redis", "letsencrypt", "2", "256m", "500k", 10), []string{"webhook"}, "30d", "50GB"},
		{cc(3, "react", "go", "mariadb", "none", "letsencrypt", "1.5", "2g", "1m", 7), []string{"email", "telegram", "webhook"}, "90d", "1GB"},
		{cc(4, "none", "go", "postgres", "none", "none", "0.25", "768m", "5m", 2), []string{"telegram", "webhook"}, "2w", "20GB"},
	}
}

// mcService is what the contract says about one monitoring service.
type mcService struct {
	image string // repository, without the tag
	port  int    // port inside the container, the one its healthcheck and scrape use
}

// mcServices are the monitoring services of docs/monitoring-contract.md for an answer set.
func mcServices(db, cache string) map[string]mcService {
	s := map[string]mcService{
		"prometheus":    {"prom/prometheus", 9090},
		"alertmanager":  {"prom/alertmanager", 9093},
		"grafana":       {"grafana/grafana", 3000},
		"node-exporter": {"prom/node-exporter", 9100},
		"cadvisor":      {"ghcr.io/google/cadvisor", 8080},
		"blackbox":      {"prom/blackbox-exporter", 9115},
		"db-exporter":   {"prometheuscommunity/postgres-exporter", 9187},
	}
	if db == "mariadb" {
		s["db-exporter"] = mcService{"prom/mysqld-exporter", 9104}
	}
	if cache == "redis" {
		s["redis-exporter"] = mcService{"oliver006/redis_exporter", 9121}
	}
	return s
}

// mcChannelSecrets are the secrets Alertmanager needs for the chosen channels.
var mcChannelSecrets = map[string]string{"email": "smtp_password", "telegram": "telegram_bot_token", "webhook": "alert_webhook_url"}

func TestMonitoringCompose(t *testing.T) {
	external := e2eutil.ExternalSecrets(t)
	for _, want := range []string{"smtp_password", "telegram_bot_token", "alert_webhook_url", "deadman_url"} {
		if !external[want] {
			t.Errorf("blueprint secret %s is not external (created empty for the team)", want)
		}
	}
	for _, c := range mcCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
			if err != nil {
				t.Fatalf("load compose.yaml + compose.prod.yaml + compose.monitoring.yaml: %v", err)
			}
			mcCheckServices(t, c, dir, p)
			mcCheckSecrets(t, c, dir, p, external)
			mcCheckPrometheus(t, c, dir, p)
			mcCheckHostExporters(t, dir, p)
			mcCheckScrapeTargets(t, c, dir)

			// The random secrets never reach the compose file.
			b, err := os.ReadFile(filepath.Join(dir, "compose.monitoring.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range e2eutil.ReadDirNames(t, filepath.Join(dir, "secrets")) {
				v, _ := os.ReadFile(filepath.Join(dir, "secrets", e))
				if s := strings.TrimSpace(string(v)); s != "" && strings.Contains(string(b), s) {
					t.Errorf("compose.monitoring.yaml contains the value of secrets/%s", e)
				}
			}
		})
	}
}

// mcCheckServices asserts the invariants every monitoring service shares.
func mcCheckServices(t *testing.T, c mcCase, dir string, p *types.Project) {
	t.Helper()
	mon := mcServices(c.db, c.cache)
	// db-roles: the one-shot that creates the exporter's role app_monitor (checked in
	// compose_test.go), which db-exporter waits for.
	want := []string{"backend", "db", "db-roles", "migrate", "proxy"}
	if c.cache == "redis" {
		want = append(want, "cache")
	}
	if c.frontend != "none" {
		want = append(want, "frontend")
	}
	for name := range mon {
		want = append(want, name)
	}
	if c.replica() == "streaming" {
		// The replica and the exporter that watches its replication (replica-monitoring).
		want = append(want, "db-replica", "db-replica-exporter")
	}
	slices.Sort(want)
	if got := p.ServiceNames(); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	wantCPUs, err := strconv.ParseFloat(c.cpus, 32)
	if err != nil {
		t.Fatal(err)
	}
	wantMem := e2eutil.MemoryBytes(t, c.memory)

	for name, spec := range mon {
		s := p.Services[name]
		where := "monitoring service " + name

		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
			t.Errorf("%s: healthcheck %+v, want an enabled CMD or CMD-SHELL test", where, hc)
		} else {
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("%s: healthcheck without interval, timeout or retries", where)
			}
			if test := strings.Join(hc.Test[1:], " "); !strings.Contains(test, fmt.Sprintf("127.0.0.1:%d/", spec.port)) {
				t.Errorf("%s: healthcheck %q does not ask the service on its port %d", where, test, spec.port)
			}
		}
		if policy, _, _ := strings.Cut(s.Restart, ":"); policy != "unless-stopped" && policy != "always" {
			t.Errorf("%s: restart %q, want unless-stopped or always", where, s.Restart)
		}
		if s.Logging == nil || s.Logging.Driver != "json-file" {
			t.Errorf("%s: logging %+v, want driver json-file", where, s.Logging)
		} else if s.Logging.Options["max-size"] != c.logSize || s.Logging.Options["max-file"] != strconv.Itoa(c.logFiles) {
			t.Errorf("%s: logging options %v, want max-size %s max-file %d", where, s.Logging.Options, c.logSize, c.logFiles)
		}
		repo, tag, _ := strings.Cut(s.Image, ":")
		if pinned, ok := e2eutil.ImageTag(s.Image); !ok || pinned == "latest" || !regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[a-z]+)?$`).MatchString(tag) {
			t.Errorf("%s: image %q, want a pinned version tag", where, s.Image)
		}
		if repo != spec.image {
			t.Errorf("%s: image %q, want %s", where, s.Image, spec.image)
		}

		if s.Deploy == nil || s.Deploy.Resources.Limits == nil {
			t.Errorf("%s: no resource limits", where)
		} else {
			l := s.Deploy.Resources.Limits
			if l.NanoCPUs <= 0 || l.MemoryBytes <= 0 {
				t.Errorf("%s: limits cpus %v memory %d, want both set", where, l.NanoCPUs, l.MemoryBytes)
			}
			// Prometheus and Grafana get the answered limits; exporters smaller fixed ones.
			if name == "prometheus" || name == "grafana" {
				if float32(l.NanoCPUs) != float32(wantCPUs) || int64(l.MemoryBytes) != wantMem {
					t.Errorf("%s: limits cpus %v memory %d, want the answers %s and %s", where, l.NanoCPUs, l.MemoryBytes, c.cpus, c.memory)
				}
			} else if l.NanoCPUs > 1 || int64(l.MemoryBytes) > 512<<20 {
				t.Errorf("%s: limits cpus %v memory %d, want an exporter's small limits", where, l.NanoCPUs, l.MemoryBytes)
			}
		}

		// Configuration from the repository is mounted read-only and exists (the textfile
		// directory under var/ is created on the host by `make prod-up`).
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, dir+string(filepath.Separator)) {
				continue
			}
			if !v.ReadOnly {
				t.Errorf("%s: %s is mounted read-write", where, v.Source)
			}
			if rel, _ := filepath.Rel(dir, v.Source); !strings.HasPrefix(rel, "var"+string(filepath.Separator)) {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: mounts %s, which the generated tree does not have", where, rel)
				}
			}
		}

		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if strings.HasPrefix(name, "db-") && dep == "db-roles" && d.Condition == types.ServiceConditionCompletedSuccessfully {
				continue // a one-shot: `up --wait` accepts it exited because a service waits for it
			}
			if !ok || d.Condition != types.ServiceConditionHealthy || target.HealthCheck == nil || target.HealthCheck.Disable {
				t.Errorf("%s: depends on %s (%s), want service_healthy on a service with a healthcheck", where, dep, d.Condition)
			}
		}
	}

	// Only Traefik and Grafana publish ports, Grafana on the loopback interface only.
	for name, s := range p.Services {
		for _, port := range s.Ports {
			switch {
			case name == "proxy":
			case name == "grafana" && port.Target == 3000 && port.HostIP == "127.0.0.1" && port.Published == "3000":
			default:
				t.Errorf("service %s publishes %+v; only the proxy and Grafana (127.0.0.1:3000) may", name, port)
			}
		}
	}
	if len(p.Services["grafana"].Ports) != 1 {
		t.Errorf("grafana: ports %+v, want 127.0.0.1:3000", p.Services["grafana"].Ports)
	}

	for _, v := range []string{"prometheus-data", "grafana-data", "alertmanager-data"} {
		if _, ok := p.Volumes[v]; !ok {
			t.Errorf("volume %s is not declared", v)
		}
	}
	mounts := map[string]string{"prometheus": "prometheus-data", "grafana": "grafana-data", "alertmanager": "alertmanager-data"}
	for svc, v := range mounts {
		if !e2eutil.HasVolumeMount(p.Services[svc], v) {
			t.Errorf("%s: does not mount its volume %s", svc, v)
		}
	}
	if db := p.Services["db-exporter"]; db.DependsOn["db"].Condition != types.ServiceConditionHealthy {
		t.Errorf("db-exporter: does not wait for a healthy db: %+v", db.DependsOn)
	}
}

// mcCheckSecrets asserts that secrets come from files under secrets/ and reach processes only
// through *_FILE variables or a shell that cats the mounted file.
func mcCheckSecrets(t *testing.T, c mcCase, dir string, p *types.Project, external map[string]bool) {
	t.Helper()
	wantSecrets := map[string][]string{
		"grafana":     {"grafana_admin_password"},
		"db-exporter": {"db_monitor_password"},
	}
	am := []string{"deadman_url"}
	for _, ch := range c.channels {
		am = append(am, mcChannelSecrets[ch])
	}
	slices.Sort(am)
	wantSecrets["alertmanager"] = am
	if c.cache == "redis" {
		wantSecrets["redis-exporter"] = []string{"redis_password"}
	}
	for name := range mcServices(c.db, c.cache) {
		s := p.Services[name]
		if got := e2eutil.SecretNames(s); !slices.Equal(got, wantSecrets[name]) {
			t.Errorf("%s: secrets %v, want %v", name, got, wantSecrets[name])
		}
		mounted := map[string]bool{}
		for _, ref := range s.Secrets {
			sec, ok := p.Secrets[ref.Source]
			if !ok {
				t.Errorf("%s: uses undeclared secret %s", name, ref.Source)
				continue
			}
			if filepath.Dir(sec.File) != filepath.Join(dir, "secrets") {
				t.Errorf("%s: secret %s is read from %s, want a file in secrets/", name, ref.Source, sec.File)
			}
			b, err := os.ReadFile(sec.File)
			switch {
			case err != nil:
				t.Errorf("%s: secret %s: %v", name, ref.Source, err)
			case external[ref.Source] && len(b) != 0:
				t.Errorf("%s: external secret %s is not empty after new: %q", name, ref.Source, b)
			case !external[ref.Source] && len(strings.TrimSpace(string(b))) < 16:
				t.Errorf("%s: secret %s holds %d characters, want a generated password", name, ref.Source, len(b))
			}
			target := ref.Target
			if target == "" {
				target = "/run/secrets/" + ref.Source
			}
			mounted[target] = true
		}
		for k, v := range s.Environment {
			if !regexp.MustCompile(`PASS|TOKEN|SECRET`).MatchString(k) {
				continue
			}
			if !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: %s is set directly; pass credentials as *_FILE pointing at a secret", name, k)
			} else if v == nil || !mounted[*v] {
				t.Errorf("%s: %s=%v is not a secret mounted in this service", name, k, e2eutil.Deref(v))
			}
		}
		// Exporters without a *_FILE option read the password in a shell from the secret.
		script := strings.Join(append(slices.Clone([]string(s.Entrypoint)), s.Command...), " ")
		for _, env := range []string{"MYSQLD_EXPORTER_PASSWORD", "REDIS_PASSWORD"} {
			if strings.Contains(script, env) && !regexp.MustCompile(env+`="\$\(cat /run/secrets/(db_monitor|redis)_password\)"`).MatchString(script) {
				t.Errorf("%s: %s does not come from a mounted secret file: %q", name, env, script)
			}
		}
	}
	if g := p.Services["grafana"]; e2eutil.Deref(g.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]) != "/run/secrets/grafana_admin_password" {
		t.Errorf("grafana: GF_SECURITY_ADMIN_PASSWORD__FILE=%q, want /run/secrets/grafana_admin_password", e2eutil.Deref(g.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]))
	}
	dbx := p.Services["db-exporter"]
	if c.db == "postgres" {
		if got := e2eutil.Deref(dbx.Environment["DATA_SOURCE_PASS_FILE"]); got != "/run/secrets/db_monitor_password" {
			t.Errorf("db-exporter: DATA_SOURCE_PASS_FILE=%q, want /run/secrets/db_monitor_password", got)
		}
		if got := e2eutil.Deref(dbx.Environment["DATA_SOURCE_USER"]); got != "app_monitor" {
			t.Errorf("db-exporter: DATA_SOURCE_USER=%q, want app_monitor", got)
		}
	} else if script := strings.Join(dbx.Entrypoint, " "); !strings.Contains(script, "MYSQLD_EXPORTER_PASSWORD") ||
		!strings.Contains(script, "--mysqld.address=db:3306") || !strings.Contains(script, "--mysqld.username=app_monitor") {
		t.Errorf("db-exporter: entrypoint %q, want MYSQLD_EXPORTER_PASSWORD from the secret, --mysqld.address=db:3306 and --mysqld.username=app_monitor", script)
	}
	if got := dbx.DependsOn["db-roles"].Condition; got != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("db-exporter: does not wait for db-roles to complete (%q): its role would not exist yet", got)
	}
	// Every secret the monitoring file declares was written by `new`.
	for name, sec := range p.Secrets {
		if _, err := os.Stat(sec.File); err != nil {
			t.Errorf("secret %s: %v", name, err)
		}
	}
}

// mcFlag returns the values of --name=value in args.
func mcFlag(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// mcCheckPrometheus asserts Prometheus's and Alertmanager's flags and configuration mounts.
func mcCheckPrometheus(t *testing.T, c mcCase, dir string, p *types.Project) {
	t.Helper()
	prom := p.Services["prometheus"]
	for flag, want := range map[string]string{
		"storage.tsdb.retention.time": c.retention,
		"storage.tsdb.retention.size": c.retentionSize,
		"storage.tsdb.path":           "/prometheus",
	} {
		if got := mcFlag(prom.Command, flag); !slices.Equal(got, []string{want}) {
			t.Errorf("prometheus: --%s %v, want exactly %q", flag, got, want)
		}
	}
	conf := mcFlag(prom.Command, "config.file")
	if len(conf) != 1 {
		t.Fatalf("prometheus: --config.file %v, want one", conf)
	}
	if v, ok := e2eutil.BindMount(prom, filepath.Dir(conf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "prometheus") || !v.ReadOnly {
		t.Errorf("prometheus: %s is not monitoring/prometheus mounted read-only: %+v", filepath.Dir(conf[0]), v)
	} else if _, err := os.Stat(filepath.Join(v.Source, filepath.Base(conf[0]))); err != nil {
		t.Errorf("prometheus: --config.file %s: %v", conf[0], err)
	}
	if !slices.ContainsFunc(prom.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Source == "prometheus-data" && v.Target == "/prometheus"
	}) {
		t.Errorf("prometheus: prometheus-data is not mounted at the storage path /prometheus")
	}

	am := p.Services["alertmanager"]
	amConf := mcFlag(am.Command, "config.file")
	if len(amConf) != 1 {
		t.Fatalf("alertmanager: --config.file %v, want one", amConf)
	}
	if v, ok := e2eutil.BindMount(am, filepath.Dir(amConf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "alertmanager") || !v.ReadOnly {
		t.Errorf("alertmanager: %s is not monitoring/alertmanager mounted read-only: %+v", filepath.Dir(amConf[0]), v)
	} else if _, err := os.Stat(filepath.Join(v.Source, filepath.Base(amConf[0]))); err != nil {
		t.Errorf("alertmanager: --config.file %s: %v", amConf[0], err)
	}
	if got := mcFlag(am.Command, "storage.path"); !slices.Equal(got, []string{"/alertmanager"}) {
		t.Errorf("alertmanager: --storage.path %v, want /alertmanager (its volume)", got)
	}

	bb := p.Services["blackbox"]
	bbConf := mcFlag(bb.Command, "config.file")
	if len(bbConf) != 1 {
		t.Errorf("blackbox: --config.file %v, want one", bbConf)
	} else if v, ok := e2eutil.BindMount(bb, filepath.Dir(bbConf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "blackbox") {
		t.Errorf("blackbox: %s is not monitoring/blackbox: %+v", filepath.Dir(bbConf[0]), v)
	} else if _, err := os.Stat(filepath.Join(v.Source, filepath.Base(bbConf[0]))); err != nil {
		t.Errorf("blackbox: --config.file %s: %v", bbConf[0], err)
	}
}

// mcCheckHostExporters asserts node-exporter's host mounts and textfile directory, and cAdvisor's mounts.
func mcCheckHostExporters(t *testing.T, dir string, p *types.Project) {
	t.Helper()
	node := p.Services["node-exporter"]
	if node.Pid != "host" {
		t.Errorf("node-exporter: pid %q, want host", node.Pid)
	}
	hostMounts := func(s types.ServiceConfig) map[string]types.ServiceVolumeConfig {
		m := map[string]types.ServiceVolumeConfig{}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && filepath.IsAbs(v.Source) && !strings.HasPrefix(v.Source, dir) {
				m[v.Source] = v
			}
		}
		return m
	}
	nm := hostMounts(node)
	for src, flag := range map[string]string{"/proc": "path.procfs", "/sys": "path.sysfs", "/": "path.rootfs"} {
		v, ok := nm[src]
		if !ok || !v.ReadOnly {
			t.Errorf("node-exporter: host %s is not mounted read-only: %+v", src, v)
			continue
		}
		if got := mcFlag(node.Command, flag); !slices.Equal(got, []string{v.Target}) {
			t.Errorf("node-exporter: --%s %v, want %s (where host %s is mounted)", flag, got, v.Target, src)
		}
	}
	textfile := mcFlag(node.Command, "collector.textfile.directory")
	if len(textfile) != 1 {
		t.Errorf("node-exporter: --collector.textfile.directory %v, want one", textfile)
	} else if v, ok := e2eutil.BindMount(node, textfile[0]); !ok || v.Source != filepath.Join(dir, "var", "lib", "node-exporter", "textfile") || !v.ReadOnly {
		t.Errorf("node-exporter: textfile directory %s is not ./var/lib/node-exporter/textfile (deploy_dir on the host) read-only: %+v", textfile[0], v)
	}

	cad := p.Services["cadvisor"]
	cm := hostMounts(cad)
	for _, src := range []string{"/", "/var/run", "/sys", "/var/lib/docker"} {
		if v, ok := cm[src]; !ok || !v.ReadOnly {
			t.Errorf("cadvisor: host %s is not mounted read-only: %+v", src, v)
		}
	}
	if !cad.Privileged {
		t.Errorf("cadvisor: not privileged; it cannot read the cgroups without")
	}
}

// mcCheckScrapeTargets asserts that prometheus.yml scrapes each exporter under its compose
// service name and contract port, so renaming either side breaks this test.
func mcCheckScrapeTargets(t *testing.T, c mcCase, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "monitoring", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for name, spec := range mcServices(c.db, c.cache) {
		if name == "grafana" || name == "prometheus" {
			continue
		}
		if target := fmt.Sprintf("%s:%d", name, spec.port); !strings.Contains(conf, target) {
			t.Errorf("prometheus.yml does not scrape %s", target)
		}
	}
}
