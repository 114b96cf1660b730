package backends

import (
	"bufio"
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
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The backend stubs (Go, Python, Node.js) implement one contract, docs/webapp-contract.md.
// Each language's test builds and unit-tests its stub, describes how to run it in a
// contractCase and drives it through the checks here against the local PostgreSQL, MariaDB
// and Redis:
//
//	forEachBackendCase(t, "go", redisDBs, func(t *testing.T, c contractCase, backend string) {
//		... build, unit tests; set c.cmd, c.env and the rest ...
//		srv := startContractBackend(t, c)      // readiness with the database down, migrate twice, serve
//		path := checkBackendContract(t, srv, c) // readyz, the items API with the cache, metrics, healthcheck
//		... checks of its own while it serves ...
//		logs := stopContractBackend(t, srv, c, path) // SIGTERM, exit 0, JSON logs, healthcheck fails
//	})

// contractCase is one live run of a backend stub: the answers it was generated with, and
// how its language's test runs it.
type contractCase struct {
	db, cache string            // the answers
	redisDB   int               // with cache=redis: a Redis logical database of its own, so parallel runs do not share item:<id> keys
	scratch   e2eutil.ScratchDB // the database of this run

	// Set by the language's test.
	cmd         func(env []string, args ...string) *exec.Cmd // the server's command line (args: none = serve, "migrate") with env added to the test's
	healthcheck []string                                     // the container healthcheck command, run with the server's folder and environment
	env         []string                                     // more environment, such as SHUTDOWN_TIMEOUT and LOG_LEVEL in the language's syntax
	stopWithin  time.Duration                                // how long a SIGTERM may take: SHUTDOWN_TIMEOUT plus slack
	promFloat   bool                                         // the Prometheus client writes counts as floats ("1.0")
	promLeLast  bool                                         // it writes a bucket's le label after the others, not in name order
	quietLogs   bool                                         // a clean run logs nothing at level warning or error
}

// item is an item as the API returns it.
type item struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// forEachBackendCase runs check in a parallel subtest for each database, without and with
// the Redis cache (in the logical database redisDBs[db]), with the project generated for
// the backend and a scratch database; check gets the generated backend folder.
func forEachBackendCase(t *testing.T, backend string, redisDBs map[string]int, check func(t *testing.T, c contractCase, dir string)) {
	for _, db := range []string{"postgres", "mariadb"} {
		for _, c := range []contractCase{{db: db, cache: "none"}, {db: db, cache: "redis", redisDB: redisDBs[db]}} {
			t.Run(c.db+"-"+c.cache, func(t *testing.T) {
				t.Parallel()
				if c.cache == "redis" {
					e2eutil.RequireServer(t, "Redis", 6379)
				}
				c.scratch = e2eutil.NewScratchDB(t, c.db)
				dir := e2eutil.Generate(t, map[string]string{"backend": backend, "frontend": "none", "db": c.db, "cache": c.cache})
				check(t, c, filepath.Join(dir, "backend"))
			})
		}
	}
}

// start starts the server on a free port with env.
func (c contractCase) start(t *testing.T, env []string) *e2eutil.Proc {
	t.Helper()
	port := e2eutil.FreePort(t)
	return e2eutil.StartProc(t, c.cmd(append(slices.Clip(env), "PORT="+strconv.Itoa(port))), port)
}

// run runs the server's command with args to completion and returns its output.
func (c contractCase) run(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := c.cmd(env, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Logf("%s: %s", strings.Join(cmd.Args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// startContractBackend configures the server for the scratch database (the password from
// DB_PASSWORD_FILE, which wins over DB_PASSWORD) and the cache, and checks that it serves
// but is not ready without its database, and that migrate applies 0001_create_items once
// and nothing on a second run. It returns the server started with MIGRATE_ON_START, which
// finds nothing left to do (stopContractBackend checks its logs).
func startContractBackend(t *testing.T, c contractCase) *e2eutil.Proc {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(pwFile, []byte(c.scratch.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append([]string{
		"DB_HOST=" + c.scratch.Host,
		"DB_NAME=" + c.scratch.Name,
		"DB_USER=" + c.scratch.User,
		"DB_PASSWORD=wrong-the-file-wins",
		"DB_PASSWORD_FILE=" + pwFile,
	}, c.env...)
	if c.cache == "redis" {
		env = append(env, "REDIS_ADDR=127.0.0.1:6379", "REDIS_DB="+strconv.Itoa(c.redisDB))
	}
	env = slices.Clip(env)
	up := append(env, "DB_PORT="+strconv.Itoa(c.scratch.Port))

	// Without a database the server still serves, but is not ready.
	down := c.start(t, append(env, "DB_PORT="+strconv.Itoa(e2eutil.FreePort(t))))
	down.WaitStatus(t, "/healthz", http.StatusOK)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	// The cache client connects asynchronously after start (node-redis reports "The client is
	// offline" until then, rightly not ready): poll a while for the cache check, on a loaded
	// machine too; the database check must stay failed throughout.
	var status int
	var body []byte
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, body, _ = down.Do(t, "GET", "/readyz", "")
		ready.Checks = nil
		err = json.Unmarshal(body, &ready)
		if c.cache != "redis" || ready.Checks["cache"] == "ok" || time.Now().After(deadline) {
			break
		}
	}
	if status != http.StatusServiceUnavailable || err != nil ||
		ready.Checks["db"] == "" || ready.Checks["db"] == "ok" {
		t.Errorf("GET /readyz with the database down = %d %s, want 503 with the db error", status, body)
	}
	if c.cache == "redis" && ready.Checks["cache"] != "ok" {
		t.Errorf("GET /readyz with the database down: cache check = %q, want ok", ready.Checks["cache"])
	}
	down.Stop(t, c.stopWithin)

	out := c.run(t, up, "migrate")
	if !strings.Contains(out, `"msg":"migration applied"`) || !strings.Contains(out, `"version":"0001_create_items"`) {
		t.Errorf("first migrate did not apply 0001_create_items:\n%s", out)
	}
	out = c.run(t, up, "migrate")
	if strings.Contains(out, `"msg":"migration applied"`) {
		t.Errorf("second migrate applied a migration again:\n%s", out)
	}

	return c.start(t, append(up, "MIGRATE_ON_START=true"))
}

// checkBackendContract checks a serving backend: /readyz, POST /api/items (400 and 201),
// GET /api/items/{id} twice (X-Cache miss then hit with the cache, none without), 404 for
// an unknown id, the list, the request metrics, and the container healthcheck. It returns
// the item's path, whose GET requests must be in the logs.
func checkBackendContract(t *testing.T, srv *e2eutil.Proc, c contractCase) string {
	t.Helper()
	srv.WaitStatus(t, "/readyz", http.StatusOK)
	status, body, _ := srv.Do(t, "GET", "/readyz", "")
	wantChecks := map[string]string{"db": "ok"}
	if c.cache == "redis" {
		wantChecks["cache"] = "ok"
	}
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(body, &ready); status != http.StatusOK || err != nil || ready.Status != "ok" ||
		fmt.Sprint(ready.Checks) != fmt.Sprint(wantChecks) {
		t.Errorf("GET /readyz = %d %s, want 200 with checks %v", status, body, wantChecks)
	}

	if status, body, _ := srv.Do(t, "POST", "/api/items", `{"name":""}`); status != http.StatusBadRequest {
		t.Errorf("POST /api/items with an empty name = %d %s, want 400", status, body)
	}
	name := "gadget é " + c.db
	status, body, _ = srv.Do(t, "POST", "/api/items", `{"name":"`+name+`"}`)
	var created item
	if err := json.Unmarshal(body, &created); status != http.StatusCreated || err != nil || created.ID < 1 || created.Name != name {
		t.Fatalf("POST /api/items = %d %s, want 201 with the item", status, body)
	}
	if _, err := time.Parse(time.RFC3339, created.CreatedAt); err != nil {
		t.Errorf("created_at %q is not RFC 3339: %v", created.CreatedAt, err)
	}
	id := strconv.FormatInt(created.ID, 10)
	path := "/api/items/" + id
	wantCache := []string{"", ""}
	if c.cache == "redis" {
		wantCache = []string{"miss", "hit"}
		redisDel(t, c.redisDB, "item:"+id) // left by an earlier run
		t.Cleanup(func() { redisDel(t, c.redisDB, "item:"+id) })
	}
	for i, want := range wantCache {
		status, body, hdr := srv.Do(t, "GET", path, "")
		var got item
		if err := json.Unmarshal(body, &got); status != http.StatusOK || err != nil || got != created {
			t.Errorf("GET %s #%d = %d %s, want 200 %+v", path, i+1, status, body, created)
		}
		if hdr.Get("X-Cache") != want {
			t.Errorf("GET %s #%d: X-Cache = %q, want %q", path, i+1, hdr.Get("X-Cache"), want)
		}
	}
	if status, body, _ := srv.Do(t, "GET", "/api/items/999999", ""); status != http.StatusNotFound {
		t.Errorf("GET /api/items/999999 = %d %s, want 404", status, body)
	}
	status, body, _ = srv.Do(t, "GET", "/api/items", "")
	var list []item
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list) != 1 || list[0] != created {
		t.Errorf("GET /api/items = %d %s, want the one item", status, body)
	}

	checkMetrics(t, srv, c)

	// The container healthcheck (the compose and Dockerfile HEALTHCHECK command).
	if out, err := srv.Run(c.healthcheck...); err != nil {
		t.Errorf("%s against a serving backend: %v\n%s", strings.Join(c.healthcheck, " "), err, out)
	}
	return path
}

// checkMetrics requires /metrics to count the requests of checkBackendContract, by route
// pattern, and to have the duration histogram, each as a whole line in the format of the
// language's Prometheus client.
func checkMetrics(t *testing.T, srv *e2eutil.Proc, c contractCase) {
	t.Helper()
	count := strconv.Itoa
	if c.promFloat {
		count = func(n int) string { return strconv.Itoa(n) + ".0" }
	}
	bucket := `http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/items"} `
	if c.promLeLast {
		bucket = `http_request_duration_seconds_bucket{method="GET",route="/api/items",le="+Inf"} `
	}
	_, body, _ := srv.Do(t, "GET", "/metrics", "")
	lines := strings.Split(string(body), "\n")
	for _, want := range []string{
		`http_requests_total{method="POST",route="/api/items",status="201"} ` + count(1),
		`http_requests_total{method="POST",route="/api/items",status="400"} ` + count(1),
		`http_requests_total{method="GET",route="/api/items/{id}",status="200"} ` + count(2),
		`http_requests_total{method="GET",route="/api/items/{id}",status="404"} ` + count(1),
		bucket + count(1),
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("/metrics lacks the line %s", want)
		}
	}
}

// stopContractBackend stops the server with SIGTERM (exit 0 within c.stopWithin) and checks
// its logs (checkJSONLogs, and that MIGRATE_ON_START applied nothing) and that the
// healthcheck now fails. It returns the logs.
func stopContractBackend(t *testing.T, srv *e2eutil.Proc, c contractCase, path string) string {
	t.Helper()
	logs := srv.Stop(t, c.stopWithin)
	checkJSONLogs(t, logs, path, c.quietLogs)
	if strings.Contains(logs, `"msg":"migration applied"`) || !strings.Contains(logs, `"msg":"migrations up to date"`) {
		t.Errorf("MIGRATE_ON_START after migrate: want nothing applied, got:\n%s", logs)
	}
	if _, err := srv.Run(c.healthcheck...); err == nil {
		t.Errorf("%s succeeded after the backend stopped", strings.Join(c.healthcheck, " "))
	}
	return logs
}

// checkJSONLogs requires every output line to be a JSON object with time, level and msg,
// a request line for GET path with method, path, status 200 and duration_ms, and the
// shutdown line "stopped"; with quiet, no line at level warning or error (such as a
// shutdown that had to abandon requests).
func checkJSONLogs(t *testing.T, logs, path string, quiet bool) {
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
		if level, _ := rec["level"].(string); quiet && slices.Contains([]string{"warn", "warning", "error", "critical"}, strings.ToLower(level)) {
			t.Errorf("a clean run logged a %s: %s", level, sc.Text())
		}
	}
	if !sawRequest {
		t.Errorf("no request log line for GET %s with status and duration_ms in:\n%s", path, logs)
	}
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no shutdown log line in:\n%s", logs)
	}
}

// checkBackendDockerfile checks what can be checked of a backend's Dockerfile without a
// Docker daemon and the same for every language: the base image pinned once, in ARG
// imageArg, to a tag that matches pinned (described as tag); every FROM is ${imageArg} or an
// earlier stage; the sources of COPY exist; each of wants is in it. It returns the USER of
// the last stage, the runtime's, for the language's test to check.
func checkBackendDockerfile(t *testing.T, backend, imageArg string, pinned *regexp.Regexp, tag string, wants ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(backend, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var stages []string
	var lastUser string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ARG" && strings.HasPrefix(f[1], imageArg+"="):
			if img := strings.TrimPrefix(f[1], imageArg+"="); !pinned.MatchString(img) {
				t.Errorf("Dockerfile: base image %q is not a pinned %s tag", img, tag)
			}
		case len(f) >= 2 && f[0] == "FROM":
			if f[1] != "${"+imageArg+"}" && !slices.Contains(stages, f[1]) {
				t.Errorf("Dockerfile: FROM %s: want ${%s} (pinned once in ARG) or an earlier stage", f[1], imageArg)
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
	for _, want := range wants {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	return lastUser
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
