package backends

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestBackendGo generates the Go backend for each database and cache, checks that its
// go.mod is tidy and that its own vet and tests pass, then drives the built server through
// the contract checks (backend_contract_test.go) against the local PostgreSQL, MariaDB and
// Redis: readiness with the database down, migrate (twice), the items API with the cache,
// metrics, the `server healthcheck` command, JSON logs and graceful shutdown.
func TestBackendGo(t *testing.T) {
	e2eutil.RequireTool(t, "go")
	forEachBackendCase(t, "go", map[string]int{"postgres": 13, "mariadb": 14}, func(t *testing.T, c contractCase, backend string) {
		e2eutil.RunGo(t, backend, "mod", "tidy", "-diff")
		e2eutil.RunGo(t, backend, "vet", "./...")
		e2eutil.RunGo(t, backend, "test", "./...")
		// Built once per distinct module (the build cache), beside migrations/ as /app/server is in the image.
		bin := e2eutil.GoBinary(t, backend, "server")

		c.cmd = func(env []string, args ...string) *exec.Cmd {
			cmd := exec.Command(bin, args...)
			cmd.Dir = t.TempDir() // migrations are found next to the binary, not in the working directory
			cmd.Env = append(os.Environ(), env...)
			return cmd
		}
		c.healthcheck = []string{bin, "healthcheck"}
		c.env = []string{"SHUTDOWN_TIMEOUT=5s", "LOG_LEVEL=debug"}
		c.stopWithin = 10 * time.Second
		c.promLeLast = true // client_golang

		srv := startContractBackend(t, c)
		path := checkBackendContract(t, srv, c)
		// encoding/json writes the readiness body compactly, with the checks' keys sorted.
		wantReady := `{"status":"ok","checks":{"db":"ok"}}`
		if c.cache == "redis" {
			wantReady = `{"status":"ok","checks":{"cache":"ok","db":"ok"}}`
		}
		status, body, _ := srv.Do(t, "GET", "/readyz", "")
		if got := string(bytes.TrimSpace(body)); status != http.StatusOK || got != wantReady {
			t.Errorf("GET /readyz = %d %s, want 200 %s", status, got, wantReady)
		}
		stopContractBackend(t, srv, c, path)
	})
}
