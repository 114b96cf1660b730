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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBackendNode generates the Node.js backend for each database and cache, installs it
// from its package-lock.json with `npm ci` and runs its unit tests, then drives the server
// against the local PostgreSQL, MariaDB and Redis: readiness with the database down,
// migrate (twice), the items API with the cache, metrics, JSON logs and graceful shutdown.
func TestBackendNode(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "npm")
	nodeRequireMajor(t, 20)
	variants := []struct {
		db, cache string
		redisDB   int // a Redis logical database of its own, so parallel runs do not share item:<id> keys
	}{
		{db: "postgres", cache: "none"},
		{db: "postgres", cache: "redis", redisDB: 11},
		{db: "mariadb", cache: "none"},
		{db: "mariadb", cache: "redis", redisDB: 12},
	}
	for _, v := range variants {
		t.Run(v.db+"-"+v.cache, func(t *testing.T) {
			t.Parallel()
			if v.cache == "redis" {
				requireServer(t, "Redis", 6379)
			}
			scratch := newScratchDB(t, v.db)
			dir := generate(t, map[string]string{"backend": "node", "frontend": "none", "db": v.db, "cache": v.cache})
			backend := filepath.Join(dir, "backend")

			nodeCheckDockerfile(t, backend)
			nodeNpm(t, backend, "ci") // fails when package-lock.json does not match package.json
			nodeNpm(t, backend, "test")

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
				"SHUTDOWN_TIMEOUT=5",
				"LOG_LEVEL=debug",
			}
			if v.cache == "redis" {
				env = append(env, "REDIS_ADDR=127.0.0.1:6379", "REDIS_DB="+strconv.Itoa(v.redisDB))
			}
			dbPort := "DB_PORT=" + strconv.Itoa(scratch.Port)

			// Without a database the server still serves, but is not ready.
			down := nodeStart(t, backend, append(env, "DB_PORT="+strconv.Itoa(freePort(t))))
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

			out := nodeRun(t, backend, append(env, dbPort), "migrate")
			if !strings.Contains(out, `"msg":"migration applied"`) || !strings.Contains(out, `"version":"0001_create_items"`) {
				t.Errorf("first migrate did not apply 0001_create_items:\n%s", out)
			}
			out = nodeRun(t, backend, append(env, dbPort), "migrate")
			if strings.Contains(out, `"msg":"migration applied"`) {
				t.Errorf("second migrate applied a migration again:\n%s", out)
			}

			// MIGRATE_ON_START finds nothing left to do and serves.
			srv := nodeStart(t, backend, append(env, dbPort, "MIGRATE_ON_START=true"))
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
			var created nodeItem
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
				nodeRedisDel(t, v.redisDB, "item:"+id) // left by an earlier run
				t.Cleanup(func() { nodeRedisDel(t, v.redisDB, "item:"+id) })
			}
			for i, want := range wantCache {
				status, body, hdr := srv.do(t, "GET", path, "")
				var got nodeItem
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
			var list []nodeItem
			if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 1 || list[0] != created {
				t.Errorf("GET /api/items = %d %s, want the one item", status, body)
			}

			_, body, _ = srv.do(t, "GET", "/metrics", "")
			for _, want := range []string{
				`http_requests_total{method="POST",route="/api/items",status="201"} 1`,
				`http_requests_total{method="POST",route="/api/items",status="400"} 1`,
				`http_requests_total{method="GET",route="/api/items/{id}",status="200"} 2`,
				`http_requests_total{method="GET",route="/api/items/{id}",status="404"} 1`,
				`http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/items"} 1`,
			} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("/metrics lacks %s", want)
				}
			}

			// The container healthcheck (the compose and Dockerfile HEALTHCHECK command).
			if out, err := srv.healthcheck(); err != nil {
				t.Errorf("node src/healthcheck.js against a serving backend: %v\n%s", err, out)
			}
			nodeCheckLogs(t, srv.stop(t), path)
			if _, err := srv.healthcheck(); err == nil {
				t.Errorf("node src/healthcheck.js succeeded after the backend stopped")
			}
		})
	}
}

// nodeItem is an item as the API returns it.
type nodeItem struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
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
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// nodeNpm runs npm in dir with a cache shared by all runs (OPSREADY_NPM_CACHE, or one
// under the user cache directory), so repeated runs skip downloads.
func nodeNpm(t *testing.T, dir string, args ...string) {
	t.Helper()
	cache := os.Getenv("OPSREADY_NPM_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cache = filepath.Join(base, "opsready-e2e", "npm")
	}
	name := "npm " + strings.Join(args, " ")
	cmd := exec.Command("npm", append(args, "--cache", cache, "--prefer-offline", "--no-audit", "--no-fund")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
}

// nodeRun runs `node src/server.js args...` in the backend to completion and returns its output.
func nodeRun(t *testing.T, backend string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("node", append([]string{"src/server.js"}, args...)...)
	cmd.Dir = backend
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node src/server.js %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nodeServer is a running `node src/server.js`.
type nodeServer struct {
	cmd    *exec.Cmd
	base   string
	out    *nodeOutput
	exited chan struct{}
	err    error // the Wait result, set before exited is closed
}

// nodeOutput collects the process's output; safe for its writes and the test's reads.
type nodeOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *nodeOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *nodeOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// nodeStart starts the server on a free port; the test's cleanup kills it if it still runs.
func nodeStart(t *testing.T, backend string, env []string) *nodeServer {
	t.Helper()
	port := freePort(t)
	s := &nodeServer{base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &nodeOutput{}, exited: make(chan struct{})}
	s.cmd = exec.Command("node", "src/server.js")
	s.cmd.Dir = backend
	s.cmd.Env = append(append(os.Environ(), env...), "PORT="+strconv.Itoa(port))
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start node server: %v", err)
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

var nodeClient = &http.Client{Timeout: 10 * time.Second}

// do sends a request (a POST body is JSON) and returns status, body and headers.
func (s *nodeServer) do(t *testing.T, method, path, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := nodeClient.Do(req)
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
func (s *nodeServer) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("server exited early (%v):\n%s", s.err, s.out)
		default:
		}
		resp, err := nodeClient.Get(s.base + path)
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

// stop sends SIGTERM and requires exit status 0 within SHUTDOWN_TIMEOUT (5 s) plus slack,
// with an idle keep-alive connection open; it returns the server's output.
func (s *nodeServer) stop(t *testing.T) string {
	t.Helper()
	s.do(t, "GET", "/healthz", "") // leaves an idle keep-alive connection in nodeClient
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(8 * time.Second):
		t.Fatalf("server still running 8s after SIGTERM (SHUTDOWN_TIMEOUT=5):\n%s", s.out)
	}
	if s.err != nil {
		t.Errorf("server exited with %v after SIGTERM, want 0:\n%s", s.err, s.out)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	return s.out.String()
}

// healthcheck runs `node src/healthcheck.js` against the server's port.
func (s *nodeServer) healthcheck() ([]byte, error) {
	cmd := exec.Command("node", "src/healthcheck.js")
	cmd.Dir = s.cmd.Dir
	cmd.Env = append(os.Environ(), "PORT="+s.base[strings.LastIndex(s.base, ":")+1:])
	return cmd.CombinedOutput()
}

// nodeCheckDockerfile checks what can be checked without a Docker daemon: pinned base
// images, a non-root runtime user, install from the lock file, the healthcheck and entry
// point the compose files rely on (docs/webapp-contract.md), and that what it copies exists.
func nodeCheckDockerfile(t *testing.T, backend string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backend, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	pinned := regexp.MustCompile(`^node:\d+\.\d+\.\d+-[a-z]+-slim$`)
	var lastUser string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ARG" && strings.HasPrefix(f[1], "NODE_IMAGE="):
			if img := strings.TrimPrefix(f[1], "NODE_IMAGE="); !pinned.MatchString(img) {
				t.Errorf("Dockerfile: base image %q is not a pinned node:X.Y.Z-<debian>-slim tag", img)
			}
		case len(f) >= 2 && f[0] == "FROM" && f[1] != "${NODE_IMAGE}" && f[1] != "deps":
			t.Errorf("Dockerfile: FROM %s: want ${NODE_IMAGE} (pinned once in ARG)", f[1])
		case len(f) >= 2 && f[0] == "FROM":
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
	if lastUser != "node" {
		t.Errorf("Dockerfile: the runtime stage runs as %q, want node", lastUser)
	}
	for _, want := range []string{
		"npm ci --omit=dev",
		`CMD ["node", "src/healthcheck.js"]`,
		`ENTRYPOINT ["node", "src/server.js"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}

// nodeCheckLogs requires every output line to be a JSON object with time, level and msg,
// a request line for GET path with method, path, status and duration_ms, and the shutdown line.
func nodeCheckLogs(t *testing.T, logs, path string) {
	t.Helper()
	sawRequest := false
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
	}
	if !sawRequest {
		t.Errorf("no request log line for GET %s with status and duration_ms in:\n%s", path, logs)
	}
	if !strings.Contains(logs, `"msg":"stopped","clean":true`) {
		t.Errorf("no clean shutdown log line in:\n%s", logs)
	}
}

// nodeRedisDel deletes key in the logical database db of the local Redis.
func nodeRedisDel(t *testing.T, db int, key string) {
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
