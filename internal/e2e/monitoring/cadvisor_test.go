package monitoring

// cAdvisor on Docker 29's containerd image store (issue 13, part 6). Without a container
// engine here, what can be proven is the configuration: the pinned cAdvisor is a release that
// reads containers' root file systems from containerd (0.54 or later, google/cadvisor#3709),
// containerd's and Docker's sockets are visible at the paths its flags name, and the
// ContainerMetricsMissing alert notices a blind cAdvisor. The alert's witness (the prometheus
// compose service) must exist and carry the `service` label the scrape config derives; its
// promtool test must pass, and fail when the rule is weakened.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// cdvMinVersion is the first cAdvisor release that finds the containers of Docker's
// containerd image store (google/cadvisor#3709, in v0.54.0).
var cdvMinVersion = [3]int{0, 54, 0}

var cdvVariants = []map[string]string{
	{"name": "cdv-app", "db": "postgres", "cache": "redis"},
	{"name": "cdv-app", "db": "mariadb", "cache": "none", "db_replica": "none"},
}

func TestCdvCadvisorSeesContainerd(t *testing.T) {
	for _, set := range cdvVariants {
		t.Run(set["db"], func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, set)
			p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", e2eutil.MonitoringFiles...)
			if err != nil {
				t.Fatalf("load compose files: %v", err)
			}
			cad, ok := p.Services["cadvisor"]
			if !ok {
				t.Fatal("no cadvisor service")
			}
			cdvCheckVersion(t, cad.Image)
			flags := map[string]string{}
			for _, a := range cad.Command {
				if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok {
					flags[k] = v
				}
			}
			sock, ok := flags["containerd"]
			if !ok {
				t.Errorf("cadvisor: no --containerd flag: its default, /run/containerd/containerd.sock, is not mounted by itself")
			} else {
				cdvCheckSocket(t, cad, "containerd", sock, "/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock")
			}
			docker := strings.TrimPrefix(flags["docker"], "unix://")
			if docker == "" {
				docker = "/var/run/docker.sock" // cAdvisor's default --docker
			}
			cdvCheckSocket(t, cad, "Docker", docker, "/var/run/docker.sock", "/run/docker.sock")
			if v, ok := e2eutil.BindMount(cad, "/var/lib/docker"); !ok || v.Source != "/var/lib/docker" || !v.ReadOnly {
				t.Errorf("cadvisor: /var/lib/docker (the overlay2 store's layer metadata) not mounted read-only: %+v", v)
			}
			if flags["store_container_labels"] != "false" || !strings.Contains(flags["whitelisted_container_labels"], "com.docker.compose.service") {
				t.Errorf("cadvisor: the compose service label is not kept (flags %v): ContainerMetricsMissing's witness has no service label", flags)
			}
			cdvCheckWitness(t, dir, p)
		})
	}
}

// cdvCheckVersion fails unless image is ghcr.io/google/cadvisor at cdvMinVersion or later.
func cdvCheckVersion(t *testing.T, image string) {
	t.Helper()
	repo, tag, _ := strings.Cut(image, ":")
	if repo != "ghcr.io/google/cadvisor" {
		t.Errorf("cadvisor image %q: releases from v0.53.0 are published as ghcr.io/google/cadvisor", image)
	}
	m := regexp.MustCompile(`^v(\d+)\.(\d+)\.(\d+)$`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("cadvisor image %q: tag is not a release vX.Y.Z", image)
	}
	var got [3]int
	for i := range got {
		got[i], _ = strconv.Atoi(m[i+1])
	}
	for i := range got {
		if got[i] != cdvMinVersion[i] {
			if got[i] < cdvMinVersion[i] {
				t.Errorf("cadvisor %s is older than v%d.%d.%d: on Docker's containerd image store it sees no container", tag, cdvMinVersion[0], cdvMinVersion[1], cdvMinVersion[2])
			}
			return
		}
	}
}

// cdvCheckSocket fails unless path, inside the cadvisor container, is one of the host paths
// hostPaths through a bind mount (/var/run is a link to /run on the hosts Docker supports).
func cdvCheckSocket(t *testing.T, cad types.ServiceConfig, what, path string, hostPaths ...string) {
	t.Helper()
	var best types.ServiceVolumeConfig
	for _, v := range cad.Volumes {
		if v.Type == types.VolumeTypeBind && (path == v.Target || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")) && len(v.Target) > len(best.Target) {
			best = v
		}
	}
	if best.Target == "" {
		t.Errorf("cadvisor: %s socket %s is not under any bind mount", what, path)
		return
	}
	host := filepath.Join(best.Source, strings.TrimPrefix(path, best.Target))
	for _, h := range hostPaths {
		if host == h {
			return
		}
	}
	t.Errorf("cadvisor: %s socket %s is the host's %s (mount %s:%s), want one of %v", what, path, host, best.Source, best.Target, hostPaths)
}

// cdvWitness is the compose service the rule expects cAdvisor to report.
var cdvWitness = regexp.MustCompile(`container_last_seen\{[^}]*service="([^"]+)"`)

// cdvCheckWitness: the service ContainerMetricsMissing looks for runs in production, and the
// cadvisor scrape job turns the compose label into `service`.
func cdvCheckWitness(t *testing.T, dir string, p *types.Project) {
	t.Helper()
	rules := e2eutil.ReadFile(t, filepath.Join(dir, "monitoring", "prometheus", "rules", "cadvisor.yml"))
	m := cdvWitness.FindStringSubmatch(rules)
	if m == nil {
		t.Fatalf("rules/cadvisor.yml: no container_last_seen{...service=\"...\"} witness:\n%s", rules)
	}
	if _, ok := p.Services[m[1]]; !ok {
		t.Errorf("rules/cadvisor.yml waits for service %q, which production does not run: the alert would always fire", m[1])
	}
	prom := e2eutil.ReadFile(t, filepath.Join(dir, "monitoring", "prometheus", "prometheus.yml"))
	job := prom[strings.Index(prom, "job_name: cadvisor"):]
	if i := strings.Index(job[1:], "job_name:"); i > 0 {
		job = job[:i+1]
	}
	if !regexp.MustCompile(`source_labels: \[container_label_com_docker_compose_service\]\s+target_label: service`).MatchString(job) {
		t.Errorf("prometheus.yml: the cadvisor job does not copy the compose label into `service`:\n%s", job)
	}
}

// cdvMutations weaken the rule; its promtool test must then fail.
var cdvMutations = []struct{ name, from, to string }{
	{"no compose label required", `, service="prometheus"}`, `}`},
	{"fires at once", "for: 10m", "for: 0m"},
	{"inverted", "unless on (instance, job)", "and on (instance, job)"},
	{"fires when cAdvisor is down", `up{job="cadvisor"} == 1`, `up{job="cadvisor"}`},
}

func TestCdvBlindAlertCatches(t *testing.T) {
	promtool := e2eutil.RequireTool(t, "promtool")
	dir := e2eutil.Generate(t, cdvVariants[0])
	src := filepath.Join(dir, "monitoring", "prometheus")
	run := func(rules string) (string, error) {
		tmp := t.TempDir()
		for _, d := range []string{"rules", "tests"} {
			if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "rules", "cadvisor.yml"), []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		test := e2eutil.ReadFile(t, filepath.Join(src, "tests", "cadvisor.test.yml"))
		if err := os.WriteFile(filepath.Join(tmp, "tests", "cadvisor.test.yml"), []byte(test), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(promtool, "test", "rules", "tests/cadvisor.test.yml")
		cmd.Dir = tmp
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	rules := e2eutil.ReadFile(t, filepath.Join(src, "rules", "cadvisor.yml"))
	if out, err := run(rules); err != nil {
		t.Fatalf("promtool test rules tests/cadvisor.test.yml: %v\n%s", err, out)
	}
	for _, m := range cdvMutations {
		if !strings.Contains(rules, m.from) {
			t.Errorf("%s: %q is not in rules/cadvisor.yml", m.name, m.from)
			continue
		}
		if out, err := run(strings.Replace(rules, m.from, m.to, 1)); err == nil {
			t.Errorf("%s: the promtool test still passes with %q instead of %q:\n%s", m.name, m.to, m.from, out)
		}
	}
}
