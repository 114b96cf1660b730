package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHealthcheckCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	var out, errOut bytes.Buffer
	if code := run([]string{"healthcheck"}, env(map[string]string{"PORT": port}), &out, &errOut); code != 0 {
		t.Errorf("healthcheck against a healthy server = %d (%s), want 0", code, errOut.String())
	}

	srv.Close()
	if code := run([]string{"healthcheck"}, env(map[string]string{"PORT": port}), &out, &errOut); code != 1 {
		t.Errorf("healthcheck against a stopped server = %d, want 1", code)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, env(nil), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("run(frobnicate) = %d, stderr %q; want 2 and the usage", code, errOut.String())
	}
}

func TestInvalidConfigExits2(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, env(map[string]string{"PORT": "x"}), &out, &errOut); code != 2 || !strings.Contains(out.String(), "PORT") {
		t.Errorf("run with PORT=x = %d, log %q; want 2 and a log line naming PORT", code, out.String())
	}
}

// TestServeShutsDownGracefully runs the real server (the pools connect lazily, so no
// database is needed), then cancels its context as SIGTERM would.
func TestServeShutsDownGracefully(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg, err := loadConfig(env(map[string]string{"PORT": strconv.Itoa(port), "DB_HOST": "127.0.0.1", "SHUTDOWN_TIMEOUT": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cancel, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil))) }()

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v", err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
}
