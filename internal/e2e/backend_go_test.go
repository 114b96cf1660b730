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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBackendGo generates the Go backend for each database and cache, checks that its
// go.mod is tidy and that its own vet and tests pass, then drives the built server against
// the local PostgreSQL, MariaDB and Redis: migrate, readiness, the items API with the
// cache, metrics, JSON logs and graceful shutdown.
func TestBackendGo(t *testing.T) {
	requireTool(t, "go")
	variants := []struct {
		db, cache string
		redisDB   int // a Redis logical database of its own, so parallel runs do not share item:<id> keys
	}{
		{db: "postgres", cache: "none"},
		{db: "postgres", cache: "redis", redisDB: 13},
		{db: "mariadb", cache: "none"},
		{db: "mariadb", cache: "redis", redisDB: 14},
	}
	for _, v := range variants {
		t.Run(v.db+"-"+v.cache, func(t *testing.T) {
			t.Parallel()
			if v.cache == "redis" {
				requireServer(t, "Redis", 6379)
			}
			scratch := newScratchDB(t, v.db)
			dir := generate(t, map[string]string{"backend": "go", "frontend": "none", "db": v.db, "cache": v.cache})
			backend := filepath.Join(dir, "backend")

			runGo(t, backend, "mod", "tidy", "-diff")
			runGo(t, backend, "vet", "./...")
			runGo(t, backend, "test", "./...")
			bin := filepath.Join(backend, "server") // beside migrations/, as /app/server is in the image
			runGo(t, backend, "build", "-o", bin, ".")

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
				"SHUTDOWN_TIMEOUT=5s",
				"LOG_LEVEL=debug",
			}
			if v.cache == "redis" {
				env = append(env, "REDIS_ADDR=127.0.0.1:6379", "REDIS_DB="+strconv.Itoa(v.redisDB))
			}
			dbPort := "DB_PORT=" + strconv.Itoa(scratch.Port)

			// Without a database the server still serves, but is not ready.
			down := startBackend(t, bin, append(env, "DB_PORT="+strconv.Itoa(freePort(t))))
			down.waitStatus(t, "/healthz", http.StatusOK)
			status, body, _ := down.get(t, "/readyz")
			var ready struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(body, &ready); status != http.StatusServiceUnavailable || err != nil ||
				ready.Checks["db"] == "" || ready.Checks["db"] == "ok" {
				t.Errorf("GET /readyz with the database down = %d %s, want 503 with the db error", status, body)
			}
			down.stop(t)

			out := runBackend(t, bin, append(env, dbPort), "migrate")
			if !strings.Contains(out, `"msg":"migration applied"`) || !strings.Contains(out, `"version":"0001_create_items"`) {
				t.Errorf("first migrate did not apply 0001_create_items:\n%s", out)
			}
			out = runBackend(t, bin, append(env, dbPort), "migrate")
			if strings.Contains(out, `"msg":"migration applied"`) {
				t.Errorf("second migrate applied a migration again:\n%s", out)
			}

			srv := startBackend(t, bin, append(env, dbPort))
			srv.waitStatus(t, "/readyz", http.StatusOK)
			status, body, _ = srv.get(t, "/readyz")
			wantReady := `{"status":"ok","checks":{"db":"ok"}}`
			if v.cache == "redis" {
				wantReady = `{"status":"ok","checks":{"cache":"ok","db":"ok"}}`
			}
			if got := string(bytes.TrimSpace(body)); status != http.StatusOK || got != wantReady {
				t.Errorf("GET /readyz = %d %s, want 200 %s", status, got, wantReady)
			}

			if status, body := srv.post(t, "/api/items", `{"name":""}`); status != http.StatusBadRequest {
				t.Errorf("POST /api/items with an empty name = %d %s, want 400", status, body)
			}
			name := "widget é " + v.db
			status, body = srv.post(t, "/api/items", `{"name":"`+name+`"}`)
			var created item
			if err := json.Unmarshal(body, &created); status != http.StatusCreated || err != nil || created.ID < 1 || created.Name != name {
				t.Fatalf("POST /api/items = %d %s, want 201 with the item", status, body)
			}
			if _, err := time.Parse(time.RFC3339, created.CreatedAt); err != nil {
				t.Errorf("created_at %q is not RFC 3339: %v", created.CreatedAt, err)
			}
			path := "/api/items/" + strconv.FormatInt(created.ID, 10)
			if v.cache == "redis" {
				redisDel(t, v.redisDB, "item:"+strconv.FormatInt(created.ID, 10)) // left by an earlier run
				t.Cleanup(func() { redisDel(t, v.redisDB, "item:"+strconv.FormatInt(created.ID, 10)) })
			}
			wantCache := []string{"", ""}
			if v.cache == "redis" {
				wantCache = []string{"miss", "hit"}
			}
			for i, want := range wantCache {
				status, body, hdr := srv.get(t, path)
				var got item
				if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil || got != created {
					t.Errorf("GET %s #%d = %d %s, want 200 %+v", path, i+1, status, body, created)
				}
				if hdr.Get("X-Cache") != want {
					t.Errorf("GET %s #%d: X-Cache = %q, want %q", path, i+1, hdr.Get("X-Cache"), want)
				}
			}
			if status, body, _ := srv.get(t, "/api/items/999999"); status != http.StatusNotFound {
				t.Errorf("GET /api/items/999999 = %d %s, want 404", status, body)
			}
			status, body, _ = srv.get(t, "/api/items")
			var list []item
			if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 1 || list[0] != created {
				t.Errorf("GET /api/items = %d %s, want the one item", status, body)
			}

			_, body, _ = srv.get(t, "/metrics")
			for _, want := range []string{
				`http_requests_total{method="POST",route="/api/items",status="201"} 1`,
				`http_requests_total{method="POST",route="/api/items",status="400"} 1`,
				`http_requests_total{method="GET",route="/api/items/{id}",status="200"} 2`,
				`http_request_duration_seconds_bucket{method="GET",route="/api/items",le="+Inf"} 1`,
			} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("/metrics lacks %s", want)
				}
			}

			logs := srv.stop(t)
			checkJSONLogs(t, logs, path)
		})
	}
}

// item is an item as the API returns it.
type item struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// runGo runs the go command in dir and fails the test with its output when it fails.
func runGo(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// runBackend runs the server binary with a command to completion and returns its output.
func runBackend(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir() // migrations are found next to the binary, not in the working directory
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// backend is a running server process.
type backend struct {
	cmd    *exec.Cmd
	base   string
	out    *lockedBuffer
	exited chan struct{}
	err    error // the Wait result, set before exited is closed
}

// lockedBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startBackend starts the server on a free port; the test's cleanup kills it if it still runs.
func startBackend(t *testing.T, bin string, env []string) *backend {
	t.Helper()
	port := freePort(t)
	b := &backend{base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &lockedBuffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(bin)
	b.cmd.Dir = t.TempDir()
	b.cmd.Env = append(append(os.Environ(), env...), "PORT="+strconv.Itoa(port))
	b.cmd.Stdout = b.out
	b.cmd.Stderr = b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	})
	return b
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (b *backend) get(t *testing.T, path string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := httpClient.Get(b.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v\nserver output:\n%s", path, err, b.out)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body, resp.Header
}

func (b *backend) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := httpClient.Post(b.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v\nserver output:\n%s", path, err, b.out)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp.StatusCode, got
}

// waitStatus polls path until it answers want, for at most 30 seconds.
func (b *backend) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			t.Fatalf("server exited early (%v):\n%s", b.err, b.out)
		default:
		}
		resp, err := httpClient.Get(b.base + path)
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
	t.Fatalf("GET %s never answered %d (last: %s); server output:\n%s", path, want, last, b.out)
}

// stop sends SIGTERM, requires exit status 0 within SHUTDOWN_TIMEOUT (5s) plus slack,
// and returns the server's output.
func (b *backend) stop(t *testing.T) string {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("server still running 10s after SIGTERM:\n%s", b.out)
	}
	if b.err != nil {
		t.Errorf("server exited with %v after SIGTERM, want 0:\n%s", b.err, b.out)
	}
	return b.out.String()
}

// checkJSONLogs requires every output line to be a JSON object with time, level and msg,
// and a request line for GET path with method, path, status and duration_ms.
func checkJSONLogs(t *testing.T, logs, path string) {
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
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no shutdown log line in:\n%s", logs)
	}
}

// redisDel deletes key in the logical database db of the local Redis.
func redisDel(t *testing.T, db int, key string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", 2*time.Second)
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	send := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(c, b.String()); err != nil {
			t.Fatalf("redis %s: %v", args[0], err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("redis %s: %v", args[0], err)
		}
		return strings.TrimSpace(line)
	}
	if got := send("SELECT", strconv.Itoa(db)); got != "+OK" {
		t.Fatalf("redis SELECT %d: %s", db, got)
	}
	if got := send("DEL", key); !strings.HasPrefix(got, ":") {
		t.Fatalf("redis DEL %s: %s", key, got)
	}
}
