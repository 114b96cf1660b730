package backends

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestBackendNode generates the Node.js backend for each database and cache, installs it
// from its package-lock.json with `npm ci` and runs its unit tests, then drives the server
// through the contract checks (backend_contract_test.go) against the local PostgreSQL,
// MariaDB and Redis: readiness with the database down, migrate (twice), the items API with
// the cache, metrics, the container healthcheck, JSON logs and a clean graceful shutdown
// with an idle keep-alive connection open.
func TestBackendNode(t *testing.T) {
	e2eutil.RequireTool(t, "node")
	e2eutil.RequireTool(t, "npm")
	nodeRequireMajor(t, 20)
	forEachBackendCase(t, "node", map[string]int{"postgres": 11, "mariadb": 12}, func(t *testing.T, c contractCase, backend string) {
		nodeCheckDockerfile(t, backend)
		e2eutil.NodeModules(t, backend) // npm ci, once per distinct lock file: fails when package-lock.json does not match package.json
		e2eutil.RunNpm(t, backend, "test")

		c.cmd = func(env []string, args ...string) *exec.Cmd {
			cmd := exec.Command("node", append([]string{"src/server.js"}, args...)...)
			cmd.Dir = backend
			cmd.Env = append(os.Environ(), env...)
			return cmd
		}
		c.healthcheck = []string{"node", "src/healthcheck.js"}
		c.env = []string{"SHUTDOWN_TIMEOUT=5", "LOG_LEVEL=debug"}
		c.stopWithin = 8 * time.Second

		srv := startContractBackend(t, c)
		path := checkBackendContract(t, srv, c)
		// stop leaves an idle keep-alive connection open: the shutdown must still be clean.
		if logs := stopContractBackend(t, srv, c, path); !strings.Contains(logs, `"msg":"stopped","clean":true`) {
			t.Errorf("no clean shutdown log line in:\n%s", logs)
		}
	})
}

// nodeRequireMajor fails (or skips outside CI) when node is older than major.
func nodeRequireMajor(t *testing.T, major int) {
	t.Helper()
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	got, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if err != nil || got < major {
		msg := fmt.Sprintf("node %s is too old: the backend needs Node.js %d or newer", v, major)
		if e2eutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// nodeCheckDockerfile checks the Dockerfile (checkBackendDockerfile): pinned base images,
// the unprivileged node user at runtime, install from the lock file, and the healthcheck
// and entry point the compose files rely on (docs/webapp-contract.md).
func nodeCheckDockerfile(t *testing.T, backend string) {
	t.Helper()
	user := checkBackendDockerfile(t, backend, "NODE_IMAGE", regexp.MustCompile(`^node:\d+\.\d+\.\d+-[a-z]+-slim$`),
		"node:X.Y.Z-<debian>-slim",
		"npm ci --omit=dev",
		`CMD ["node", "src/healthcheck.js"]`,
		`ENTRYPOINT ["node", "src/server.js"]`,
	)
	if user != "node" {
		t.Errorf("Dockerfile: the runtime stage runs as %q, want node", user)
	}
}
