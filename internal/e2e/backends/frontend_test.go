package backends

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// The frontend tests build the generated frontend and serve it with the generated nginx.conf,
// using Debian's nginx in place of the container's, with a Go test server standing in for
// the backend.

const feName = "e2e-shop"

// TestFrontendReact installs, tests and builds the React app with npm, then serves dist/.
func TestFrontendReact(t *testing.T) {
	nginx := e2eutil.RequireTool(t, "nginx")
	e2eutil.RequireTool(t, "npm")
	dir := e2eutil.Generate(t, map[string]string{"name": feName, "frontend": "react"})
	fe := filepath.Join(dir, "frontend")
	feCheckDockerfile(t, fe)

	e2eutil.NodeModules(t, fe) // npm ci, once per distinct lock file
	e2eutil.RunNpm(t, fe, "test")
	e2eutil.RunNpm(t, fe, "run", "build")

	dist := filepath.Join(fe, "dist")
	index, err := os.ReadFile(filepath.Join(dist, "index.html"))
	if err != nil {
		t.Fatalf("build wrote no index.html: %v", err)
	}
	assets := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(string(index), -1)
	var script string
	for _, m := range assets {
		if _, err := os.Stat(filepath.Join(dist, m[1])); err != nil {
			t.Errorf("dist/index.html references %s: %v", m[1], err)
		}
		if strings.HasSuffix(m[1], ".js") {
			script = m[1]
		}
	}
	if script == "" {
		t.Fatalf("dist/index.html references no built script under /assets/:\n%s", index)
	}

	feCheckNginx(t, nginx, fe, dist, feCase{
		spa:         true,
		asset:       script,
		assetCache:  "public, max-age=31536000, immutable",
		missingPage: http.StatusOK,
	})
}

// TestFrontendStatic serves the static site as generated.
func TestFrontendStatic(t *testing.T) {
	nginx := e2eutil.RequireTool(t, "nginx")
	dir := e2eutil.Generate(t, map[string]string{"name": feName, "frontend": "static"})
	fe := filepath.Join(dir, "frontend")
	feCheckDockerfile(t, fe)
	for _, f := range []string{"index.html", "favicon.svg", "css/site.css", "js/app.js"} {
		if _, err := os.Stat(filepath.Join(fe, f)); err != nil {
			t.Errorf("static site: %v", err)
		}
	}
	feCheckNginx(t, nginx, fe, fe, feCase{
		asset:       "/js/app.js",
		assetCache:  "no-cache",
		missingPage: http.StatusNotFound,
	})
}

// TestFrontendNginxConfigsIdentical keeps the two frontends' nginx configurations one
// file: they differ only where the template asks .frontend.
func TestFrontendNginxConfigsIdentical(t *testing.T) {
	reacts, err := filepath.Glob(e2eutil.RepoPath(t, "blueprints/*/*/files/frontend-react/nginx.conf.tmpl"))
	if err != nil || len(reacts) == 0 {
		t.Fatalf("no frontend-react/nginx.conf.tmpl found: %v", err)
	}
	for _, r := range reacts {
		s := filepath.Join(filepath.Dir(filepath.Dir(r)), "frontend-static", "nginx.conf.tmpl")
		a, err := os.ReadFile(r)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ; keep them identical (branch on .frontend inside)", r, s)
		}
	}
}

// feCase is what differs between the frontends when served.
type feCase struct {
	spa         bool   // unknown paths serve index.html
	asset       string // a script the page loads
	assetCache  string // its Cache-Control
	missingPage int    // status for /some/spa/route
}

// feCheckDockerfile checks what cannot run here: images pinned to a version, the config
// installed where the image reads it and the healthcheck on /healthz.
func feCheckDockerfile(t *testing.T, fe string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fe, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	pinned := regexp.MustCompile(`^FROM \S+:\d+\.\d+\.\d+-alpine\b`)
	for _, line := range strings.Split(df, "\n") {
		if strings.HasPrefix(line, "FROM ") && !pinned.MatchString(line) {
			t.Errorf("Dockerfile: image not pinned to an exact version: %s", line)
		}
	}
	for _, want := range []string{
		"FROM nginxinc/nginx-unprivileged:",
		"COPY nginx.conf /etc/nginx/conf.d/default.conf",
		"EXPOSE 8080",
		"HEALTHCHECK ",
		"wget -q -O /dev/null http://127.0.0.1:8080/healthz",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// feBackend stands in for the backend and records what reached it.
type feBackend struct {
	mu       sync.Mutex
	requests []feRequest
}

type feRequest struct {
	Method, Path, Query, Body string
	Header                    http.Header
}

func (b *feBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.requests = append(b.requests, feRequest{r.Method, r.URL.Path, r.URL.RawQuery, string(body), r.Header.Clone()})
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/items":
		fmt.Fprint(w, `[{"id":1,"name":"first","created_at":"2026-01-01T00:00:00Z"}]`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/items":
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":2,"name":"second","created_at":"2026-01-01T00:00:01Z"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"not found"}`)
	}
}

func (b *feBackend) last() feRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) == 0 {
		return feRequest{}
	}
	return b.requests[len(b.requests)-1]
}

// feCheckNginx serves root with fe/nginx.conf and checks health, pages, caching, headers,
// the API proxy and the access log.
func feCheckNginx(t *testing.T, nginx, fe, root string, c feCase) {
	conf, err := os.ReadFile(filepath.Join(fe, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("starts without backend", func(t *testing.T) {
		// The upstream stays "backend": nginx must start although the name does not resolve.
		base, _ := feStartNginx(t, nginx, feRewriteConf(t, string(conf), e2eutil.FreePort(t), root, ""))
		feGet(t, base+"/healthz", http.StatusOK)
	})

	backend := &feBackend{}
	api := httptest.NewServer(backend)
	t.Cleanup(api.Close)
	base, accessLog := feStartNginx(t, nginx, feRewriteConf(t, string(conf), e2eutil.FreePort(t), root, api.URL))

	t.Run("healthz", func(t *testing.T) {
		res, body := feGet(t, base+"/healthz", http.StatusOK)
		if strings.TrimSpace(body) != "ok" {
			t.Errorf("GET /healthz body = %q, want ok", body)
		}
		feHeader(t, res, "Cache-Control", "no-store")
	})

	t.Run("index", func(t *testing.T) {
		for _, path := range []string{"/", "/index.html"} {
			res, body := feGet(t, base+path, http.StatusOK)
			if !strings.Contains(body, "<title>"+feName+"</title>") {
				t.Errorf("GET %s is not the index page:\n%s", path, body)
			}
			feHeader(t, res, "Cache-Control", "no-cache")
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("GET %s Content-Type = %q", path, ct)
			}
			feHeader(t, res, "Server", "nginx")
			feHeader(t, res, "X-Content-Type-Options", "nosniff")
			feHeader(t, res, "X-Frame-Options", "DENY")
			feHeader(t, res, "Referrer-Policy", "strict-origin-when-cross-origin")
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("GET %s Content-Security-Policy = %q", path, csp)
			}
		}
	})

	t.Run("asset", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+c.asset, nil)
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: the client then leaves the body compressed
		res := feDo(t, req, http.StatusOK)
		feHeader(t, res, "Cache-Control", c.assetCache)
		feHeader(t, res, "Content-Encoding", "gzip")
		if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
			t.Errorf("GET %s Content-Type = %q", c.asset, ct)
		}
	})

	t.Run("missing", func(t *testing.T) {
		res, body := feGet(t, base+"/some/spa/route", c.missingPage)
		if c.spa && !strings.Contains(body, "<title>"+feName+"</title>") {
			t.Errorf("GET /some/spa/route is not index.html:\n%s", body)
		}
		if c.spa {
			feHeader(t, res, "Cache-Control", "no-cache")
		}
		res, _ = feGet(t, base+"/assets/missing-0123abcd.js", http.StatusNotFound)
		feHeader(t, res, "Cache-Control", "")
		feHeader(t, res, "X-Content-Type-Options", "nosniff")
	})

	t.Run("api", func(t *testing.T) {
		res, body := feGet(t, base+"/api/items?limit=5", http.StatusOK)
		var items []map[string]any
		if err := json.Unmarshal([]byte(body), &items); err != nil || len(items) != 1 || items[0]["name"] != "first" {
			t.Errorf("GET /api/items = %s (%v), want the fake backend's list", body, err)
		}
		feHeader(t, res, "Cache-Control", "")
		got := backend.last()
		if got.Method != http.MethodGet || got.Path != "/api/items" || got.Query != "limit=5" {
			t.Errorf("backend got %s %s?%s, want GET /api/items?limit=5", got.Method, got.Path, got.Query)
		}
		if got.Header.Get("X-Forwarded-For") == "" || got.Header.Get("X-Request-Id") == "" {
			t.Errorf("backend got no X-Forwarded-For or X-Request-ID: %v", got.Header)
		}
		if host := got.Header.Get("X-Forwarded-Proto"); host != "http" {
			t.Errorf("backend got X-Forwarded-Proto %q, want http", host)
		}

		res, err := http.Post(base+"/api/items", "application/json", strings.NewReader(`{"name":"second"}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Errorf("POST /api/items = %d, want 201", res.StatusCode)
		}
		if got := backend.last(); got.Method != http.MethodPost || got.Body != `{"name":"second"}` {
			t.Errorf("backend got %s %q, want POST {\"name\":\"second\"}", got.Method, got.Body)
		}
	})

	t.Run("access log", func(t *testing.T) {
		var found bool
		sc := bufio.NewScanner(strings.NewReader(accessLog.String()))
		for sc.Scan() {
			var e struct {
				Time, Level, Msg, Method, Path string
				Status                         int
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("access log line is not JSON: %v: %s", err, sc.Text())
				continue
			}
			if e.Time == "" || e.Level != "info" || e.Msg != "request" {
				t.Errorf("access log line lacks time, level or msg: %s", sc.Text())
			}
			if e.Path == "/healthz" {
				t.Errorf("health checks are logged: %s", sc.Text())
			}
			if e.Method == "GET" && e.Path == "/api/items" && e.Status == 200 {
				found = true
			}
		}
		if !found {
			t.Errorf("access log has no GET /api/items 200 (query stripped):\n%s", accessLog.String())
		}
	})
}

// feRewriteConf makes the generated config runnable outside the container: it listens
// on 127.0.0.1:port, serves root and, when backendURL is set, proxies /api/ there. Each
// replaced line must occur exactly once, so a changed config fails here rather than
// testing something else.
func feRewriteConf(t *testing.T, conf string, port int, root, backendURL string) string {
	t.Helper()
	replace := func(old, new string) {
		if n := strings.Count(conf, old); n != 1 {
			t.Fatalf("nginx.conf: %q occurs %d times, want 1", old, n)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	replace("listen 8080;", fmt.Sprintf("listen 127.0.0.1:%d;", port))
	replace("root /usr/share/nginx/html;", fmt.Sprintf("root %q;", root))
	if backendURL != "" {
		replace(`set $backend_url "http://backend:8080";`, fmt.Sprintf("set $backend_url %q;", backendURL))
	}
	return conf
}

// feStartNginx runs nginx in the foreground with server (the frontend's conf.d file) inside a
// main configuration like the image's, but with every path in a temporary prefix. It
// returns the base URL and the output that nginx writes to stdout (the access log).
func feStartNginx(t *testing.T, nginx, server string) (string, *e2eutil.SyncBuffer) {
	t.Helper()
	prefix := t.TempDir()
	port, _ := strconv.Atoi(regexp.MustCompile(`listen 127\.0\.0\.1:(\d+);`).FindStringSubmatch(server)[1])
	if err := os.WriteFile(filepath.Join(prefix, "default.conf"), []byte(server), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers would run as nobody and not read the 0700 temporary dirs
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]q;
error_log stderr notice;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path %[3]q;
    proxy_temp_path %[4]q;
    fastcgi_temp_path %[5]q;
    uwsgi_temp_path %[6]q;
    scgi_temp_path %[7]q;
    include %[8]q;
}
`, user, filepath.Join(prefix, "nginx.pid"), filepath.Join(prefix, "body"), filepath.Join(prefix, "proxy"),
		filepath.Join(prefix, "fastcgi"), filepath.Join(prefix, "uwsgi"), filepath.Join(prefix, "scgi"),
		filepath.Join(prefix, "default.conf"))
	mainPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", prefix, "-c", mainPath, "-e", "stderr"}
	if out, err := exec.Command(nginx, append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}

	cmd := exec.Command(nginx, append(args, "-g", "daemon off;")...)
	accessLog := &e2eutil.SyncBuffer{}
	cmd.Stdout = accessLog // the process's output is then stderr, the error log
	p := e2eutil.StartProc(t, cmd, port)
	p.WaitStatus(t, "/healthz", http.StatusOK)
	return p.Base, accessLog
}

func feGet(t *testing.T, url string, want int) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := feDo(t, req, want)
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// feDo sends req and checks the status; the body is left for the caller, closed at cleanup.
func feDo(t *testing.T, req *http.Request, want int) *http.Response {
	t.Helper()
	res, err := e2eutil.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != want {
		t.Errorf("%s %s = %d, want %d", req.Method, req.URL.Path, res.StatusCode, want)
	}
	return res
}

func feHeader(t *testing.T, res *http.Response, key, want string) {
	t.Helper()
	if got := res.Header.Get(key); got != want {
		t.Errorf("%s %s: %s = %q, want %q", res.Request.Method, res.Request.URL.Path, key, got, want)
	}
}
