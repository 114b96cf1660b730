package delivery

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestScriptsSmokeMonitoring runs the smoke script against fakes of the application and of
// Prometheus, Alertmanager and Grafana: the monitoring checks run only when their URLs are
// set (in the environment or .env) and fail with the reason when a service is not healthy.
func TestScriptsSmokeMonitoring(t *testing.T) {
	e2eutil.RequireTool(t, "bash")
	e2eutil.RequireTool(t, "curl")
	dir := e2eutil.Generate(t, map[string]string{"frontend": "none"})
	app := httptest.NewServer((&fakeApp{items: map[int]string{}, ready: true}).handler())
	defer app.Close()
	ldFake := func(path string, status int, body string) *httptest.Server {
		mux := http.NewServeMux()
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		})
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		return s
	}
	prom := ldFake("/-/ready", 200, "Prometheus Server is Ready.\n")
	am := ldFake("/-/ready", 200, "OK")
	grafana := ldFake("/api/health", 200, `{"commit":"abc","database": "ok","version":"12.1.1"}`)
	grafanaDown := ldFake("/api/health", 503, `{"database":"failing"}`)
	promStarting := ldFake("/-/ready", 503, "Service Unavailable")

	t.Run("all set", func(t *testing.T) {
		out, code := runSmoke(t, dir, "BASE_URL="+app.URL, "PROMETHEUS_URL="+prom.URL+"/", "ALERTMANAGER_URL="+am.URL, "GRAFANA_URL="+grafana.URL)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, want := range []string{"PASS Prometheus GET /-/ready", "PASS Alertmanager GET /-/ready", "PASS Grafana GET /api/health", "OK: 8 checks passed"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "SKIP") {
			t.Errorf("a monitoring check was skipped although its URL was set:\n%s", out)
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", e2eutil.FreePort(t))
		out, code := runSmoke(t, dir, "BASE_URL="+app.URL, "PROMETHEUS_URL="+promStarting.URL, "ALERTMANAGER_URL="+url,
			"GRAFANA_URL="+grafanaDown.URL, "SMOKE_RETRIES=0")
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{"PASS GET /readyz", "FAIL Prometheus GET /-/ready: want 200", "got status 503",
			"FAIL Alertmanager GET /-/ready: want 200", "no response", "FAIL Grafana GET /api/health", `"database":"failing"`,
			"FAILED: 3 of 8 checks"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("from .env", func(t *testing.T) {
		d := e2eutil.Generate(t, map[string]string{"frontend": "none"})
		env := "BASE_URL=" + app.URL + "\nPROMETHEUS_URL='" + prom.URL + "'\n"
		if err := os.WriteFile(filepath.Join(d, ".env"), []byte(env), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runSmoke(t, d)
		if code != 0 || !strings.Contains(out, "PASS Prometheus GET /-/ready") || !strings.Contains(out, "SKIP Grafana GET /api/health: GRAFANA_URL is not set") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		for _, env := range []string{"SMOKE_TIMEOUT=ten", "SMOKE_TIMEOUT=0", "SMOKE_RETRIES=-1"} {
			out, code := runSmoke(t, dir, "BASE_URL="+app.URL, env)
			name, _, _ := strings.Cut(env, "=")
			if code != 2 || !strings.Contains(out, "smoke.sh: "+env+": want") {
				t.Errorf("%s: exit %d, want 2 with a message naming %s:\n%s", env, code, name, out)
			}
		}
	})
	t.Run("backend healthz with a frontend", func(t *testing.T) {
		withFrontend := e2eutil.Generate(t, map[string]string{"frontend": "react"})
		front := httptest.NewServer((&fakeApp{items: map[int]string{}, html: true, readyDoc: true}).handler())
		defer front.Close()
		back := httptest.NewServer((&fakeApp{items: map[int]string{}, ready: true}).handler())
		defer back.Close()
		out, code := runSmoke(t, withFrontend, "BASE_URL="+front.URL, "BACKEND_URL="+back.URL)
		for _, want := range []string{"PASS GET /healthz\n", "PASS GET / (frontend)", "PASS GET /healthz (backend)", "PASS GET /readyz", "OK: 7 checks"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("exit %d, output lacks %q:\n%s", code, want, out)
			}
		}
	})
}
