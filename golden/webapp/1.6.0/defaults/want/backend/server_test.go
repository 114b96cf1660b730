package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeStore is an in-memory Store.
type fakeStore struct {
	mu      sync.Mutex
	items   []Item
	pingErr error
	failErr error // returned by every other method when set
}

func (f *fakeStore) Ping(context.Context) error { return f.pingErr }

func (f *fakeStore) CreateItem(_ context.Context, name string) (Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return Item{}, f.failErr
	}
	it := Item{ID: int64(len(f.items) + 1), Name: name, CreatedAt: time.Now().UTC()}
	f.items = append(f.items, it)
	return it, nil
}

func (f *fakeStore) ListItems(_ context.Context, limit int) ([]Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return nil, f.failErr
	}
	items := []Item{}
	for i := len(f.items) - 1; i >= 0 && len(items) < limit; i-- {
		items = append(items, f.items[i])
	}
	return items, nil
}

func (f *fakeStore) GetItem(_ context.Context, id int64) (Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failErr != nil {
		return Item{}, f.failErr
	}
	if id < 1 || id > int64(len(f.items)) {
		return Item{}, ErrNotFound
	}
	return f.items[id-1], nil
}

type testApp struct {
	store   *fakeStore
	handler http.Handler
}

func newTestApp(t *testing.T) *testApp {
	t.Helper()
	ta := &testApp{store: &fakeStore{}}
	a := &app{
		store:   ta.store,
		metrics: newMetrics(),
		logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	ta.handler = a.routes()
	return ta
}

// do sends a request to the handler and returns the response.
func (ta *testApp) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	rec := httptest.NewRecorder()
	ta.handler.ServeHTTP(rec, httptest.NewRequest(method, path, r))
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	return v
}

func TestHealthz(t *testing.T) {
	ta := newTestApp(t)
	rec := ta.do(t, "GET", "/healthz", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("GET /healthz = %d %s", rec.Code, rec.Body)
	}
}

func TestReadyz(t *testing.T) {
	ta := newTestApp(t)
	rec := ta.do(t, "GET", "/readyz", "")
	got := decode[readiness](t, rec)
	if rec.Code != http.StatusOK || got.Status != "ok" || got.Checks["db"] != "ok" {
		t.Errorf("GET /readyz = %d %s, want 200 and every check ok", rec.Code, rec.Body)
	}

	ta.store.pingErr = errors.New("connection refused")
	rec = ta.do(t, "GET", "/readyz", "")
	got = decode[readiness](t, rec)
	if rec.Code != http.StatusServiceUnavailable || got.Checks["db"] != "connection refused" {
		t.Errorf("GET /readyz with the database down = %d %s, want 503 with the error", rec.Code, rec.Body)
	}
}

func TestCreateItem(t *testing.T) {
	tests := []struct {
		name, body string
		wantCode   int
	}{
		{"ok", `{"name":"first"}`, http.StatusCreated},
		{"200 characters", `{"name":"` + strings.Repeat("é", 200) + `"}`, http.StatusCreated},
		{"201 characters", `{"name":"` + strings.Repeat("a", 201) + `"}`, http.StatusBadRequest},
		{"empty name", `{"name":""}`, http.StatusBadRequest},
		{"no name", `{}`, http.StatusBadRequest},
		{"not JSON", `name=first`, http.StatusBadRequest},
		{"wrong type", `{"name":42}`, http.StatusBadRequest},
		{"no body", ``, http.StatusBadRequest},
		{"too large", `{"name":"` + strings.Repeat("a", maxBodyBytes) + `"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ta := newTestApp(t)
			rec := ta.do(t, "POST", "/api/items", tt.body)
			if rec.Code != tt.wantCode {
				t.Fatalf("POST /api/items %s = %d %s, want %d", tt.body, rec.Code, rec.Body, tt.wantCode)
			}
			if rec.Code != http.StatusCreated {
				if msg := decode[map[string]string](t, rec)["error"]; msg == "" {
					t.Errorf("error response %s has no error message", rec.Body)
				}
				return
			}
			it := decode[Item](t, rec)
			if it.ID != 1 || it.CreatedAt.IsZero() || rec.Header().Get("Location") != "/api/items/1" {
				t.Errorf("created %+v, Location %q", it, rec.Header().Get("Location"))
			}
		})
	}
}

func TestCreateItemStoreError(t *testing.T) {
	ta := newTestApp(t)
	ta.store.failErr = errors.New("disk full")
	rec := ta.do(t, "POST", "/api/items", `{"name":"x"}`)
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "disk full") {
		t.Errorf("POST with a failing store = %d %s, want 500 without the cause", rec.Code, rec.Body)
	}
}

func TestListItems(t *testing.T) {
	ta := newTestApp(t)
	rec := ta.do(t, "GET", "/api/items", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Fatalf("GET /api/items on an empty store = %d %s, want 200 []", rec.Code, rec.Body)
	}
	for _, name := range []string{"a", "b", "c"} {
		ta.do(t, "POST", "/api/items", `{"name":"`+name+`"}`)
	}
	items := decode[[]Item](t, ta.do(t, "GET", "/api/items", ""))
	var names []string
	for _, it := range items {
		names = append(names, it.Name)
	}
	if strings.Join(names, ",") != "c,b,a" {
		t.Errorf("GET /api/items names = %v, want newest first", names)
	}
}

func TestGetItem(t *testing.T) {
	ta := newTestApp(t)
	ta.do(t, "POST", "/api/items", `{"name":"first"}`)

	rec := ta.do(t, "GET", "/api/items/1", "")
	if it := decode[Item](t, rec); rec.Code != http.StatusOK || it.Name != "first" {
		t.Errorf("GET /api/items/1 = %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/api/items/2", "/api/items/0", "/api/items/abc"} {
		rec := ta.do(t, "GET", path, "")
		if rec.Code != http.StatusNotFound || strings.TrimSpace(rec.Body.String()) != `{"error":"not found"}` {
			t.Errorf("GET %s = %d %s, want 404", path, rec.Code, rec.Body)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	ta := newTestApp(t)
	if rec := ta.do(t, "DELETE", "/api/items", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /api/items = %d, want 405", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	ta := newTestApp(t)
	ta.do(t, "POST", "/api/items", `{"name":"first"}`)
	ta.do(t, "GET", "/api/items/1", "")
	ta.do(t, "GET", "/nope", "")
	body := ta.do(t, "GET", "/metrics", "").Body.String()
	for _, want := range []string{
		`http_requests_total{method="POST",route="/api/items",status="201"} 1`,
		`http_requests_total{method="GET",route="/api/items/{id}",status="200"} 1`,
		`http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`http_request_duration_seconds_count{method="GET",route="/api/items/{id}"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRouteLabel(t *testing.T) {
	for pattern, want := range map[string]string{
		"GET /api/items/{id}": "/api/items/{id}",
		"/static/":            "/static/",
		"":                    "unmatched",
	} {
		if got := routeLabel(pattern); got != want {
			t.Errorf("routeLabel(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestRecoverPanics(t *testing.T) {
	a := &app{metrics: newMetrics(), logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	h := a.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("panicking handler = %d, want 500", rec.Code)
	}
}
