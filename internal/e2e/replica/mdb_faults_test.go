package replica

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opsready/opsready/internal/e2e/e2eutil"
)

// TestRmdFailoverRefuses runs the generated failover.sh where it must not promote: while
// another run holds the lock, with the replica's IO thread stopped, with the replica down;
// each time it exits non-zero and leaves .env as it was. Then two runs at once against a
// healthy pair with the primary up: one promotes (fencing the primary), the other is refused.
func TestRmdFailoverRefuses(t *testing.T) {
	c := rmdNewCluster(t, nil)
	c.start(rmdNodeA)
	c.bootstrap(rmdNodeA, true)
	c.start(rmdNodeB)
	c.bootstrap(rmdNodeB, false)
	c.seed(rmdNodeB, rmdNodeA)
	env := c.scriptEnv(rmdNodeA, rmdNodeB, "DB_APP_RESTART=")
	envBefore, modeBefore := c.envFile()
	untouched := func(what string) {
		t.Helper()
		b, mode := c.envFile()
		if !bytes.Equal(b, envBefore) || mode != modeBefore {
			t.Errorf("%s: .env changed (mode %v, was %v):\n%s", what, mode, modeBefore, b)
		}
	}

	// Another run holds the lock.
	if err := os.MkdirAll(filepath.Join(c.proj, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(c.proj, "var", "db-failover.lock"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	out, code := c.script("failover.sh", env)
	if code != 4 || !strings.Contains(out, "another ops/db/failover.sh or ops/db/rejoin.sh is running") {
		t.Errorf("failover.sh while the lock is held: exit %d, want 4 naming the other run:\n%s", code, out)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	lock.Close()
	untouched("lock held")

	// The replica's IO thread stopped: it no longer receives the primary's changes.
	c.sql(rmdNodeB, "STOP SLAVE IO_THREAD")
	if out, code := c.health(rmdNodeB); code == 0 || !strings.Contains(out, "replication broken") {
		t.Errorf("replica-health.sh with the IO thread stopped: exit %d, want non-zero:\n%s", code, out)
	}
	out, code = c.script("failover.sh", env)
	if code != 3 || !strings.Contains(out, "IO thread is stopped") {
		t.Errorf("failover.sh with the replica's IO thread stopped: exit %d, want 3 saying so:\n%s", code, out)
	}
	untouched("IO thread stopped")
	if st := c.statusFile(); st["result"] != "refused" {
		t.Errorf("status after a refusal = %v, want result=refused", st)
	}
	if ro := c.sql(rmdNodeA, "SELECT @@read_only"); ro != "0" {
		t.Errorf("a refused failover left the primary read_only=%s", ro)
	}
	c.sql(rmdNodeB, "START SLAVE IO_THREAD")
	c.waitReplicating(rmdNodeB)
	if out, code := c.health(rmdNodeB); code != 0 {
		t.Errorf("replica-health.sh with replication running again: exit %d:\n%s", code, out)
	}

	// The replica down.
	c.stop(rmdNodeB)
	out, code = c.script("failover.sh", env)
	if code != 3 || !strings.Contains(out, "does not answer") {
		t.Errorf("failover.sh with the replica down: exit %d, want 3 saying it does not answer:\n%s", code, out)
	}
	untouched("replica down")
	c.start(rmdNodeB)
	if ro := c.sql(rmdNodeB, "SELECT @@read_only"); ro != "1" {
		t.Errorf("the replica restarted through replica-start.sh: read_only=%s, want 1", ro)
	}
	c.waitReplicating(rmdNodeB)

	// Two at once, the primary up: exactly one promotes; the other is refused (by the lock,
	// or, when it starts after the first finished, because there is no replica any more).
	c.sql(rmdNodeA, "CREATE TABLE app.rmd_fence (id INT PRIMARY KEY); INSERT INTO app.rmd_fence VALUES (1)")
	var wg sync.WaitGroup
	outs, codes := make([]string, 2), make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i], codes[i] = c.script("failover.sh", env) }()
	}
	wg.Wait()
	ok := 0
	for i := range 2 {
		switch codes[i] {
		case 0:
			ok++
		case 3, 4:
		default:
			t.Errorf("failover.sh run %d at once: exit %d:\n%s", i, codes[i], outs[i])
		}
	}
	if ok != 1 {
		t.Fatalf("two failover.sh at once: exits %v, want exactly one 0:\n%s\n---\n%s", codes, outs[0], outs[1])
	}
	t.Logf("two failover.sh at once: exit codes %v", codes)
	if got := c.primaryFromCompose(); got != rmdNodeB {
		t.Errorf("after the failover the backend's DB_HOST = %q, want %s", got, rmdNodeB)
	}
	// The old primary, reachable, was fenced; the replica has its last write.
	if ro := c.sql(rmdNodeA, "SELECT @@read_only"); ro != "1" {
		t.Errorf("the reachable old primary was not fenced: read_only=%s", ro)
	}
	if st := c.statusFile(); st["old_primary_fenced"] != "yes" {
		t.Errorf("status = %v, want old_primary_fenced=yes", st)
	}
	if got := c.sql(rmdNodeB, "SELECT COUNT(*) FROM app.rmd_fence"); got != "1" {
		t.Errorf("the promoted replica lacks the old primary's last write: %s rows", got)
	}
	if ro := c.sql(rmdNodeB, "SELECT @@read_only"); ro != "0" {
		t.Errorf("the promoted replica has read_only=%s", ro)
	}
}

// TestRmdRejoinDiverged makes the old primary commit what the new one never got (as root,
// which read_only does not stop), and checks that rejoin.sh refuses it, naming the
// transactions, and that --reseed replaces its data and makes it replicate.
func TestRmdRejoinDiverged(t *testing.T) {
	c := rmdNewCluster(t, nil)
	c.start(rmdNodeA)
	c.bootstrap(rmdNodeA, true)
	c.start(rmdNodeB)
	c.bootstrap(rmdNodeB, false)
	c.seed(rmdNodeB, rmdNodeA)
	c.sql(rmdNodeA, "CREATE TABLE app.rmd_div (id INT PRIMARY KEY); INSERT INTO app.rmd_div VALUES (1)")
	env := c.scriptEnv(rmdNodeA, rmdNodeB, "DB_APP_RESTART=")
	if out, code := c.script("failover.sh", env); code != 0 {
		t.Fatalf("failover.sh: exit %d:\n%s", code, out)
	}
	c.sql(rmdNodeA, "INSERT INTO app.rmd_div VALUES (2)") // only on the old primary
	lost := c.sql(rmdNodeA, "SELECT @@gtid_binlog_pos")
	c.sql(rmdNodeB, "INSERT INTO app.rmd_div VALUES (3)")

	out, code := c.script("rejoin.sh", env)
	if code != 3 || !strings.Contains(out, "has transactions the new primary lacks") || !strings.Contains(out, lost) {
		t.Fatalf("rejoin.sh on a diverged old primary: exit %d, want 3 naming %s:\n%s", code, lost, out)
	}
	if got := c.slaveField(rmdNodeA, "Slave_IO_Running"); got != "" {
		t.Errorf("a refused rejoin configured replication (IO thread %q)", got)
	}
	if out, code := c.script("rejoin.sh", env, "--reseed"); code != 0 {
		t.Fatalf("rejoin.sh --reseed: exit %d:\n%s", code, out)
	}
	c.waitReplicating(rmdNodeA)
	c.sql(rmdNodeB, "INSERT INTO app.rmd_div VALUES (4)")
	c.waitSQL(rmdNodeA, "SELECT GROUP_CONCAT(id ORDER BY id) FROM app.rmd_div", "1,3,4")
	if st := c.statusFile(); st["result"] != "ok" || st["reseeded"] != "yes" {
		t.Errorf("status after rejoin --reseed = %v", st)
	}
}

// TestRmdComposeMode runs failover.sh and rejoin.sh with their defaults, as on the
// production host (DB_VIA=compose: services db and db-replica, SQL through `docker compose
// exec`), with a stand-in `docker` that runs what exec is given here against the service's
// server and records every other compose command.
func TestRmdComposeMode(t *testing.T) {
	c := rmdNewCluster(t, nil)
	c.start(rmdNodeA)
	c.bootstrap(rmdNodeA, true)
	c.start(rmdNodeB)
	c.bootstrap(rmdNodeB, false)
	c.seed(rmdNodeB, rmdNodeA)

	bin := filepath.Join(c.dir, "fakebin")
	client := filepath.Join(c.dir, "fakeclient")
	for _, d := range []string{bin, client} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	docker := `#!/usr/bin/env bash
# docker compose for the test: exec runs its command here, against the service's server.
set -euo pipefail
echo "$*" >>"$FAKE_DOCKER_LOG"
[[ $1 == compose ]] || exit 64
shift
while [[ $1 == --project-directory || $1 == -f ]]; do shift 2; done
cmd=$1
shift
case $cmd in
exec)
	[[ $1 == -T ]] && shift
	while [[ $1 == -e ]]; do export "$2"; shift 2; done
	case $1 in db) node=$FAKE_DB ;; db-replica) node=$FAKE_DB_REPLICA ;; *) exit 65 ;; esac
	[[ $2 == sh && $3 == -c ]] || exit 66
	script=${4//\/run\/secrets\//$FAKE_SECRETS/}
	FAKE_NODE=$node PATH=$FAKE_CLIENT:$PATH exec sh -c "$script"
	;;
stop | up) exit 0 ;;
*) exit 67 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(docker), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexec /usr/bin/mariadb --no-defaults --protocol=TCP -h \"$FAKE_NODE\" -P \"$FAKE_PORT\" \"$@\"\n"
	if err := os.WriteFile(filepath.Join(client, "mariadb"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	dockerLog := filepath.Join(c.dir, "docker.log")
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_DOCKER_LOG="+dockerLog,
		"FAKE_DB="+rmdNodeA, "FAKE_DB_REPLICA="+rmdNodeB, "FAKE_PORT="+strconv.Itoa(c.port),
		"FAKE_SECRETS="+filepath.Join(c.proj, "secrets")+"/", "FAKE_CLIENT="+client)

	c.kill(rmdNodeA)
	out, code := c.script("failover.sh", env)
	if code != 0 {
		t.Fatalf("failover.sh (compose): exit %d:\n%s", code, out)
	}
	if got := c.primaryFromCompose(); got != "db-replica" {
		t.Errorf("after failover.sh (compose) the backend's DB_HOST = %q, want db-replica", got)
	}
	calls := e2eutil.ReadFile(t, dockerLog)
	for _, want := range []string{" stop db\n", " up -d --no-deps backend\n"} {
		if !strings.Contains(calls, want) {
			t.Errorf("failover.sh (compose) did not run docker compose ...%s; it ran:\n%s", strings.TrimSpace(want), calls)
		}
	}

	// Rejoin: .env now names db-replica as the primary, so db is the one to rejoin. The
	// real servers cannot resolve service names: the address and port are given.
	c.start(rmdNodeA)
	out, code = c.script("rejoin.sh", append(env, "DB_NEW_PRIMARY_ADDRESS="+rmdNodeB, "DB_NEW_PRIMARY_PORT="+strconv.Itoa(c.port)))
	if code != 0 {
		t.Fatalf("rejoin.sh (compose): exit %d:\n%s", code, out)
	}
	c.waitReplicating(rmdNodeA)
	if st := c.statusFile(); st["replica"] != "service db" || st["primary"] != "service db-replica" {
		t.Errorf("status after rejoin (compose) = %v", st)
	}
}
