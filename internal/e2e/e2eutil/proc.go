package e2eutil

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for the copying goroutine of exec and the test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// HTTPClient is the client of the tests that talk to a server process.
var HTTPClient = &http.Client{Timeout: 10 * time.Second}

// Proc is a server process under test that listens on 127.0.0.1. It keeps what the
// process writes; the test's cleanup stops it (SIGTERM, then SIGKILL after 5 s) if it still
// runs, and shows its output if the test failed.
type Proc struct {
	Name   string // the program's base name, for messages
	Cmd    *exec.Cmd
	Base   string      // http://127.0.0.1:port
	Out    *SyncBuffer // stdout and stderr, or those of the two the command did not set
	Exited chan struct{}
	Err    error // the Wait result, set before Exited is closed
}

// StartProc starts cmd, which is to listen on 127.0.0.1:port.
func StartProc(t testing.TB, cmd *exec.Cmd, port int) *Proc {
	t.Helper()
	p := &Proc{Name: filepath.Base(cmd.Path), Cmd: cmd, Base: fmt.Sprintf("http://127.0.0.1:%d", port),
		Out: &SyncBuffer{}, Exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	go func() {
		p.Err = cmd.Wait()
		close(p.Exited)
	}()
	t.Cleanup(func() {
		if _, _, err := p.Terminate(5 * time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-p.Exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.Out)
		}
	})
	return p
}

// Do sends a request (a body is sent as JSON) and returns status, body and headers.
func (p *Proc) Do(t testing.TB, method, path, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := HTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s output:\n%s", method, path, err, p.Name, p.Out)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, got, resp.Header
}

// WaitStatus polls GET path until it answers want, for at most 30 seconds.
func (p *Proc) WaitStatus(t testing.TB, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited:
			t.Fatalf("%s exited early (%v):\n%s", p.Name, p.Err, p.Out)
		default:
		}
		resp, err := HTTPClient.Get(p.Base + path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s never answered %d (last: %s); %s output:\n%s", path, want, last, p.Name, p.Out)
}

// Terminate sends SIGTERM and waits up to within for the process to end. It returns the exit
// code (-1 when a signal ended it) and how long the process took, or an error when it still runs.
func (p *Proc) Terminate(within time.Duration) (code int, took time.Duration, err error) {
	start := time.Now()
	select {
	case <-p.Exited:
		return p.Cmd.ProcessState.ExitCode(), 0, nil
	default:
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		select {
		case <-p.Exited: // it ended by itself in the meantime
			return p.Cmd.ProcessState.ExitCode(), 0, nil
		case <-time.After(time.Second):
			return -1, 0, fmt.Errorf("SIGTERM %s: %w", p.Name, err)
		}
	}
	select {
	case <-p.Exited:
		return p.Cmd.ProcessState.ExitCode(), time.Since(start), nil
	case <-time.After(within):
		return -1, within, fmt.Errorf("%s still running %s after SIGTERM", p.Name, within)
	}
}

// Stop stops the server the way its orchestrator does: with an idle keep-alive connection
// open (which the server must not wait for), SIGTERM, then exit status 0 within within
// (SHUTDOWN_TIMEOUT plus slack). It returns the server's output.
func (p *Proc) Stop(t testing.TB, within time.Duration) string {
	t.Helper()
	p.Do(t, "GET", "/healthz", "") // leaves an idle keep-alive connection in HTTPClient
	code, took, err := p.Terminate(within)
	if err != nil {
		t.Fatalf("%v:\n%s", err, p.Out)
	}
	if code != 0 || p.Err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want 0:\n%s", p.Name, p.Err, p.Out)
	}
	t.Logf("%s stopped %s after SIGTERM", p.Name, took.Round(time.Millisecond))
	return p.Out.String()
}

// Run runs argv to completion in the server's folder with the server's environment (so
// with its PORT) and returns its output.
func (p *Proc) Run(argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.Cmd.Dir
	cmd.Env = p.Cmd.Env
	return cmd.CombinedOutput()
}
