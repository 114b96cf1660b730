package backends

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// pyPython is the interpreter the Python backend is tested with: Debian's, whose python3-*
// packages (`make tools`) provide the backend's dependencies.
const pyPython = "/usr/bin/python3"

// pyModules are the modules the generated backend and its tests import.
var pyModules = []string{"fastapi", "uvicorn", "prometheus_client", "psycopg", "psycopg_pool", "pymysql", "redis", "httpx", "pytest"}

// TestBackendPython generates the Python/FastAPI backend for each database and cache,
// checks its Dockerfile and pins, byte-compiles it and runs its unit tests, then drives the
// server through the contract checks (backend_contract_test.go) against the local
// PostgreSQL, MariaDB and Redis: readiness with the database down, migrate (twice, then
// MIGRATE_ON_START with nothing left), the items API with the cache, metrics, the container
// healthcheck, JSON logs without warnings, and graceful shutdown with a request in flight.
func TestBackendPython(t *testing.T) {
	pyRequireModules(t)
	forEachBackendCase(t, "python", map[string]int{"postgres": 9, "mariadb": 10}, func(t *testing.T, c contractCase, backend string) {
		pyCheckDockerfile(t, backend)
		pyCheckRequirements(t, backend, c.db, c.cache)
		pyCompileAll(t, backend)
		pyRun(t, backend, nil, "-m", "pytest", "-q")

		c.cmd = func(env []string, args ...string) *exec.Cmd {
			cmd := exec.Command(pyPython, append([]string{"-m", "app"}, args...)...)
			cmd.Dir = backend
			cmd.Env = pyEnv(env)
			return cmd
		}
		c.healthcheck = []string{pyPython, "-m", "app.healthcheck"}
		c.env = []string{"SHUTDOWN_TIMEOUT=10", "LOG_LEVEL=info"}
		c.stopWithin = 15 * time.Second
		c.promFloat = true // prometheus_client
		c.quietLogs = true

		srv := startContractBackend(t, c)
		path := checkBackendContract(t, srv, c)
		// Graceful shutdown: a request held up by a table lock is still answered.
		pyLockItems(t, c.scratch, 2*time.Second)
		inflight := make(chan string, 1)
		postStart := time.Now()
		go func() {
			resp, err := e2eutil.HTTPClient.Post(srv.Base+"/api/items", "application/json", strings.NewReader(`{"name":"in flight"}`))
			if err != nil {
				inflight <- err.Error()
				return
			}
			resp.Body.Close()
			inflight <- fmt.Sprintf("%s (after %s)", resp.Status, time.Since(postStart).Round(time.Millisecond))
		}()
		time.Sleep(300 * time.Millisecond)
		stopContractBackend(t, srv, c, path)
		if got := <-inflight; !strings.HasPrefix(got, "201 Created") {
			t.Errorf("POST /api/items in flight at SIGTERM: %s, want 201 Created", got)
		} else {
			t.Logf("POST /api/items in flight at SIGTERM: %s", got)
		}
	})
}

// pyRequireModules fails (or skips outside CI) when Debian's python3 or one of the
// modules the backend needs is missing.
func pyRequireModules(t *testing.T) {
	t.Helper()
	e2eutil.RequireTool(t, pyPython)
	out, err := exec.Command(pyPython, "-c", "import "+strings.Join(pyModules, ", ")).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import the backend's modules (run `make tools`): %v\n%s", pyPython, err, out)
		if e2eutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// pyEnv is the environment for a Python process: the test's, without variables that would
// change what the backend does, and without writing .pyc files into the generated tree.
func pyEnv(env []string) []string {
	var base []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PYTHON") || strings.HasPrefix(k, "DB_") || strings.HasPrefix(k, "REDIS_") ||
			k == "PORT" || k == "MIGRATE_ON_START" || k == "SHUTDOWN_TIMEOUT" || k == "LOG_LEVEL" {
			continue
		}
		base = append(base, kv)
	}
	return append(append(base, "PYTHONDONTWRITEBYTECODE=1"), env...)
}

// pyRun runs `python3 args...` in the backend to completion and returns its output.
func pyRun(t *testing.T, backend string, env []string, args ...string) string {
	t.Helper()
	name := "python3 " + strings.Join(args, " ")
	if len(args) > 4 {
		name = fmt.Sprintf("python3 %s (and %d more arguments)", strings.Join(args[:3], " "), len(args)-3)
	}
	cmd := exec.Command(pyPython, args...)
	cmd.Dir = backend
	cmd.Env = pyEnv(env)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// pyCompileAll byte-compiles every .py file of the backend (into a throwaway cache, so the
// generated tree stays clean): a syntax error in a file the tests never import still fails.
func pyCompileAll(t *testing.T, backend string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(backend, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".py") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d .py files in %s", len(files), backend)
	}
	pyRun(t, backend, []string{"PYTHONPYCACHEPREFIX=" + t.TempDir()}, append([]string{"-m", "py_compile"}, files...)...)
}

// pyCheckDockerfile checks the Dockerfile (checkBackendDockerfile): one pinned slim base
// image, a non-root runtime user, dependencies installed from requirements.txt in a build
// stage, and the healthcheck and entry point the compose files rely on
// (docs/webapp-contract.md).
func pyCheckDockerfile(t *testing.T, backend string) {
	t.Helper()
	user := checkBackendDockerfile(t, backend, "PYTHON_IMAGE", regexp.MustCompile(`^python:\d+\.\d+\.\d+-slim-[a-z]+$`),
		"python:X.Y.Z-slim-<debian>",
		"pip install --only-binary=:all: -r requirements.txt",
		"COPY --from=build /opt/venv /opt/venv",
		`CMD ["python", "-m", "app.healthcheck"]`,
		`ENTRYPOINT ["python", "-m", "app"]`,
	)
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		t.Errorf("Dockerfile: the runtime stage runs as %q, want a non-root user", user)
	}
}

// pyCheckRequirements requires every requirement to be pinned with == and the database
// driver and Redis client to be there exactly when chosen.
func pyCheckRequirements(t *testing.T, backend, db, cache string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backend, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[a-z,]+\])?==[0-9][0-9A-Za-z.]*$`)
	got := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := pin.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("requirements.txt: %q is not pinned as name==version", line)
			continue
		}
		got[strings.ToLower(m[1])] = true
	}
	want := map[string]bool{
		"fastapi": true, "uvicorn": true, "prometheus-client": true,
		"psycopg": db == "postgres", "psycopg-pool": db == "postgres", "pymysql": db == "mariadb",
		"redis": cache == "redis",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("requirements.txt: has %s = %v, want %v", name, got[name], w)
		}
	}
}

// pyLockItems locks the items table of the scratch database for d from a session of the
// admin client, so that writes wait; it returns once the lock is held, and the test's
// cleanup waits for the session to end.
func pyLockItems(t *testing.T, db e2eutil.ScratchDB, d time.Duration) {
	t.Helper()
	secs := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	admin := func(sql string) *exec.Cmd {
		if db.Engine == "postgres" {
			return exec.Command("psql", "-h", db.Host, "-U", "postgres", "-d", db.Name, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql)
		}
		return exec.Command("mariadb", "-h", db.Host, "-P", strconv.Itoa(db.Port), "-u", "root", "-N", db.Name, "-e", sql)
	}
	lock, held := "LOCK TABLES items WRITE; SELECT SLEEP("+secs+"); UNLOCK TABLES;",
		"SHOW OPEN TABLES WHERE `Table` = 'items' AND In_use > 0"
	if db.Engine == "postgres" {
		lock, held = "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep("+secs+"); COMMIT;",
			"SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted"
	}
	cmd := admin(lock)
	var out e2eutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("lock items: %v", err)
	}
	t.Cleanup(func() {
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock items: %v\n%s", err, out.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := admin(held).Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return
		}
	}
	t.Fatalf("the items table was not locked within 10s:\n%s", out.String())
}
