package tuning

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// tunPgBin holds the PostgreSQL server programs the tests start their own instances with.
const tunPgBin = "/usr/lib/postgresql/15/bin"

// tunDBCommand generates a project with set and returns the db service's command in
// production, as docker compose loads it.
func tunDBCommand(t testing.TB, set map[string]string) []string {
	t.Helper()
	dir := e2eutil.Generate(t, set)
	// Production runs all four files; compose.backup.yaml's db (WAL archiving) replaces the
	// command of compose.prod.yaml's.
	files := append(slices.Clone(e2eutil.MonitoringFiles), "compose.backup.yaml")
	p, err := e2eutil.LoadCompose(dir, e2eutil.ProdEnv(), "", files...)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	s, ok := p.Services["db"]
	if !ok || len(s.Command) == 0 {
		t.Fatalf("compose.prod.yaml: db has no command (the tuned settings): %+v", s.Command)
	}
	return s.Command
}

// tunCgroup makes a memory cgroup (v1) limited to bytes and returns its cgroup.procs file:
// a process that writes its pid there before it execs the server runs inside the limit.
func tunCgroup(t testing.TB, bytes int64) string {
	t.Helper()
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		e2eutil.Unavailable(t, "no memory cgroup (v1) at "+root+": the servers cannot be limited to the quota")
	}
	dir, err := os.MkdirTemp(root, "opsready-tun-")
	if err != nil {
		t.Fatalf("memory cgroup: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(bytes, 10)), 0o644); err != nil {
		t.Fatalf("memory cgroup limit: %v", err)
	}
	t.Cleanup(func() {
		// The servers are stopped by cleanups registered after this one (run first).
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("memory cgroup %s still in use", dir)
	})
	return filepath.Join(dir, "cgroup.procs")
}

// tunOOMKills reads how often the cgroup's limit was hit and whether the kernel killed in it.
func tunOOMKills(procs string) string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(procs), "memory.oom_control"))
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ", ")
}

// tunDir is a folder the system user may use (t.TempDir's parents are root's).
func tunDir(t testing.TB, owner string) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "tun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	u, err := user.Lookup(owner)
	if err != nil {
		e2eutil.Unavailable(t, fmt.Sprintf("system user %s: %v", owner, err))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	return d
}

// tunServer is a server process the test started, stopped at the end of the test.
type tunServer struct {
	cmd  *exec.Cmd
	log  string // its output
	done chan struct{}
}

// tail is the end of the server's output, for failure messages.
func (s *tunServer) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// exited says whether the server has stopped.
func (s *tunServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// tunStart starts argv as user inside the cgroup whose procs file is procs: a root shell
// joins the cgroup, then setpriv drops to the user and execs the server (children inherit
// the cgroup, so the whole server counts against the limit).
func tunStart(t testing.TB, user, procs, logFile string, argv []string) *tunServer {
	t.Helper()
	e2eutil.RequireTool(t, "setpriv")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	script := `echo $$ > "$1" && shift && exec setpriv --reuid="$1" --regid="$1" --init-groups -- "${@:2}"`
	cmd := exec.Command("bash", append([]string{"-c", script, "bash", procs, user}, argv...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	s := &tunServer{cmd: cmd, log: logFile}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.done = done
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends the server (SIGTERM: a clean shutdown; SIGKILL after 2 minutes) and waits for it.
func (s *tunServer) stop(t testing.TB) {
	if s.exited() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		t.Errorf("the server did not stop in 2 minutes after SIGTERM: killed")
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
