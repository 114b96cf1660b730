package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The compose tests load the generated compose files with compose-go, the loader docker
// compose itself uses, for development (compose.yaml + compose.override.yaml, as plain
// `docker compose up` does) and production (compose.yaml + compose.prod.yaml), and assert
// the invariants of SPEC §6 on the loaded model rather than on the text.
//
// Loading is hermetic: no OS environment and no .env file reach the loader, only the
// variables given here. Interpolation is on, so `${REGISTRY:?...}` really is required and the
// defaults of the development ports really apply. The secret files come from `opsready new`
// itself (the loader does not read them; the test checks that each referenced one exists).

// composeCase is one answer set with everything the assertions compare against.
type composeCase struct {
	name, frontend, backend, db, cache, tls string
	replicas                                int
	cpus, memory, logSize                   string
	logFiles                                int
	dbReplica                               string // streaming (the default) or none
}

func (c composeCase) set() map[string]string {
	return map[string]string{
		"name": c.name, "frontend": c.frontend, "backend": c.backend, "db": c.db,
		"cache": c.cache, "tls": c.tls, "backend_replicas": strconv.Itoa(c.replicas),
		"cpu_limit": c.cpus, "memory_limit": c.memory, "log_max_size": c.logSize,
		"log_max_file": strconv.Itoa(c.logFiles), "db_replica": c.replica(),
	}
}

func (c composeCase) replica() string {
	if c.dbReplica == "" {
		return "streaming"
	}
	return c.dbReplica
}

func (c composeCase) String() string {
	return fmt.Sprintf("%s-%s-%s-%s-%s-%s", c.frontend, c.backend, c.db, c.cache, c.tls, c.replica())
}

// composeCases is every combination of frontend, backend, db, cache and tls, with the
// numeric answers varied between cases so that a hard-coded value cannot pass.
func composeCases() []composeCase {
	limits := []struct {
		replicas        int
		cpus, mem, size string
		files           int
	}{
		{2, "1.0", "512m", "10m", 5},
		{3, "0.5", "1g", "20m", 3},
		{5, "2", "256m", "500k", 10},
	}
	var cases []composeCase
	for _, fe := range []string{"react", "static", "none"} {
		for _, be := range []string{"go", "python", "node"} {
			for _, db := range []string{"postgres", "mariadb"} {
				for _, cache := range []string{"none", "redis"} {
					for _, tls := range []string{"letsencrypt", "none"} {
						l := limits[len(cases)%len(limits)]
						cases = append(cases, composeCase{
							name: fmt.Sprintf("app%d", len(cases)), frontend: fe, backend: be, db: db,
							cache: cache, tls: tls, replicas: l.replicas, cpus: l.cpus, memory: l.mem,
							logSize: l.size, logFiles: l.files, dbReplica: []string{"streaming", "none"}[len(cases)/2%2],
						})
					}
				}
			}
		}
	}
	return cases
}

func TestCompose(t *testing.T) {
	for _, c := range composeCases() {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := e2eutil.Generate(t, c.set())
			secretValues := e2eutil.ReadSecrets(t, dir)

			dev, err := loadCompose(dir, false, nil)
			if err != nil {
				t.Fatalf("load compose.yaml + compose.override.yaml with an empty environment: %v", err)
			}
			checkCommon(t, c, dir, dev, false)
			checkDev(t, c, dir, dev)

			prod, err := loadCompose(dir, true, map[string]string{"REGISTRY": e2eutil.TestRegistry, "TAG": e2eutil.TestTag})
			if err != nil {
				t.Fatalf("load compose.yaml + compose.prod.yaml: %v", err)
			}
			checkCommon(t, c, dir, prod, true)
			checkProd(t, c, dir, prod)

			// Production refuses to start without REGISTRY or TAG (once per frontend and tls:
			// loading is the slow part of this test).
			for _, missing := range []string{"REGISTRY", "TAG"} {
				if c.backend != "go" || c.db != "postgres" || c.cache != "none" {
					break
				}
				env := map[string]string{"REGISTRY": e2eutil.TestRegistry, "TAG": e2eutil.TestTag}
				delete(env, missing)
				if _, err := loadCompose(dir, true, env); err == nil || !strings.Contains(err.Error(), missing) {
					t.Errorf("production without %s: error %v, want one naming %s", missing, err, missing)
				}
			}

			// With .env made from .env.example (as `opsready new` does): development loads,
			// production asks for the TAG left empty there, and loads once TAG is given.
			if c.backend == "go" && c.db == "postgres" && c.cache == "none" {
				example := filepath.Join(dir, ".env.example")
				if _, err := loadComposeEnvFile(dir, false, nil, example); err != nil {
					t.Errorf("development with .env.example as .env: %v", err)
				}
				if _, err := loadComposeEnvFile(dir, true, nil, example); err == nil || !strings.Contains(err.Error(), "TAG") {
					t.Errorf("production with .env.example as .env: error %v, want one naming TAG", err)
				}
				p, err := loadComposeEnvFile(dir, true, map[string]string{"TAG": "abc123"}, example)
				if err != nil {
					t.Errorf("production with .env.example and TAG: %v", err)
				} else if want := "registry.example.com/" + c.name + "/" + c.name + "-backend:abc123"; p.Services["backend"].Image != want {
					t.Errorf("production with .env.example: backend image %q, want %q", p.Services["backend"].Image, want)
				}
			}

			for _, f := range []string{"compose.yaml", "compose.override.yaml", "compose.prod.yaml"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				for name, v := range secretValues {
					if strings.Contains(string(b), v) {
						t.Errorf("%s contains the value of secrets/%s", f, name)
					}
				}
			}
		})
	}
}

// loadCompose loads the base file with the development override or the production file.
func loadCompose(dir string, prod bool, env map[string]string) (*types.Project, error) {
	return loadComposeEnvFile(dir, prod, env, "")
}

// loadComposeEnvFile is loadCompose with an env file read as docker compose reads .env.
func loadComposeEnvFile(dir string, prod bool, env map[string]string, envFile string) (*types.Project, error) {
	second := "compose.override.yaml"
	if prod {
		second = "compose.prod.yaml"
	}
	return e2eutil.LoadCompose(dir, env, envFile, "compose.yaml", second)
}

// oneShots are services that run to completion; everything else is long-running.
var oneShots = []string{"migrate", "db-roles"}

// checkCommon asserts what holds in development and production alike.
func checkCommon(t *testing.T, c composeCase, dir string, p *types.Project, prod bool) {
	t.Helper()
	mode := map[bool]string{false: "dev", true: "prod"}[prod]

	want := []string{"backend", "db", "db-roles", "migrate"}
	if c.cache == "redis" {
		want = append(want, "cache")
	}
	if c.frontend != "none" {
		want = append(want, "frontend")
	}
	if prod {
		want = append(want, "proxy")
		if c.replica() == "streaming" {
			want = append(want, "db-replica")
		}
	}
	slices.Sort(want)
	if got := p.ServiceNames(); !slices.Equal(got, want) {
		t.Fatalf("%s services = %v, want %v", mode, got, want)
	}

	for name, s := range p.Services {
		where := mode + " service " + name
		oneShot := slices.Contains(oneShots, name)

		// Healthcheck: every long-running service; a one-shot job is waited for with
		// service_completed_successfully instead (checked below).
		if !oneShot {
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") {
				t.Errorf("%s: healthcheck %+v, want an enabled CMD or CMD-SHELL test", where, hc)
			} else if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("%s: healthcheck without interval, timeout or retries", where)
			}
		}

		// Restart policy: compose-go does not validate the value, so check it here.
		allowed := []string{"unless-stopped", "always"}
		if oneShot {
			allowed = []string{"no", "on-failure"}
		}
		if policy, _, _ := strings.Cut(s.Restart, ":"); !slices.Contains(allowed, policy) {
			t.Errorf("%s: restart %q, want one of %v", where, s.Restart, allowed)
		}

		// Container log rotation.
		if s.Logging == nil || (s.Logging.Driver != "json-file" && s.Logging.Driver != "local") {
			t.Errorf("%s: logging %+v, want driver json-file or local", where, s.Logging)
		} else {
			if got := s.Logging.Options["max-size"]; got != c.logSize {
				t.Errorf("%s: logging max-size %q, want %q", where, got, c.logSize)
			}
			if got := s.Logging.Options["max-file"]; got != strconv.Itoa(c.logFiles) {
				t.Errorf("%s: logging max-file %q, want %d", where, got, c.logFiles)
			}
		}

		// Pinned image tags.
		if tag, ok := e2eutil.ImageTag(s.Image); !ok {
			t.Errorf("%s: image %q has no pinned tag", where, s.Image)
		} else if tag == "latest" {
			t.Errorf("%s: image %q uses latest", where, s.Image)
		}

		// Dependencies: only conditions that wait for health or completion, on services that
		// have a healthcheck or run to completion.
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s: depends on unknown service %q", where, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable {
					t.Errorf("%s: waits for %s to be healthy, but %s has no healthcheck", where, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !slices.Contains(oneShots, dep) {
					t.Errorf("%s: waits for long-running %s to complete", where, dep)
				}
			default:
				t.Errorf("%s: depends on %s with condition %q, want service_healthy or service_completed_successfully", where, dep, d.Condition)
			}
		}

		// Secrets: declared, backed by a file `opsready new` wrote under secrets/, and passwords
		// reach the process only through *_FILE variables that point at a mounted secret.
		mounted := map[string]bool{}
		for _, ref := range s.Secrets {
			sec, ok := p.Secrets[ref.Source]
			if !ok {
				t.Errorf("%s: uses undeclared secret %q", where, ref.Source)
				continue
			}
			if filepath.Dir(sec.File) != filepath.Join(dir, "secrets") {
				t.Errorf("%s: secret %s is read from %s, want a file in secrets/", where, ref.Source, sec.File)
			}
			if fi, err := os.Stat(sec.File); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: secret %s: file %s missing: %v", where, ref.Source, sec.File, err)
			}
			target := ref.Target
			if target == "" {
				target = "/run/secrets/" + ref.Source
			}
			mounted[target] = true
		}
		for k, v := range s.Environment {
			if !strings.Contains(k, "PASSWORD") {
				continue
			}
			if !strings.HasSuffix(k, "_FILE") {
				t.Errorf("%s: %s is set directly; pass passwords as *_FILE pointing at a secret", where, k)
			} else if v == nil || !mounted[*v] {
				t.Errorf("%s: %s=%v is not a secret mounted in this service", where, k, e2eutil.Deref(v))
			}
		}
		for _, arg := range append(slices.Clone(s.Command), s.Entrypoint...) {
			if strings.Contains(arg, "requirepass") && !strings.Contains(arg, "$(cat /run/secrets/") {
				t.Errorf("%s: command sets a password that does not come from a secret file: %q", where, arg)
			}
		}
	}

	// Service-specific wiring.
	db := p.Services["db"]
	if db.StopGracePeriod == nil || time.Duration(*db.StopGracePeriod) < 30*time.Second {
		t.Errorf("%s db: stop_grace_period %v, want at least 30s", mode, db.StopGracePeriod)
	}
	if !e2eutil.HasVolumeMount(db, "db-data") {
		t.Errorf("%s db: no volume db-data for the data directory", mode)
	}
	dbTest := e2eutil.HealthTest(db)
	dbSecrets := []string{"db_password"}
	// With a replica, production's db and db-replica share the replica's healthcheck: healthy
	// as the primary, or as a replica that replicates (after a failover the old primary is one).
	replicaHealth := map[string]string{"postgres": "bash /opt/opsready/db/healthcheck.sh", "mariadb": "/ops/db/replica-health.sh"}[c.db]
	if prod && c.replica() == "streaming" {
		if !strings.Contains(dbTest, replicaHealth) {
			t.Errorf("%s db: healthcheck %q, want %s", mode, dbTest, replicaHealth)
		}
		if r := e2eutil.HealthTest(p.Services["db-replica"]); !strings.Contains(r, replicaHealth) {
			t.Errorf("%s db-replica: healthcheck %q, want %s", mode, r, replicaHealth)
		}
		dbTest = map[string]string{"postgres": "pg_isready -h 127.0.0.1 -U app -d app", "mariadb": "healthcheck.sh --connect --innodb_initialized"}[c.db]
	}
	if c.db == "postgres" {
		if !strings.HasPrefix(db.Image, "postgres:") || !strings.Contains(dbTest, "pg_isready -h 127.0.0.1 -U app -d app") {
			t.Errorf("%s db: image %s, healthcheck %q, want postgres with pg_isready -h 127.0.0.1", mode, db.Image, dbTest)
		}
	} else {
		dbSecrets = append(dbSecrets, "db_root_password")
		if !strings.HasPrefix(db.Image, "mariadb:") || !strings.Contains(dbTest, "healthcheck.sh --connect --innodb_initialized") {
			t.Errorf("%s db: image %s, healthcheck %q, want mariadb with healthcheck.sh --connect --innodb_initialized", mode, db.Image, dbTest)
		}
	}
	if got := e2eutil.SecretNames(db); !slices.Equal(got, dbSecrets) {
		t.Errorf("%s db: secrets %v, want %v", mode, got, dbSecrets)
	}

	backend := p.Services["backend"]
	wantDeps := map[string]string{"db": types.ServiceConditionHealthy, "migrate": types.ServiceConditionCompletedSuccessfully}
	backendSecrets := []string{"db_rw_password"}
	if c.cache == "redis" {
		wantDeps["cache"] = types.ServiceConditionHealthy
		backendSecrets = append(backendSecrets, "redis_password")
		cache := p.Services["cache"]
		if ct := e2eutil.HealthTest(cache); !strings.Contains(ct, "redis-cli") || !strings.Contains(ct, "ping") || !strings.Contains(ct, "/run/secrets/redis_password") {
			t.Errorf("%s cache: healthcheck %q, want an authenticated redis-cli ping", mode, ct)
		}
		if cache.StopGracePeriod == nil {
			t.Errorf("%s cache: no stop_grace_period", mode)
		}
		if !strings.Contains(strings.Join(cache.Command, " "), `--requirepass "$(cat /run/secrets/redis_password)"`) {
			t.Errorf("%s cache: command %q does not take the password from the secret", mode, cache.Command)
		}
		if got, want := backend.Environment["REDIS_ADDR"], "cache:6379"; e2eutil.Deref(got) != want {
			t.Errorf("%s backend: REDIS_ADDR %q, want %q", mode, e2eutil.Deref(got), want)
		}
	}
	e2eutil.CheckDeps(t, mode+" backend", backend, wantDeps)
	e2eutil.CheckDeps(t, mode+" migrate", p.Services["migrate"], map[string]string{"db": types.ServiceConditionHealthy,
		"db-roles": types.ServiceConditionCompletedSuccessfully})
	checkRoles(t, c, mode, p)
	if got := e2eutil.SecretNames(backend); !slices.Equal(got, backendSecrets) {
		t.Errorf("%s backend: secrets %v, want %v", mode, got, backendSecrets)
	}
	if backend.StopGracePeriod == nil || time.Duration(*backend.StopGracePeriod) <= 20*time.Second {
		t.Errorf("%s backend: stop_grace_period %v, want more than the 20s SHUTDOWN_TIMEOUT", mode, backend.StopGracePeriod)
	}
	if m := p.Services["migrate"]; m.Image != backend.Image || !slices.Equal([]string(m.Command), []string{"migrate"}) {
		t.Errorf("%s migrate: image %q command %q, want the backend image %q with `migrate`", mode, m.Image, m.Command, backend.Image)
	}
	dbPort := map[string]string{"postgres": "5432", "mariadb": "3306"}[c.db]
	for k, want := range map[string]string{"DB_HOST": "db", "DB_PORT": dbPort, "DB_NAME": "app", "DB_USER": "app_rw",
		"DB_PASSWORD_FILE": "/run/secrets/db_rw_password", "PORT": "8080"} {
		if got := e2eutil.Deref(backend.Environment[k]); got != want {
			t.Errorf("%s backend: %s=%q, want %q", mode, k, got, want)
		}
	}
	// migrate: the backend's settings but the migration role.
	migrate := p.Services["migrate"]
	for k, want := range map[string]string{"DB_HOST": "db", "DB_PORT": dbPort, "DB_NAME": "app", "DB_USER": "app_migrate",
		"DB_PASSWORD_FILE": "/run/secrets/db_migrate_password"} {
		if got := e2eutil.Deref(migrate.Environment[k]); got != want {
			t.Errorf("%s migrate: %s=%q, want %q", mode, k, got, want)
		}
	}
	if got := e2eutil.SecretNames(migrate); !slices.Equal(got, []string{"db_migrate_password"}) {
		t.Errorf("%s migrate: secrets %v, want [db_migrate_password]", mode, got)
	}
	if got, want := p.Services["backend"].HealthCheck.Test, contractHealthchecks[c.backend]; !slices.Equal(got, want) {
		t.Errorf("%s backend: healthcheck %q, want %q from docs/webapp-contract.md", mode, got, want)
	}
	if c.frontend != "none" {
		fe := p.Services["frontend"]
		e2eutil.CheckDeps(t, mode+" frontend", fe, map[string]string{"backend": types.ServiceConditionHealthy})
		if got, want := fe.HealthCheck.Test, contractHealthchecks["frontend"]; !slices.Equal(got, want) {
			t.Errorf("%s frontend: healthcheck %q, want %q from docs/webapp-contract.md", mode, got, want)
		}
	}
}

// contractHealthchecks are the container healthchecks docs/webapp-contract.md gives for each
// backend and the frontend (TestComposeContract keeps the two in step).
var contractHealthchecks = map[string][]string{
	"go":       {"CMD", "/app/server", "healthcheck"},
	"python":   {"CMD", "python", "-m", "app.healthcheck"},
	"node":     {"CMD", "node", "src/healthcheck.js"},
	"frontend": {"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"},
}

// TestComposeContract checks that the healthchecks the compose tests expect are the ones
// docs/webapp-contract.md tells the image authors to support.
func TestComposeContract(t *testing.T) {
	doc, err := os.ReadFile(e2eutil.RepoPath(t, "docs/webapp-contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	for part, test := range contractHealthchecks {
		quoted := make([]string, len(test))
		for i, s := range test {
			quoted[i] = strconv.Quote(s)
		}
		if want := "test: [" + strings.Join(quoted, ", ") + "]"; !strings.Contains(string(doc), want) {
			t.Errorf("docs/webapp-contract.md does not give the %s healthcheck `%s`", part, want)
		}
	}
}

// checkDev asserts the development model: local builds, ports on the loopback interface.
func checkDev(t *testing.T, c composeCase, dir string, p *types.Project) {
	t.Helper()
	built := []string{"backend"}
	if c.frontend != "none" {
		built = append(built, "frontend")
	}
	for _, name := range built {
		s := p.Services[name]
		if s.Build == nil || s.Build.Context != filepath.Join(dir, name) {
			t.Errorf("dev %s: build %+v, want context ./%s", name, s.Build, name)
		}
	}
	entry := "backend"
	if c.frontend != "none" {
		entry = "frontend"
	}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("dev %s: port %d published on %q, want 127.0.0.1 only", name, port.Target, port.HostIP)
			}
		}
	}
	if !publishes(p.Services[entry], 8080, "8080") {
		t.Errorf("dev %s: does not publish 8080, the default BASE_URL of the smoke test", entry)
	}
}

// checkProd asserts the production model: limits, replicas, the proxy and what is published.
func checkProd(t *testing.T, c composeCase, dir string, p *types.Project) {
	t.Helper()
	wantCPUs, err := strconv.ParseFloat(c.cpus, 32)
	if err != nil {
		t.Fatal(err)
	}
	wantMem := e2eutil.MemoryBytes(t, c.memory)
	for name, s := range p.Services {
		if s.Build != nil {
			t.Errorf("prod %s: has a build section; production pulls images", name)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil {
			t.Errorf("prod %s: no resource limits", name)
			continue
		}
		l := s.Deploy.Resources.Limits
		if float32(l.NanoCPUs) != float32(wantCPUs) {
			t.Errorf("prod %s: cpus limit %v, want %s", name, l.NanoCPUs, c.cpus)
		}
		if int64(l.MemoryBytes) != wantMem {
			t.Errorf("prod %s: memory limit %d bytes, want %s (%d)", name, l.MemoryBytes, c.memory, wantMem)
		}
		if name != "proxy" && len(s.Ports) > 0 {
			t.Errorf("prod %s: publishes ports %+v; only the proxy may", name, s.Ports)
		}
	}

	images := map[string]string{"backend": "backend", "migrate": "backend", "frontend": "frontend"}
	for svc, img := range images {
		s, ok := p.Services[svc]
		if !ok {
			continue
		}
		if want := fmt.Sprintf("%s/%s-%s:%s", e2eutil.TestRegistry, c.name, img, e2eutil.TestTag); s.Image != want {
			t.Errorf("prod %s: image %q, want %q", svc, s.Image, want)
		}
	}

	backend := p.Services["backend"]
	if backend.Deploy == nil || backend.Deploy.Replicas == nil || *backend.Deploy.Replicas != c.replicas || c.replicas < 2 {
		t.Errorf("prod backend: replicas %v, want %d (at least 2)", backend.Deploy, c.replicas)
	}
	host := "Host(`" + c.name + ".example.com`)"
	routed := []string{"backend"}
	if c.frontend != "none" {
		routed = append(routed, "frontend")
	}
	for _, name := range routed {
		s := p.Services[name]
		if s.Labels["traefik.enable"] != "true" {
			t.Errorf("prod %s: not enabled for Traefik", name)
		}
		rule := s.Labels["traefik.http.routers."+name+".rule"]
		if !strings.Contains(rule, host) {
			t.Errorf("prod %s: router rule %q does not match %s", name, rule, host)
		}
		if port := s.Labels["traefik.http.services."+name+".loadbalancer.server.port"]; port != "8080" {
			t.Errorf("prod %s: Traefik forwards to port %q, want 8080", name, port)
		}
		ep := s.Labels["traefik.http.routers."+name+".entrypoints"]
		if want := map[string]string{"letsencrypt": "websecure", "none": "web"}[c.tls]; ep != want {
			t.Errorf("prod %s: router entrypoints %q, want %q", name, ep, want)
		}
	}
	if rule := backend.Labels["traefik.http.routers.backend.rule"]; c.frontend == "none" && !strings.Contains(rule, "!PathPrefix(`/metrics`)") {
		t.Errorf("prod backend: rule %q exposes /metrics publicly", rule)
	} else if c.frontend != "none" && (!strings.Contains(rule, "PathPrefix(`/api`)") || !strings.Contains(rule, "Path(`/readyz`)")) {
		t.Errorf("prod backend: rule %q, want /api and /readyz", rule)
	}

	proxy := p.Services["proxy"]
	// Traefik before 3.6.1 speaks Docker API 1.24, which Docker Engine 29 refuses, so the
	// docker provider finds no containers (traefik/traefik#12253).
	var minor, patch int
	if _, err := fmt.Sscanf(proxy.Image, "traefik:v3.%d.%d", &minor, &patch); err != nil || minor < 6 || (minor == 6 && patch < 1) {
		t.Errorf("prod proxy: image %q, want a pinned traefik v3.6.1 or newer", proxy.Image)
	}
	wantDeps := map[string]string{"backend": types.ServiceConditionHealthy}
	if c.frontend != "none" {
		wantDeps["frontend"] = types.ServiceConditionHealthy
	}
	e2eutil.CheckDeps(t, "prod proxy", proxy, wantDeps)
	if !publishes(proxy, 80, "80") {
		t.Errorf("prod proxy: does not publish port 80: %+v", proxy.Ports)
	}
	cmd := strings.Join(proxy.Command, "\n")
	le := c.tls == "letsencrypt"
	if got := publishes(proxy, 443, "443"); got != le {
		t.Errorf("prod proxy: publishes 443 = %v, want %v (tls=%s)", got, le, c.tls)
	}
	for _, arg := range []string{
		"--entrypoints.web.http.redirections.entrypoint.to=websecure",
		"--entrypoints.web.http.redirections.entrypoint.scheme=https",
		"--certificatesresolvers.letsencrypt.acme.httpchallenge.entrypoint=web",
		"--certificatesresolvers.letsencrypt.acme.email=ops@" + c.name + ".example.com",
		"--entrypoints.websecure.http.tls.certresolver=letsencrypt",
	} {
		if got := slices.Contains(proxy.Command, arg); got != le {
			t.Errorf("prod proxy: has %s = %v, want %v (tls=%s)", arg, got, le, c.tls)
		}
	}
	if strings.Contains(cmd, "--providers.docker.exposedbydefault=true") || !slices.Contains(proxy.Command, "--providers.docker.exposedbydefault=false") {
		t.Errorf("prod proxy: must expose only labelled containers:\n%s", cmd)
	}
	// The access log goes to the bind mount that ops/logrotate/app.conf rotates.
	if !slices.Contains(proxy.Command, "--accesslog.filepath=/var/log/traefik/access.log") {
		t.Errorf("prod proxy: access log is not written to /var/log/traefik/access.log:\n%s", cmd)
	}
	var logMount bool
	for _, v := range proxy.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == "/var/log/traefik" && v.Source == filepath.Join(dir, "var", "log", "traefik") {
			logMount = true
		}
		if v.Source == "/var/run/docker.sock" && !v.ReadOnly {
			t.Errorf("prod proxy: docker socket mounted read-write")
		}
	}
	if !logMount {
		t.Errorf("prod proxy: /var/log/traefik is not bind-mounted from ./var/log/traefik: %+v", proxy.Volumes)
	}
}

func publishes(s types.ServiceConfig, target uint32, published string) bool {
	for _, p := range s.Ports {
		if p.Target == target && p.Published == published {
			return true
		}
	}
	return false
}

// checkRoles checks the one-shot db-roles: the database's image (its client) running the
// generated ops/db/roles.sh against the primary once db is healthy, with the superuser's and
// the roles' secrets and nothing else.
func checkRoles(t *testing.T, c composeCase, mode string, p *types.Project) {
	t.Helper()
	r, ok := p.Services["db-roles"]
	if !ok {
		t.Errorf("%s: no db-roles service", mode)
		return
	}
	if r.Image != p.Services["db"].Image {
		t.Errorf("%s db-roles: image %q, want the db's %q", mode, r.Image, p.Services["db"].Image)
	}
	if got := strings.Join(r.Entrypoint, " "); got != "bash /opt/opsready/db/roles.sh" {
		t.Errorf("%s db-roles: entrypoint %q, want bash /opt/opsready/db/roles.sh", mode, got)
	}
	if m, ok := e2eutil.BindMount(r, "/opt/opsready/db"); !ok || !strings.HasSuffix(m.Source, "/ops/db") || !m.ReadOnly {
		t.Errorf("%s db-roles: /opt/opsready/db is %+v, want ./ops/db read-only", mode, m)
	}
	if got := e2eutil.Deref(r.Environment["DB_HOST"]); got != "db" {
		t.Errorf("%s db-roles: DB_HOST=%q, want db (the primary, as the backend's)", mode, got)
	}
	admin := map[string]string{"postgres": "db_password", "mariadb": "db_root_password"}[c.db]
	want := []string{admin, "db_rw_password", "db_migrate_password", "db_monitor_password"}
	if c.db == "mariadb" {
		want = append(want, "db_backup_password")
	}
	slices.Sort(want)
	if got := e2eutil.SecretNames(r); !slices.Equal(got, want) {
		t.Errorf("%s db-roles: secrets %v, want %v", mode, got, want)
	}
	e2eutil.CheckDeps(t, mode+" db-roles", r, map[string]string{"db": types.ServiceConditionHealthy})
	if r.HealthCheck == nil || !r.HealthCheck.Disable || r.Restart != "no" {
		t.Errorf("%s db-roles: healthcheck %+v restart %q, want a one-shot (disabled, no)", mode, r.HealthCheck, r.Restart)
	}
}
