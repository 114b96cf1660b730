package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/opsready/opsready/blueprints"
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
			replicas: 2 + i%3, cpus: cpus, memory: mem, logSize: size, logFiles: files}
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
		"cadvisor":      {"gcr.io/cadvisor/cadvisor", 8080},
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

// mcLoad loads production with monitoring, hermetically (no OS environment, no .env).
func mcLoad(dir string, env map[string]string) (*types.Project, error) {
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	var files []string
	for _, f := range []string{"compose.yaml", "compose.prod.yaml", "compose.monitoring.yaml"} {
		files = append(files, filepath.Join(dir, f))
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(dir), cli.WithEnv(environ), cli.WithName("e2e"))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// mcExternalSecrets are the secrets of the newest webapp that `opsready new` creates empty
// for the team to fill in (compose_test.go's readSecrets accepts them empty).
func mcExternalSecrets(t *testing.T) map[string]bool {
	t.Helper()
	bp, err := blueprints.Embedded().Open("webapp", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range bp.Secrets {
		if s.External {
			out[s.Name] = true
		}
	}
	return out
}

func TestMonitoringCompose(t *testing.T) {
	external := mcExternalSecrets(t)
	for _, want := range []string{"smtp_password", "telegram_bot_token", "alert_webhook_url", "deadman_url"} {
		if !external[want] {
			t.Errorf("blueprint secret %s is not external (created empty for the team)", want)
		}
	}
	for _, c := range mcCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := generate(t, c.set())
			p, err := mcLoad(dir, map[string]string{"REGISTRY": testRegistry, "TAG": testTag})
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
			for _, e := range mustReadDir(t, filepath.Join(dir, "secrets")) {
				v, _ := os.ReadFile(filepath.Join(dir, "secrets", e))
				if s := strings.TrimSpace(string(v)); s != "" && strings.Contains(string(b), s) {
					t.Errorf("compose.monitoring.yaml contains the value of secrets/%s", e)
				}
			}
		})
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// mcCheckServices asserts the invariants every monitoring service shares.
func mcCheckServices(t *testing.T, c mcCase, dir string, p *types.Project) {
	t.Helper()
	mon := mcServices(c.db, c.cache)
	want := []string{"backend", "db", "migrate", "proxy"}
	if c.cache == "redis" {
		want = append(want, "cache")
	}
	if c.frontend != "none" {
		want = append(want, "frontend")
	}
	for name := range mon {
		want = append(want, name)
	}
	if c.db == "mariadb" {
		// The one-shot that grants the exporter's user SLAVE MONITOR (mcCheckGrantJob).
		want = append(want, "db-exporter-grant")
		mcCheckGrantJob(t, c, p)
	}
	slices.Sort(want)
	if got := p.ServiceNames(); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	wantCPUs, err := strconv.ParseFloat(c.cpus, 32)
	if err != nil {
		t.Fatal(err)
	}
	wantMem := memoryBytes(t, c.memory)

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
		if pinned, ok := imageTag(s.Image); !ok || pinned == "latest" || !regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[a-z]+)?$`).MatchString(tag) {
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
			if name == "db-exporter" && dep == "db-exporter-grant" && d.Condition == types.ServiceConditionCompletedSuccessfully {
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
		if !hasVolumeMount(p.Services[svc], v) {
			t.Errorf("%s: does not mount its volume %s", svc, v)
		}
	}
	if db := p.Services["db-exporter"]; db.DependsOn["db"].Condition != types.ServiceConditionHealthy {
		t.Errorf("db-exporter: does not wait for a healthy db: %+v", db.DependsOn)
	}
}

// mcCheckGrantJob checks the MariaDB one-shot db-exporter-grant: the database's image, run once
// per `up` after the database is healthy, with log rotation and small limits.
func mcCheckGrantJob(t *testing.T, c mcCase, p *types.Project) {
	t.Helper()
	g, ok := p.Services["db-exporter-grant"]
	if !ok {
		t.Errorf("mariadb: no db-exporter-grant service")
		return
	}
	if g.Image != p.Services["db"].Image {
		t.Errorf("db-exporter-grant: image %q, want the db's %q (its client)", g.Image, p.Services["db"].Image)
	}
	if g.Restart != "no" {
		t.Errorf("db-exporter-grant: restart %q, want \"no\"", g.Restart)
	}
	if g.DependsOn["db"].Condition != types.ServiceConditionHealthy {
		t.Errorf("db-exporter-grant: does not wait for a healthy db: %+v", g.DependsOn)
	}
	if g.Logging == nil || g.Logging.Options["max-size"] != c.logSize {
		t.Errorf("db-exporter-grant: logging %+v, want the rotated json-file", g.Logging)
	}
	if g.Deploy == nil || g.Deploy.Resources.Limits == nil || g.Deploy.Resources.Limits.MemoryBytes <= 0 {
		t.Errorf("db-exporter-grant: no resource limits")
	}
	if len(g.Ports) > 0 {
		t.Errorf("db-exporter-grant publishes ports %+v", g.Ports)
	}
}

// mcCheckSecrets asserts that secrets come from files under secrets/ and reach processes only
// through *_FILE variables or a shell that cats the mounted file.
func mcCheckSecrets(t *testing.T, c mcCase, dir string, p *types.Project, external map[string]bool) {
	t.Helper()
	wantSecrets := map[string][]string{
		"grafana":     {"grafana_admin_password"},
		"db-exporter": {"db_password"},
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
		if got := secretNames(s); !slices.Equal(got, wantSecrets[name]) {
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
				t.Errorf("%s: %s=%v is not a secret mounted in this service", name, k, deref(v))
			}
		}
		// Exporters without a *_FILE option read the password in a shell from the secret.
		script := strings.Join(append(slices.Clone([]string(s.Entrypoint)), s.Command...), " ")
		for _, env := range []string{"MYSQLD_EXPORTER_PASSWORD", "REDIS_PASSWORD"} {
			if strings.Contains(script, env) && !regexp.MustCompile(env+`="\$\(cat /run/secrets/(db|redis)_password\)"`).MatchString(script) {
				t.Errorf("%s: %s does not come from a mounted secret file: %q", name, env, script)
			}
		}
	}
	if g := p.Services["grafana"]; deref(g.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]) != "/run/secrets/grafana_admin_password" {
		t.Errorf("grafana: GF_SECURITY_ADMIN_PASSWORD__FILE=%q, want /run/secrets/grafana_admin_password", deref(g.Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"]))
	}
	dbx := p.Services["db-exporter"]
	if c.db == "postgres" {
		if got := deref(dbx.Environment["DATA_SOURCE_PASS_FILE"]); got != "/run/secrets/db_password" {
			t.Errorf("db-exporter: DATA_SOURCE_PASS_FILE=%q, want /run/secrets/db_password", got)
		}
	} else if script := strings.Join(dbx.Entrypoint, " "); !strings.Contains(script, "MYSQLD_EXPORTER_PASSWORD") || !strings.Contains(script, "--mysqld.address=db:3306") {
		t.Errorf("db-exporter: entrypoint %q, want MYSQLD_EXPORTER_PASSWORD from the secret and --mysqld.address=db:3306", script)
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

// mcBind returns the bind mount of s with the given target.
func mcBind(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
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
	if v, ok := mcBind(prom, filepath.Dir(conf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "prometheus") || !v.ReadOnly {
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
	if v, ok := mcBind(am, filepath.Dir(amConf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "alertmanager") || !v.ReadOnly {
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
	} else if v, ok := mcBind(bb, filepath.Dir(bbConf[0])); !ok || v.Source != filepath.Join(dir, "monitoring", "blackbox") {
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
	} else if v, ok := mcBind(node, textfile[0]); !ok || v.Source != filepath.Join(dir, "var", "lib", "node-exporter", "textfile") || !v.ReadOnly {
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

// ---- Grafana ----

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
	dir := generate(t, set)
	dashDir := filepath.Join(dir, "monitoring", "grafana", "dashboards")
	dashboards, raw := map[string]mcDashboard{}, map[string][]byte{}
	for _, name := range mustReadDir(t, dashDir) {
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
	p, err := mcLoad(dir, map[string]string{"REGISTRY": testRegistry, "TAG": testTag})
	if err != nil {
		t.Fatalf("load compose files: %v", err)
	}
	g := p.Services["grafana"]
	prov, ok := mcBind(g, "/etc/grafana/provisioning")
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
	if home := deref(g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]); home != "" {
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
	promtool := requireTool(t, "promtool")
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
