package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pyPython is the interpreter the Python backend is tested with: Debian's, whose python3-*
// packages (`make tools`) provide the backend's dependencies.
const pyPython = "/usr/bin/python3"

// pyModules are the modules the generated backend and its tests import.
var pyModules = []string{"fastapi", "uvicorn", "prometheus_client", "psycopg", "psycopg_pool", "pymysql", "redis", "httpx", "pytest"}

// TestBackendPython generates the Python/FastAPI backend for each database and cache,
// checks its Dockerfile and pins, byte-compiles it and runs its unit tests, then drives the
// server against the local PostgreSQL, MariaDB and Redis: readiness with the database down,
// migrate (then MIGRATE_ON_START with nothing left), the items API with the cache, metrics,
// JSON logs, the container healthcheck, and graceful shutdown with a request in flight.
func TestBackendPython(t *testing.T) {
	pyRequireModules(t)
	variants := []struct {
		db, cache string
		redisDB   int // a Redis logical database of its own, so parallel runs do not share item:<id> keys
	}{
		{db: "postgres", cache: "none"},
		{db: "postgres", cache: "redis", redisDB: 9},
		{db: "mariadb", cache: "none"},
		{db: "mariadb", cache: "redis", redisDB: 10},
	}
	for _, v := range variants {
		t.Run(v.db+"-"+v.cache, func(t *testing.T) {
			t.Parallel()
			if v.cache == "redis" {
				requireServer(t, "Redis", 6379)
			}
			scratch := newScratchDB(t, v.db)
			dir := generate(t, map[string]string{"backend": "python", "frontend": "none", "db": v.db, "cache": v.cache})
			backend := filepath.Join(dir, "backend")

			pyCheckDockerfile(t, backend)
			pyCheckRequirements(t, backend, v.db, v.cache)
			pyCompileAll(t, backend)
			pyRun(t, backend, nil, "-m", "pytest", "-q")

			pwFile := filepath.Join(t.TempDir(), "db_password")
			if err := os.WriteFile(pwFile, []byte(scratch.Password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{
				"DB_HOST=" + scratch.Host,
				"DB_NAME=" + scratch.Name,
				"DB_USER=" + scratch.User,
				"DB_PASSWORD=wrong-the-file-wins",
				"DB_PASSWORD_FILE=" + pwFile,
				"SHUTDOWN_TIMEOUT=10",
				"LOG_LEVEL=info",
			}
			if v.cache == "redis" {
				env = append(env, "REDIS_ADDR=127.0.0.1:6379", "REDIS_DB="+strconv.Itoa(v.redisDB))
			}
			dbPort := "DB_PORT=" + strconv.Itoa(scratch.Port)

			// Without a database the server still serves, but is not ready.
			down := pyStart(t, backend, append(env, "DB_PORT="+strconv.Itoa(freePort(t))))
			down.waitStatus(t, "/healthz", http.StatusOK)
			status, body, _ := down.do(t, "GET", "/readyz", "")
			var ready struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(body, &ready); status != http.StatusServiceUnavailable || err != nil ||
				ready.Checks["db"] == "" || ready.Checks["db"] == "ok" {
				t.Errorf("GET /readyz with the database down = %d %s, want 503 with the db error", status, body)
			}
			if v.cache == "redis" && ready.Checks["cache"] != "ok" {
				t.Errorf("GET /readyz with the database down: cache check = %q, want ok", ready.Checks["cache"])
			}
			down.stop(t)

			out := pyRun(t, backend, append(env, dbPort), "-m", "app", "migrate")
			if !strings.Contains(out, `"msg":"migration applied"`) || !strings.Contains(out, `"version":"0001_create_items"`) {
				t.Errorf("first migrate did not apply 0001_create_items:\n%s", out)
			}

			// MIGRATE_ON_START finds nothing left to do (checked with the logs below) and serves.
			srv := pyStart(t, backend, append(env, dbPort, "MIGRATE_ON_START=true"))
			srv.waitStatus(t, "/readyz", http.StatusOK)
			status, body, _ = srv.do(t, "GET", "/readyz", "")
			wantChecks := map[string]string{"db": "ok"}
			if v.cache == "redis" {
				wantChecks["cache"] = "ok"
			}
			ready.Checks = nil
			if err := json.Unmarshal(body, &ready); status != http.StatusOK || err != nil || ready.Status != "ok" ||
				fmt.Sprint(ready.Checks) != fmt.Sprint(wantChecks) {
				t.Errorf("GET /readyz = %d %s, want 200 with checks %v", status, body, wantChecks)
			}

			if status, body, _ := srv.do(t, "POST", "/api/items", `{"name":""}`); status != http.StatusBadRequest {
				t.Errorf("POST /api/items with an empty name = %d %s, want 400", status, body)
			}
			name := "gadget é " + v.db
			status, body, _ = srv.do(t, "POST", "/api/items", `{"name":"`+name+`"}`)
			var created pyItem
			if err := json.Unmarshal(body, &created); status != http.StatusCreated || err != nil || created.ID < 1 || created.Name != name {
				t.Fatalf("POST /api/items = %d %s, want 201 with the item", status, body)
			}
			if _, err := time.Parse(time.RFC3339, created.CreatedAt); err != nil {
				t.Errorf("created_at %q is not RFC 3339: %v", created.CreatedAt, err)
			}
			id := strconv.FormatInt(created.ID, 10)
			path := "/api/items/" + id
			wantCache := []string{"", ""}
			if v.cache == "redis" {
				wantCache = []string{"miss", "hit"}
				pyRedisDel(t, v.redisDB, "item:"+id) // left by an earlier run
				t.Cleanup(func() { pyRedisDel(t, v.redisDB, "item:"+id) })
			}
			for i, want := range wantCache {
				status, body, hdr := srv.do(t, "GET", path, "")
				var got pyItem
				if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil || got != created {
					t.Errorf("GET %s #%d = %d %s, want 200 %+v", path, i+1, status, body, created)
				}
				if hdr.Get("X-Cache") != want {
					t.Errorf("GET %s #%d: X-Cache = %q, want %q", path, i+1, hdr.Get("X-Cache"), want)
				}
			}
			if status, body, _ := srv.do(t, "GET", "/api/items/999999", ""); status != http.StatusNotFound {
				t.Errorf("GET /api/items/999999 = %d %s, want 404", status, body)
			}
			status, body, _ = srv.do(t, "GET", "/api/items", "")
			var list []pyItem
			if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 1 || list[0] != created {
				t.Errorf("GET /api/items = %d %s, want the one item", status, body)
			}

			_, body, _ = srv.do(t, "GET", "/metrics", "")
			for _, want := range []string{
				`http_requests_total{method="POST",route="/api/items",status="201"} 1.0`,
				`http_requests_total{method="POST",route="/api/items",status="400"} 1.0`,
				`http_requests_total{method="GET",route="/api/items/{id}",status="200"} 2.0`,
				`http_requests_total{method="GET",route="/api/items/{id}",status="404"} 1.0`,
				`http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/items"} 1.0`,
			} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("/metrics lacks %s", want)
				}
			}

			// The container healthcheck (the compose and Dockerfile HEALTHCHECK command).
			if out, err := srv.healthcheck(); err != nil {
				t.Errorf("python -m app.healthcheck against a serving backend: %v\n%s", err, out)
			}
			// Graceful shutdown: a request held up by a table lock is still answered.
			pyLockItems(t, scratch, 2*time.Second)
			inflight := make(chan string, 1)
			postStart := time.Now()
			go func() {
				resp, err := pyClient.Post(srv.url("/api/items"), "application/json", strings.NewReader(`{"name":"in flight"}`))
				if err != nil {
					inflight <- err.Error()
					return
				}
				resp.Body.Close()
				inflight <- fmt.Sprintf("%s (after %s)", resp.Status, time.Since(postStart).Round(time.Millisecond))
			}()
			time.Sleep(300 * time.Millisecond)
			logs := srv.stop(t)
			if got := <-inflight; !strings.HasPrefix(got, "201 Created") {
				t.Errorf("POST /api/items in flight at SIGTERM: %s, want 201 Created", got)
			} else {
				t.Logf("POST /api/items in flight at SIGTERM: %s", got)
			}
			pyCheckLogs(t, logs, path)
			if strings.Contains(logs, `"msg":"migration applied"`) || !strings.Contains(logs, `"msg":"migrations up to date"`) {
				t.Errorf("MIGRATE_ON_START after migrate: want nothing applied, got:\n%s", logs)
			}
			if _, err := srv.healthcheck(); err == nil {
				t.Errorf("python -m app.healthcheck succeeded after the backend stopped")
			}
		})
	}
}

// pyItem is an item as the API returns it.
type pyItem struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// pyRequireModules fails (or skips outside CI) when Debian's python3 or one of the
// modules the backend needs is missing.
func pyRequireModules(t *testing.T) {
	t.Helper()
	requireTool(t, pyPython)
	out, err := exec.Command(pyPython, "-c", "import "+strings.Join(pyModules, ", ")).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("%s cannot import the backend's modules (run `make tools`): %v\n%s", pyPython, err, out)
		if inCI() {
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

// pyServer is a running `python3 -m app`.
type pyServer struct {
	cmd    *exec.Cmd
	port   int
	out    *pyOutput
	exited chan struct{}
	err    error // the Wait result, set before exited is closed
}

// pyOutput collects the process's output; safe for its writes and the test's reads.
type pyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *pyOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *pyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// pyStart starts the server on a free port; the test's cleanup kills it if it still runs.
func pyStart(t *testing.T, backend string, env []string) *pyServer {
	t.Helper()
	s := &pyServer{port: freePort(t), out: &pyOutput{}, exited: make(chan struct{})}
	s.cmd = exec.Command(pyPython, "-m", "app")
	s.cmd.Dir = backend
	s.cmd.Env = pyEnv(append(env, "PORT="+strconv.Itoa(s.port)))
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start python server: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

var pyClient = &http.Client{Timeout: 10 * time.Second}

// url is the server's URL for path.
func (s *pyServer) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path)
}

// do sends a request (a POST body is JSON) and returns status, body and headers.
func (s *pyServer) do(t *testing.T, method, path, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.url(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := pyClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nserver output:\n%s", method, path, err, s.out)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, got, resp.Header
}

// waitStatus polls path until it answers want, for at most 30 seconds.
func (s *pyServer) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("server exited early (%v):\n%s", s.err, s.out)
		default:
		}
		resp, err := pyClient.Get(s.url(path))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s never answered %d (last: %s); server output:\n%s", path, want, last, s.out)
}

// stop sends SIGTERM and requires exit status 0 within SHUTDOWN_TIMEOUT (10 s) plus slack,
// with an idle keep-alive connection open; it returns the server's output.
func (s *pyServer) stop(t *testing.T) string {
	t.Helper()
	s.do(t, "GET", "/healthz", "") // leaves an idle keep-alive connection in pyClient
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("server still running 15s after SIGTERM (SHUTDOWN_TIMEOUT=10):\n%s", s.out)
	}
	if s.err != nil {
		t.Errorf("server exited with %v after SIGTERM, want 0:\n%s", s.err, s.out)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	return s.out.String()
}

// healthcheck runs `python3 -m app.healthcheck` against the server's port.
func (s *pyServer) healthcheck() ([]byte, error) {
	cmd := exec.Command(pyPython, "-m", "app.healthcheck")
	cmd.Dir = s.cmd.Dir
	cmd.Env = pyEnv([]string{"PORT=" + strconv.Itoa(s.port)})
	return cmd.CombinedOutput()
}

// pyCheckDockerfile checks what can be checked without a Docker daemon: one pinned slim base
// image, a non-root runtime user, dependencies installed from requirements.txt in a build
// stage, the healthcheck and entry point the compose files rely on (docs/webapp-contract.md),
// and that what it copies exists.
func pyCheckDockerfile(t *testing.T, backend string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backend, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	pinned := regexp.MustCompile(`^python:\d+\.\d+\.\d+-slim-[a-z]+$`)
	var stages []string
	var lastUser string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ARG" && strings.HasPrefix(f[1], "PYTHON_IMAGE="):
			if img := strings.TrimPrefix(f[1], "PYTHON_IMAGE="); !pinned.MatchString(img) {
				t.Errorf("Dockerfile: base image %q is not a pinned python:X.Y.Z-slim-<debian> tag", img)
			}
		case len(f) >= 2 && f[0] == "FROM":
			if f[1] != "${PYTHON_IMAGE}" && !slices.Contains(stages, f[1]) {
				t.Errorf("Dockerfile: FROM %s: want ${PYTHON_IMAGE} (pinned once in ARG) or an earlier stage", f[1])
			}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages = append(stages, f[3])
			}
			lastUser = ""
		case len(f) == 2 && f[0] == "USER":
			lastUser = f[1]
		case len(f) >= 3 && f[0] == "COPY" && !strings.HasPrefix(f[1], "--from="):
			for _, src := range f[1 : len(f)-1] {
				if _, err := os.Stat(filepath.Join(backend, src)); src != "." && err != nil {
					t.Errorf("Dockerfile: COPY source %s: %v", src, err)
				}
			}
		}
	}
	if lastUser == "" || lastUser == "root" || strings.HasPrefix(lastUser, "0:") || lastUser == "0" {
		t.Errorf("Dockerfile: the runtime stage runs as %q, want a non-root user", lastUser)
	}
	for _, want := range []string{
		"pip install --only-binary=:all: -r requirements.txt",
		"COPY --from=build /opt/venv /opt/venv",
		`CMD ["python", "-m", "app.healthcheck"]`,
		`ENTRYPOINT ["python", "-m", "app"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
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

// pyCheckLogs requires every output line to be a JSON object with time, level and msg,
// a request line for GET path with method, path, status and duration_ms, the shutdown line,
// and no warnings or errors (such as a shutdown that had to abandon requests).
func pyCheckLogs(t *testing.T, logs, path string) {
	t.Helper()
	sawRequest, sawStopped := false, false
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line lacks %q: %s", k, sc.Text())
			}
		}
		if rec["msg"] == "request" && rec["method"] == "GET" && rec["path"] == path {
			_, hasDuration := rec["duration_ms"]
			sawRequest = sawRequest || (rec["status"] == float64(200) && hasDuration)
		}
		sawStopped = sawStopped || rec["msg"] == "stopped"
		if rec["level"] == "warning" || rec["level"] == "error" {
			t.Errorf("a clean run logged a %s: %s", rec["level"], sc.Text())
		}
	}
	if !sawRequest {
		t.Errorf("no request log line for GET %s with status and duration_ms in:\n%s", path, logs)
	}
	if !sawStopped {
		t.Errorf("no shutdown log line in:\n%s", logs)
	}
}

// pyLockItems locks the items table of the scratch database for d from a session of the
// admin client, so that writes wait; it returns once the lock is held, and the test's
// cleanup waits for the session to end.
func pyLockItems(t *testing.T, db scratchDB, d time.Duration) {
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
	var out pyOutput
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

// pyRedisDel deletes key in the logical database db of the local Redis.
func pyRedisDel(t *testing.T, db int, key string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", 2*time.Second)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	for _, args := range [][]string{{"SELECT", strconv.Itoa(db)}, {"DEL", key}} {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(c, b.String()); err != nil {
			t.Fatalf("redis %s: %v", args[0], err)
		}
		line, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(line, "-") {
			t.Fatalf("redis %s: %q %v", strings.Join(args, " "), line, err)
		}
	}
}
