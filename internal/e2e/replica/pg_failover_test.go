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
	"syscall"
	"testing"
	"time"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestRpgFailover runs the generated PostgreSQL replica for real, with synchronous and with
// asynchronous commit: a primary, a replica seeded by the generated replica-start.sh, writes
// through the generated Go backend, SIGKILL of the primary, the generated failover.sh, writes
// again against the address .env then names, the acknowledged rows lost, and rejoin.sh making
// the old primary a replica of the new one (pg_rewind after the primary was restarted with
// the settings replica-start.sh gave it; a new copy when it was not).
func TestRpgFailover(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run("sync_commit="+strconv.FormatBool(sync), func(t *testing.T) {
			t.Parallel()
			rpgFailover(t, sync)
		})
	}
}

func rpgFailover(t *testing.T, syncCommit bool) {
	c := rpgNewCluster(t, map[string]string{"db": "postgres", "db_replica": "streaming",
		"db_sync_commit": strconv.FormatBool(syncCommit), "backend": "go", "cache": "none"})
	standbyB, standbyA := "replica_127_0_0_3", "replica_127_0_0_2"

	// The primary, then the replica as replica-start.sh makes it on its first start.
	c.initPrimary(rpgNodeA)
	out, took := c.mustScript("replica-start.sh", "PGDATA="+c.data[rpgNodeB], "DB_REPLICA_SOURCE="+rpgNodeA,
		"DB_REPLICA_NAME="+rpgNodeB, "DB_SECRETS_DIR="+filepath.Join(c.proj, "secrets"))
	t.Logf("replica-start.sh seeded the replica in %s", took.Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(c.data[rpgNodeB], "standby.signal")); err != nil {
		t.Fatalf("replica-start.sh left no standby.signal: %v\n%s", err, out)
	}
	c.start(rpgNodeB)
	if syncCommit {
		// docs/replica.md: restart the primary once, so that wal_log_hints (for pg_rewind) holds.
		c.stop(rpgNodeA, "fast")
		c.start(rpgNodeA)
	}
	wantSync := map[bool]string{true: "sync", false: "async"}[syncCommit]
	c.waitSQL(rpgNodeA, "postgres", "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication;",
		standbyB+" streaming "+wantSync)
	if got := c.psql(rpgNodeA, "postgres", "SELECT current_setting('synchronous_commit') || ' ' || current_setting('wal_log_hints');"); syncCommit && got != "remote_apply on" {
		t.Errorf("primary synchronous_commit, wal_log_hints = %q, want remote_apply on", got)
	}
	if out, code := c.health(rpgNodeB); code != 0 || out != "streaming" {
		t.Errorf("healthcheck.sh on the streaming replica = %d %q, want 0 streaming", code, out)
	}

	// The backend, pointed at the primary as compose.yaml points it: DB_HOST from .env.
	bin := e2eutil.GoBinary(t, filepath.Join(c.proj, "backend"), "server")
	backendEnv := func() []string {
		return append(os.Environ(), "DB_HOST="+c.primaryHost(), "DB_PORT="+strconv.Itoa(c.port), "DB_NAME=app",
			"DB_USER=app", "DB_PASSWORD_FILE="+filepath.Join(c.proj, "secrets", "db_password"), "SHUTDOWN_TIMEOUT=2s")
	}
	migrate := exec.Command(bin, "migrate")
	migrate.Env = backendEnv()
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	startBackend := func() *e2eutil.Proc {
		port := e2eutil.FreePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(backendEnv(), "PORT="+strconv.Itoa(port))
		p := e2eutil.StartProc(t, cmd, port)
		p.WaitStatus(t, "/healthz", http.StatusOK)
		return p
	}
	var backend atomic.Pointer[e2eutil.Proc]
	backend.Store(startBackend())

	// One writer, as fast as the backend acknowledges: every 201 is an acknowledged row.
	w := &rpgWriter{backend: &backend}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(done) }()
	defer func() { close(done); wg.Wait() }()
	w.waitAcked(t, 300)
	n := w.ackedCount()
	c.waitSQL(rpgNodeB, "app", fmt.Sprintf("SELECT count(*) >= %d FROM items;", n), "t")

	// Lose the primary.
	killed := time.Now()
	if err := syscall.Kill(c.pid(rpgNodeA), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	w.markKill()
	// The replica's healthcheck sees the broken replication (bounded wait: the WAL receiver
	// notices the closed connection).
	var hout string
	var hcode int
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if hout, hcode = c.health(rpgNodeB); hcode != 0 {
			break
		}
	}
	if hcode == 0 || !strings.Contains(hout, "replication broken") {
		t.Errorf("healthcheck.sh with the primary killed = %d %q, want a failure naming the broken replication", hcode, hout)
	}

	envBefore, err := os.Stat(filepath.Join(c.proj, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	out, took = c.mustScript("failover.sh")
	t.Logf("failover.sh took %s:\n%s", took.Round(time.Millisecond), out)
	if got := c.primaryHost(); got != rpgNodeB {
		t.Fatalf(".env DB_PRIMARY_HOST = %q after failover.sh, want %s", got, rpgNodeB)
	}
	if b, err := os.ReadFile(filepath.Join(c.base, "restarts")); err != nil || !strings.Contains(string(b), "DB_PRIMARY_HOST="+rpgNodeB) {
		t.Errorf("FAILOVER_RESTART_CMD did not run after .env named the new primary: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(c.proj, ".env")); err != nil || fi.Mode() != envBefore.Mode() {
		t.Errorf(".env mode after failover.sh = %v (%v), want %v as before", fi.Mode(), err, envBefore.Mode())
	}
	prom := e2eutil.ReadFile(t, filepath.Join(c.proj, "var", "lib", "node-exporter", "textfile", "db_failover.prom"))
	if !strings.Contains(prom, `db_primary_info{node="`+rpgNodeB+`"} 1`) || !strings.Contains(prom, "db_failover_last_duration_seconds ") {
		t.Errorf("db_failover.prom:\n%s", prom)
	}
	logf := e2eutil.ReadFile(t, filepath.Join(c.proj, "var", "log", "ops", "db-failover.log"))
	for _, want := range []string{"not fenced by SQL", "promoting " + rpgNodeB, "DB_PRIMARY_HOST=" + rpgNodeB, "done in"} {
		if !strings.Contains(logf, want) {
			t.Errorf("db-failover.log lacks %q:\n%s", want, logf)
		}
	}
	// The application restarts with the new DB_PRIMARY_HOST, as `docker compose up -d` does.
	old := backend.Swap(startBackend())
	old.Terminate(5 * time.Second)
	firstWrite := w.waitFirstAfterKill(t)
	w.waitAcked(t, w.ackedCount()+100)
	close(done)
	wg.Wait()
	done = make(chan struct{}) // for the deferred close
	wg = sync.WaitGroup{}

	acked := w.ackedNames()
	list := "'" + strings.Join(acked, "','") + "'"
	lost, err := strconv.Atoi(c.psql(rpgNodeB, "app", fmt.Sprintf(
		"SELECT count(*) FROM unnest(ARRAY[%s]) AS a(name) WHERE NOT EXISTS (SELECT FROM items i WHERE i.name = a.name);", list)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synchronous commit %v: failover time (SIGKILL -> first acknowledged write) %s; failover.sh %s; %d acknowledged rows, %d lost",
		syncCommit, firstWrite.Sub(killed).Round(time.Millisecond), took.Round(time.Millisecond), len(acked), lost)
	if syncCommit && lost != 0 {
		t.Errorf("%d acknowledged rows lost with synchronous commit, want 0", lost)
	}

	// The old primary becomes a replica of the new one.
	out, took = c.mustScript("rejoin.sh")
	// After the restart with wal_log_hints (sync case) pg_rewind must work. Without it
	// (async case) PostgreSQL 15 rewinds or not depending on which WAL the old primary still
	// has (here: not; its crash recovery recycled the segment of the last common
	// checkpoint), and the re-seed must take over.
	rewound, reseeded := strings.Contains(out, "rewound with pg_rewind"), strings.Contains(out, "re-seeded")
	if syncCommit && !rewound || rewound == reseeded {
		t.Errorf("rejoin.sh: rewound %v, re-seeded %v; want exactly one (pg_rewind after the restart)", rewound, reseeded)
	}
	t.Logf("rejoin.sh took %s; rewound with pg_rewind: %v, re-seeded with pg_basebackup: %v", took.Round(time.Millisecond), rewound, reseeded)
	c.waitSQL(rpgNodeB, "postgres", "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication;",
		standbyA+" streaming "+wantSync)
	if got := c.psql(rpgNodeA, "postgres", "SELECT pg_is_in_recovery();"); got != "t" {
		t.Errorf("old primary pg_is_in_recovery() = %s after rejoin.sh, want t", got)
	}
	c.psql(rpgNodeB, "app", "INSERT INTO items (name) VALUES ('after-rejoin');")
	c.waitSQL(rpgNodeA, "app", "SELECT count(*) FROM items WHERE name = 'after-rejoin';", "1")
	if out, code := c.script("rejoin.sh"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("rejoin.sh run again = %d, want 0 and nothing to do:\n%s", code, out)
	}
}

// health runs the generated healthcheck.sh against node (as the compose healthcheck runs it
// in the container: psql on the local socket) and returns its trimmed output and exit code.
func (c *rpgCluster) health(node string) (string, int) {
	c.t.Helper()
	cmd := c.as(exec.Command("bash", filepath.Join(c.proj, "ops", "db", "healthcheck.sh")))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DB_HEALTH_HOST=" + c.data[node] + ".s", "PGPORT=" + strconv.Itoa(c.port)}
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return strings.TrimSpace(string(out)), code
}

// rpgWriter posts items through the backend one after the other and keeps the names of
// those acknowledged (201).
type rpgWriter struct {
	backend *atomic.Pointer[e2eutil.Proc]
	mu      sync.Mutex
	acked   []string
	killed  *e2eutil.Proc // the backend of the lost primary
	first   time.Time     // first acknowledgement by another backend
	seq     int
}

var rpgClient = &http.Client{Timeout: 5 * time.Second}

func (w *rpgWriter) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		default:
		}
		w.seq++
		name := fmt.Sprintf("rpg-%d", w.seq)
		body, _ := json.Marshal(map[string]string{"name": name})
		b := w.backend.Load()
		resp, err := rpgClient.Post(b.Base+"/api/items", "application/json", strings.NewReader(string(body)))
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
		if w.killed != nil && b != w.killed && w.first.IsZero() {
			w.first = now
		}
		w.mu.Unlock()
	}
}

// markKill notes that the current backend's database is gone: the failover time ends at
// the first write another backend acknowledges (a write in flight at the kill may still be
// acknowledged by the old one).
func (w *rpgWriter) markKill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.killed = w.backend.Load()
}

func (w *rpgWriter) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *rpgWriter) ackedNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// waitAcked waits until n writes were acknowledged, for at most 3 minutes.
func (w *rpgWriter) waitAcked(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if w.ackedCount() >= n {
			return
		}
	}
	t.Fatalf("only %d of %d writes acknowledged within 3 minutes", w.ackedCount(), n)
}

// waitFirstAfterKill waits for the first write acknowledged after the kill.
func (w *rpgWriter) waitFirstAfterKill(t *testing.T) time.Time {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		f := w.first
		w.mu.Unlock()
		if !f.IsZero() {
			return f
		}
	}
	t.Fatal("no write acknowledged within 3 minutes after failover.sh")
	return time.Time{}
}
