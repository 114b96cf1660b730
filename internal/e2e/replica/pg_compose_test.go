package replica

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestRpgCompose loads the generated production compose files as docker compose does and
// checks the db-replica service: the primary's image, its own volume, the secrets the
// scripts read, the healthcheck script, the limits and log rotation of the other services,
// the synchronous-commit answer; and that the backend reaches the primary through .env's
// DB_PRIMARY_HOST. Without a replica (or with MariaDB) none of it is generated. Compose runs
// nowhere here: what needs a container engine (the image's entrypoint running
// replica-start.sh, `docker compose exec/run/stop`) is checked only as configuration.
func TestRpgCompose(t *testing.T) {
	t.Parallel()
	for _, sync := range []string{"true", "false"} {
		proj := e2eutil.Generate(t, map[string]string{"db": "postgres", "db_replica": "streaming", "db_sync_commit": sync})
		p, err := e2eutil.LoadCompose(proj, e2eutil.ProdEnv(), filepath.Join(proj, ".env"), "compose.yaml", "compose.prod.yaml")
		if err != nil {
			t.Fatalf("load compose.yaml + compose.prod.yaml: %v", err)
		}
		db, rep, backend := p.Services["db"], p.Services["db-replica"], p.Services["backend"]
		if rep.Name == "" {
			t.Fatal("no db-replica service in compose.prod.yaml")
		}
		if rep.Image != db.Image || rep.Image == "" {
			t.Errorf("db-replica image %q, want db's %q", rep.Image, db.Image)
		}
		if !e2eutil.HasVolumeMount(rep, "db-replica-data") || e2eutil.HasVolumeMount(rep, "db-data") {
			t.Errorf("db-replica volumes %+v, want db-replica-data only", rep.Volumes)
		}
		if _, ok := p.Volumes["db-replica-data"]; !ok {
			t.Errorf("top-level volumes %v lack db-replica-data", p.Volumes)
		}
		if m, ok := e2eutil.BindMount(rep, "/opt/opsready/db"); !ok || !m.ReadOnly || m.Source != filepath.Join(proj, "ops", "db") {
			t.Errorf("db-replica mounts %+v, want ./ops/db read-only at /opt/opsready/db", rep.Volumes)
		}
		if got := e2eutil.SecretNames(rep); !slices.Equal(got, []string{"db_password", "db_replication_password"}) {
			t.Errorf("db-replica secrets %v", got)
		}
		if s, ok := p.Secrets["db_replication_password"]; !ok || s.File != filepath.Join(proj, "secrets", "db_replication_password") {
			t.Errorf("secret db_replication_password = %+v", s)
		}
		if b, err := os.ReadFile(filepath.Join(proj, "secrets", "db_replication_password")); err != nil || len(strings.TrimSpace(string(b))) < 20 {
			t.Errorf("secrets/db_replication_password: %q %v, want a random password", b, err)
		}
		if got := e2eutil.HealthTest(rep); got != "CMD bash /opt/opsready/db/healthcheck.sh" {
			t.Errorf("db-replica healthcheck %q", got)
		}
		// The primary's tuned settings too: a standby refuses to start with a smaller
		// max_connections or max_worker_processes than its primary.
		if got, want := strings.Join(rep.Entrypoint, " ")+" | "+strings.Join(rep.Command, " "),
			"bash /opt/opsready/db/replica-start.sh | docker-entrypoint.sh "+strings.Join(db.Command, " "); got != want ||
			!strings.Contains(got, "max_connections=") {
			t.Errorf("db-replica entrypoint | command = %q, want %q", got, want)
		}
		if got := e2eutil.HealthTest(db); got != "CMD bash /opt/opsready/db/healthcheck.sh" {
			t.Errorf("db healthcheck %q in production, want the replication-aware one", got)
		}
		if e2eutil.Deref(rep.Environment["DB_SYNC_COMMIT"]) != sync || e2eutil.Deref(rep.Environment["DB_REPLICA_SOURCE"]) != "db" {
			t.Errorf("db-replica environment %v (db_sync_commit %s)", rep.Environment, sync)
		}
		if rep.Logging == nil || rep.Logging.Driver != "json-file" || rep.Logging.Options["max-size"] == "" {
			t.Errorf("db-replica logging %+v, want json-file with rotation", rep.Logging)
		}
		if rep.Deploy == nil || db.Deploy == nil || rep.Deploy.Resources.Limits == nil ||
			rep.Deploy.Resources.Limits.MemoryBytes != db.Deploy.Resources.Limits.MemoryBytes ||
			rep.Deploy.Resources.Limits.MemoryBytes == 0 || rep.Deploy.Resources.Limits.NanoCPUs != db.Deploy.Resources.Limits.NanoCPUs {
			t.Errorf("db-replica limits %+v, want db's %+v", rep.Deploy, db.Deploy)
		}
		if rep.Restart != "unless-stopped" {
			t.Errorf("db-replica restart %q", rep.Restart)
		}
		if got := e2eutil.Deref(backend.Environment["DB_HOST"]); got != "db" {
			t.Errorf("backend DB_HOST = %q with .env's DB_PRIMARY_HOST=db", got)
		}
		env := e2eutil.ProdEnv()
		env["DB_PRIMARY_HOST"] = "db-replica"
		p2, err := e2eutil.LoadCompose(proj, env, "", "compose.yaml", "compose.prod.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"backend", "migrate"} {
			if got := e2eutil.Deref(p2.Services[s].Environment["DB_HOST"]); got != "db-replica" {
				t.Errorf("%s DB_HOST = %q with DB_PRIMARY_HOST=db-replica", s, got)
			}
		}
		for _, f := range []string{"ops/db/failover.sh", "ops/db/rejoin.sh", "docs/runbooks/db-failover.md", "docs/runbooks/db-rejoin.md", "docs/replica.md"} {
			if _, err := os.Stat(filepath.Join(proj, f)); err != nil {
				t.Errorf("streaming replica: %v", err)
			}
		}
		e2eutil.CheckMarkdownLinks(t, proj, "docs/replica.md", e2eutil.ReadFile(t, filepath.Join(proj, "docs", "replica.md")))
		for _, f := range []string{"docs/runbooks/db-failover.md", "docs/runbooks/db-rejoin.md"} {
			e2eutil.CheckMarkdownLinks(t, proj, f, e2eutil.ReadFile(t, filepath.Join(proj, f)))
		}
	}

	for _, answers := range []map[string]string{{"db": "postgres", "db_replica": "none"}, {"db": "mariadb", "db_replica": "streaming"}} {
		proj := e2eutil.Generate(t, answers)
		p, err := e2eutil.LoadCompose(proj, e2eutil.ProdEnv(), "", "compose.yaml", "compose.prod.yaml")
		if err != nil {
			t.Fatalf("%v: load compose: %v", answers, err)
		}
		if answers["db_replica"] == "none" {
			if _, ok := p.Services["db-replica"]; ok {
				t.Errorf("%v: a db-replica service", answers)
			}
		}
		if _, err := os.Stat(filepath.Join(proj, "ops", "db", "rejoin-node.sh")); err == nil {
			t.Errorf("%v: the PostgreSQL replica's rejoin-node.sh generated", answers)
		}
		if b, _ := os.ReadFile(filepath.Join(proj, "compose.prod.yaml")); strings.Contains(string(b), "replica_db_replica") {
			t.Errorf("%v: compose.prod.yaml has the PostgreSQL replica", answers)
		}
	}
}
