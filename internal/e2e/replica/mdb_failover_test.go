package replica

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestRmdFailover runs the generated MariaDB replica for real, asynchronous and
// semi-synchronous (db_sync_commit): two mariadbd of its own configured from compose.prod.yaml,
// the replica seeded by the generated replica-seed.sh, writes through the generated Go
// backend, the primary SIGKILLed, the generated failover.sh, writes again through a backend
// pointed where compose.yaml reads .env, the acknowledged rows counted on the new primary,
// then rejoin.sh and the old primary replicating.
func TestRmdFailover(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run("sync_commit="+strconv.FormatBool(sync), func(t *testing.T) { rmdFailover(t, sync) })
	}
}

func rmdFailover(t *testing.T, syncCommit bool) {
	c := rmdNewCluster(t, map[string]string{"db_sync_commit": strconv.FormatBool(syncCommit)})
	c.start(rmdNodeA)
	c.bootstrap(rmdNodeA, true)
	c.start(rmdNodeB)
	c.bootstrap(rmdNodeB, false)
	if got := c.primaryFromCompose(); got != "db" {
		t.Errorf("a new project's backend DB_HOST = %q, want db", got)
	}
	semi := c.sql(rmdNodeA, "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point, @@gtid_strict_mode, @@log_slave_updates")
	if want := map[bool]string{true: "1\tAFTER_SYNC\t1\t1", false: "0\tAFTER_COMMIT\t1\t1"}[syncCommit]; semi != want {
		t.Errorf("primary settings (semi-sync, wait point, gtid_strict_mode, log_slave_updates) = %q, want %q", semi, want)
	}
	c.seed(rmdNodeB, rmdNodeA)
	if syncCommit {
		c.waitSemiSync(rmdNodeA)
	}
	if out, code := c.health(rmdNodeB); code != 0 {
		t.Errorf("replica-health.sh on a running replica: exit %d: %s", code, out)
	}

	// The generated backend on the primary, as compose.yaml configures it (DB_HOST from .env).
	bin := e2eutil.GoBinary(t, filepath.Join(c.proj, "backend"), "server")
	backendEnv := func(dbHost string) []string {
		return append(os.Environ(), "DB_HOST="+dbHost, "DB_PORT="+strconv.Itoa(c.port), "DB_NAME=app", "DB_USER=app",
			"DB_PASSWORD_FILE="+filepath.Join(c.proj, "secrets", "db_password"), "LOG_LEVEL=warn")
	}
	migrate := exec.Command(bin, "migrate")
	migrate.Env = backendEnv(rmdNodeA)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("backend migrate: %v\n%s", err, out)
	}
	startBackend := func(dbHost string) *e2eutil.Proc {
		port := e2eutil.FreePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(backendEnv(dbHost), "PORT="+strconv.Itoa(port))
		p := e2eutil.StartProc(t, cmd, port)
		p.WaitStatus(t, "/readyz", http.StatusOK)
		return p
	}
	var backend atomic.Pointer[e2eutil.Proc]
	first := startBackend(rmdNodeA)
	backend.Store(first)

	w := &rmdWriter{backend: &backend}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(done) }()
	stopWriter := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stopWriter()
	w.waitAcked(t, 200)
	// The replica has what was written so far.
	n := w.ackedCount()
	c.waitSQL(rmdNodeB, fmt.Sprintf("SELECT COUNT(*) >= %d FROM app.items WHERE name LIKE 'rmd-%%'", n), "1")

	// Lose the primary.
	envBefore, modeBefore := c.envFile()
	ackedAtKill := w.ackedCount()
	killed := time.Now()
	w.markKill(killed, first)
	c.kill(rmdNodeA)
	restartFlag := filepath.Join(c.dir, "restart-requested")
	out, code := c.script("failover.sh", c.scriptEnv(rmdNodeA, rmdNodeB, "DB_APP_RESTART=touch "+restartFlag))
	if code != 0 {
		t.Fatalf("failover.sh: exit %d:\n%s", code, out)
	}
	tookScript := time.Since(killed)
	t.Logf("failover.sh (%d writes acknowledged before the kill):\n%s", ackedAtKill, out)
	if _, err := os.Stat(restartFlag); err != nil {
		t.Errorf("failover.sh did not run DB_APP_RESTART: %v", err)
	}
	// The application restarts and reads where the primary is, as compose does.
	host := c.primaryFromCompose()
	if host != rmdNodeB {
		t.Fatalf("after failover.sh the backend's DB_HOST (compose.yaml with .env) = %q, want %s\n%s", host, rmdNodeB, out)
	}
	backend.Store(startBackend(host))
	firstWrite := w.waitFirstAfterKill(t)
	t.Logf("failover (sync_commit=%v): kill -> failover.sh done %s, kill -> first acknowledged write %s",
		syncCommit, tookScript.Round(time.Millisecond), firstWrite.Sub(killed).Round(time.Millisecond))

	// .env: one line changed, the rest and the mode kept.
	envAfter, modeAfter := c.envFile()
	if modeAfter != modeBefore {
		t.Errorf(".env mode %v after failover.sh, was %v", modeAfter, modeBefore)
	}
	if got, want := rmdWithout(string(envAfter), "DB_PRIMARY_HOST="), rmdWithout(string(envBefore), "DB_PRIMARY_HOST="); got != want {
		t.Errorf("failover.sh changed .env beyond DB_PRIMARY_HOST:\n--- before\n%s\n--- after\n%s", want, got)
	}
	st := c.statusFile()
	if st["result"] != "ok" || st["action"] != "failover" || st["db_primary_host"] != rmdNodeB || st["old_primary_fenced"] != "no" {
		t.Errorf("var/db-failover.status = %v", st)
	}
	if log := e2eutil.ReadFile(t, filepath.Join(c.proj, "var", "log", "ops", "db-failover.log")); !strings.Contains(log, "promoted") {
		t.Errorf("var/log/ops/db-failover.log has no promotion:\n%s", log)
	}
	if ro := c.sql(rmdNodeB, "SELECT @@read_only, (SELECT COUNT(*) FROM information_schema.processlist WHERE command = 'Slave_IO')"); ro != "0\t0" {
		t.Errorf("new primary: read_only, replication threads = %q, want 0, 0", ro)
	}

	// Acknowledged rows lost: every name the backend acknowledged must be on the new primary.
	w.waitAcked(t, w.ackedCount()+50)
	stopWriter()
	acked := w.ackedNames()
	have := map[string]bool{}
	for _, name := range strings.Split(c.sql(rmdNodeB, "SELECT name FROM app.items WHERE name LIKE 'rmd-%'"), "\n") {
		have[name] = true
	}
	lost := 0
	for _, name := range acked {
		if !have[name] {
			lost++
		}
	}
	t.Logf("failover (sync_commit=%v): %d writes acknowledged, %d acknowledged rows lost", syncCommit, len(acked), lost)
	if syncCommit && lost != 0 {
		t.Errorf("semi-synchronous commit lost %d acknowledged rows, want 0", lost)
	}

	// Rejoin: the old primary restarts (writable: it was no replica) and becomes a replica.
	c.start(rmdNodeA)
	rejoinEnv := c.scriptEnv(rmdNodeA, rmdNodeB)
	out, code = c.script("rejoin.sh", rejoinEnv)
	reseeded := false
	if code == 3 && strings.Contains(out, "--reseed") {
		// The old primary committed what never reached the replica (possible even with
		// AFTER_SYNC: written to its binlog, killed before the acknowledgement).
		t.Logf("rejoin.sh refused a diverged old primary, as it must without --reseed:\n%s", rmdLastLines(out, 3))
		out, code = c.script("rejoin.sh", rejoinEnv, "--reseed")
		reseeded = true
	}
	if code != 0 {
		t.Fatalf("rejoin.sh: exit %d:\n%s", code, out)
	}
	t.Logf("rejoin (sync_commit=%v): re-seeded %v", syncCommit, reseeded)
	c.waitReplicating(rmdNodeA)
	if ro := c.sql(rmdNodeA, "SELECT @@read_only"); ro != "1" {
		t.Errorf("rejoined old primary: read_only = %s, want 1", ro)
	}
	if st := c.statusFile(); st["result"] != "ok" || st["action"] != "rejoin" {
		t.Errorf("var/db-failover.status after rejoin = %v", st)
	}
	status, body, _ := backend.Load().Do(t, "POST", "/api/items", `{"name":"rmd-after-rejoin"}`)
	if status != http.StatusCreated {
		t.Fatalf("write after rejoin: %d %s", status, body)
	}
	c.waitSQL(rmdNodeA, "SELECT COUNT(*) FROM app.items WHERE name = 'rmd-after-rejoin'", "1")
	if out, code := c.health(rmdNodeA); code != 0 {
		t.Errorf("replica-health.sh on the rejoined old primary: exit %d: %s", code, out)
	}
	if syncCommit {
		c.waitSemiSync(rmdNodeB)
	}
	// Restarted, the rejoined server stays a read-only replica (replica-start.sh sees master.info).
	c.stop(rmdNodeA)
	c.start(rmdNodeA)
	if ro := c.sql(rmdNodeA, "SELECT @@read_only"); ro != "1" {
		t.Errorf("rejoined old primary after a restart: read_only = %s, want 1", ro)
	}
	c.waitReplicating(rmdNodeA)
}

// rmdWriter posts items through the current backend one after the other and keeps the
// names of those acknowledged (201).
type rmdWriter struct {
	backend *atomic.Pointer[e2eutil.Proc]
	mu      sync.Mutex
	acked   []string
	kill    time.Time
	old     *e2eutil.Proc // the backend of the killed primary
	first   time.Time     // first acknowledgement by another backend after the kill
	seq     int
}

var rmdClient = &http.Client{Timeout: 10 * time.Second}

func (w *rmdWriter) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		w.seq++
		name := fmt.Sprintf("rmd-%d", w.seq)
		body, _ := json.Marshal(map[string]string{"name": name})
		be := w.backend.Load()
		resp, err := rmdClient.Post(be.Base+"/api/items", "application/json", strings.NewReader(string(body)))
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		now := time.Now()
		w.mu.Lock()
		w.acked = append(w.acked, name)
		if !w.kill.IsZero() && w.first.IsZero() && be != w.old {
			w.first = now
		}
		w.mu.Unlock()
	}
}

func (w *rmdWriter) markKill(at time.Time, old *e2eutil.Proc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kill, w.old = at, old
}

func (w *rmdWriter) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *rmdWriter) ackedNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// waitAcked waits until n writes were acknowledged.
func (w *rmdWriter) waitAcked(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(rmdWait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if w.ackedCount() >= n {
			return
		}
	}
	t.Fatalf("only %d of %d writes acknowledged within %s", w.ackedCount(), n, rmdWait)
}

// waitFirstAfterKill waits for the first write the new backend acknowledged.
func (w *rmdWriter) waitFirstAfterKill(t *testing.T) time.Time {
	t.Helper()
	for deadline := time.Now().Add(rmdWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		f := w.first
		w.mu.Unlock()
		if !f.IsZero() {
			return f
		}
	}
	t.Fatalf("no write acknowledged within %s after failover.sh", rmdWait)
	return time.Time{}
}

// rmdWithout is text without its lines that start with prefix.
func rmdWithout(text, prefix string) string {
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func rmdLastLines(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
