package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	maxNameLen   = 200     // characters, as in the items.name column
	maxBodyBytes = 1 << 16 // request bodies larger than this are rejected
	listLimit    = 100     // GET /api/items returns at most this many items
	readyTimeout = 2 * time.Second
)

// app holds the dependencies of the HTTP handlers.
type app struct {
	store   Store
	metrics *metrics
	logger  *slog.Logger
}

// routes returns the handler for every endpoint, wrapped in logging and metrics.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", a.metrics.handler())
	mux.HandleFunc("POST /api/items", a.createItem)
	mux.HandleFunc("GET /api/items", a.listItems)
	mux.HandleFunc("GET /api/items/{id}", a.getItem)
	return a.observe(mux)
}

// healthz is the liveness probe: the process serves requests.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz is the readiness probe: the database answer.
func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	res := readiness{Status: "ok", Checks: map[string]string{}}
	check := func(name string, err error) {
		if err != nil {
			res.Status = "unavailable"
			res.Checks[name] = err.Error()
			a.logger.Warn("readiness check failed", "check", name, "error", err)
			return
		}
		res.Checks[name] = "ok"
	}
	check("db", a.store.Ping(ctx))
	status := http.StatusOK
	if res.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, res)
}

type createItemRequest struct {
	Name string `json:"name"`
}

func (a *app) createItem(w http.ResponseWriter, r *http.Request) {
	var req createItemRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if n := utf8.RuneCountInString(req.Name); n < 1 || n > maxNameLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("name must be 1 to %d characters", maxNameLen))
		return
	}
	it, err := a.store.CreateItem(r.Context(), req.Name)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/items/"+strconv.FormatInt(it.ID, 10))
	writeJSON(w, http.StatusCreated, it)
}

func (a *app) listItems(w http.ResponseWriter, r *http.Request) {
	items, err := a.store.ListItems(r.Context(), listLimit)
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

func (a *app) getItem(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	it, err := a.store.GetItem(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if err != nil {
		a.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

// internalError logs err and answers 500 without exposing it.
func (a *app) internalError(w http.ResponseWriter, r *http.Request, err error) {
	a.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing left to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// observe logs every request as one JSON line and records it in the metrics. Probe and
// metrics requests are logged at debug level so they do not drown the rest.
func (a *app) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.logger.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "internal error")
				} else {
					rec.status = http.StatusInternalServerError
				}
			}
			elapsed := time.Since(start)
			// ServeMux sets r.Pattern on the request it was given, which is r.
			route := routeLabel(r.Pattern)
			a.metrics.observe(r.Method, route, rec.status, elapsed)
			level := slog.LevelInfo
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			a.logger.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeLabel turns a ServeMux pattern like "GET /api/items/{id}" into the route label
// "/api/items/{id}"; requests that matched no pattern share the label "unmatched".
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status = code
		s.wrote = true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
