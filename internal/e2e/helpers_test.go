package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/project"
)

// generate renders the newest webapp version into a fresh temporary directory with the
// given answers over the blueprint defaults, and returns the directory.
func generate(t *testing.T, set map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := project.Create(project.CreateOptions{
		Dir:       dir,
		Blueprint: "webapp",
		Set:       set,
		Defaults:  true,
		Version:   "test",
	}); err != nil {
		t.Fatalf("generate %v: %v", set, err)
	}
	return dir
}

// inCI reports whether missing tools and servers must fail rather than skip.
func inCI() bool { return os.Getenv("CI") != "" }

// requireTool returns the path of an external program; under CI a missing one fails the test.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is not installed (run `make tools`)", name)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// requireServer checks that a local server answers on 127.0.0.1:port; under CI a missing one fails.
func requireServer(t *testing.T, name string, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		msg := fmt.Sprintf("%s is not running on 127.0.0.1:%d (run `make tools`): %v", name, port, err)
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c.Close()
}

// freePort asks the kernel for a free TCP port on the loopback interface.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scratchDB is a database and user created for one test and dropped after it.
type scratchDB struct {
	Engine, Host, Name, User, Password string
	Port                               int
}

// newScratchDB creates a uniquely named database and an owner for it on the local
// PostgreSQL ("postgres") or MariaDB ("mariadb"), and drops both when the test ends.
func newScratchDB(t *testing.T, engine string) scratchDB {
	t.Helper()
	suffix := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	db := scratchDB{Engine: engine, Host: "127.0.0.1", Name: "opsready_t_" + suffix,
		User: "opsready_u_" + suffix, Password: "pw_" + suffix}
	var admin, stmts, drops []string
	switch engine {
	case "postgres":
		db.Port = 5432
		requireServer(t, "PostgreSQL", db.Port)
		requireTool(t, "psql")
		admin = []string{"psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"}
		stmts = []string{
			fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", db.User, db.Password),
			fmt.Sprintf("CREATE DATABASE %s OWNER %s", db.Name, db.User),
		}
		drops = []string{
			fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db.Name),
			fmt.Sprintf("DROP ROLE IF EXISTS %s", db.User),
		}
	case "mariadb":
		db.Port = 3306
		requireServer(t, "MariaDB", db.Port)
		requireTool(t, "mariadb")
		admin = []string{"mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"}
		stmts = []string{
			fmt.Sprintf("CREATE DATABASE `%s`", db.Name),
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", db.User, db.Password),
			fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", db.Name, db.User),
		}
		drops = []string{
			fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", db.Name),
			fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", db.User),
		}
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	run := func(stmt string) error {
		out, err := exec.Command(admin[0], append(admin[1:], stmt)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", stmt, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	t.Cleanup(func() {
		for _, s := range drops {
			if err := run(s); err != nil {
				t.Errorf("drop scratch database: %v", err)
			}
		}
	})
	for _, s := range stmts {
		if err := run(s); err != nil {
			t.Fatalf("create scratch database: %v", err)
		}
	}
	return db
}

// runNpm runs npm in dir with a cache shared by all runs (OPSREADY_NPM_CACHE, or one under
// the user cache directory), so repeated runs skip downloads.
func runNpm(t *testing.T, dir string, args ...string) {
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
	cmd.Env = append(os.Environ(), "CI=true", "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
}

// syncBuffer is a bytes.Buffer safe for the copying goroutine of exec and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// httpClient is the client of the tests that talk to a server process.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// serverProc is a server process under test that listens on 127.0.0.1. It keeps what the
// process writes; the test's cleanup stops it (SIGTERM, then SIGKILL after 5 s) if it still
// runs, and shows its output if the test failed.
type serverProc struct {
	name   string // the program's base name, for messages
	cmd    *exec.Cmd
	base   string      // http://127.0.0.1:port
	out    *syncBuffer // stdout and stderr, or those of the two the command did not set
	exited chan struct{}
	err    error // the Wait result, set before exited is closed
}

// startProc starts cmd, which is to listen on 127.0.0.1:port.
func startProc(t *testing.T, cmd *exec.Cmd, port int) *serverProc {
	t.Helper()
	p := &serverProc{name: filepath.Base(cmd.Path), cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		out: &syncBuffer{}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if _, _, err := p.terminate(5 * time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out)
		}
	})
	return p
}

// do sends a request (a body is sent as JSON) and returns status, body and headers.
func (p *serverProc) do(t *testing.T, method, path, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s output:\n%s", method, path, err, p.name, p.out)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, got, resp.Header
}

// waitStatus polls GET path until it answers want, for at most 30 seconds.
func (p *serverProc) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("%s exited early (%v):\n%s", p.name, p.err, p.out)
		default:
		}
		resp, err := httpClient.Get(p.base + path)
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
	t.Fatalf("GET %s never answered %d (last: %s); %s output:\n%s", path, want, last, p.name, p.out)
}

// terminate sends SIGTERM and waits up to within for the process to end. It returns the exit
// code (-1 when a signal ended it) and how long the process took, or an error when it still runs.
func (p *serverProc) terminate(within time.Duration) (code int, took time.Duration, err error) {
	start := time.Now()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), 0, nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		select {
		case <-p.exited: // it ended by itself in the meantime
			return p.cmd.ProcessState.ExitCode(), 0, nil
		case <-time.After(time.Second):
			return -1, 0, fmt.Errorf("SIGTERM %s: %v", p.name, err)
		}
	}
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), time.Since(start), nil
	case <-time.After(within):
		return -1, within, fmt.Errorf("%s still running %s after SIGTERM", p.name, within)
	}
}

// stop stops the server the way its orchestrator does: with an idle keep-alive connection
// open (which the server must not wait for), SIGTERM, then exit status 0 within within
// (SHUTDOWN_TIMEOUT plus slack). It returns the server's output.
func (p *serverProc) stop(t *testing.T, within time.Duration) string {
	t.Helper()
	p.do(t, "GET", "/healthz", "") // leaves an idle keep-alive connection in httpClient
	code, took, err := p.terminate(within)
	if err != nil {
		t.Fatalf("%v:\n%s", err, p.out)
	}
	if code != 0 || p.err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want 0:\n%s", p.name, p.err, p.out)
	}
	t.Logf("%s stopped %s after SIGTERM", p.name, took.Round(time.Millisecond))
	return p.out.String()
}

// run runs argv to completion in the server's folder with the server's environment (so
// with its PORT) and returns its output.
func (p *serverProc) run(argv ...string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.cmd.Dir
	cmd.Env = p.cmd.Env
	return cmd.CombinedOutput()
}
