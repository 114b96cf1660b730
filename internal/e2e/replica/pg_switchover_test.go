package replica

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRpgSwitchover runs failover.sh with both nodes healthy (planned maintenance): the old
// primary must be fenced (read-only, then stopped) only after the replica replayed all it
// wrote, so that nothing is lost; rejoin.sh then makes it the replica.
func TestRpgSwitchover(t *testing.T) {
	t.Parallel()
	c := rpgNewCluster(t, map[string]string{"db": "postgres", "db_replica": "streaming", "db_sync_commit": "false"})
	c.initPrimary(rpgNodeA)
	c.mustScript("replica-start.sh", "PGDATA="+c.data[rpgNodeB], "DB_REPLICA_SOURCE="+rpgNodeA,
		"DB_REPLICA_NAME="+rpgNodeB, "DB_SECRETS_DIR="+filepath.Join(c.proj, "secrets"))
	c.start(rpgNodeB)
	c.stop(rpgNodeA, "fast") // wal_log_hints (docs/replica.md)
	c.start(rpgNodeA)
	c.waitSQL(rpgNodeA, "postgres", "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming';", "1")
	// Written just before the switchover, asynchronously replicated: the catch-up must wait.
	c.psql(rpgNodeA, "app", "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 50000);")

	out, _ := c.mustScript("failover.sh")
	for _, want := range []string{"fencing " + rpgNodeA, "has replayed everything", "stopped " + rpgNodeA, "promoted " + rpgNodeB} {
		if !strings.Contains(out, want) {
			t.Errorf("failover.sh of a healthy pair: want %q in:\n%s", want, out)
		}
	}
	if got := c.psql(rpgNodeB, "app", "SELECT pg_is_in_recovery() || ' ' || count(*) FROM t;"); got != "false 50000" {
		t.Errorf("new primary: in recovery, rows = %q, want false 50000", got)
	}
	if err := c.as(exec.Command(filepath.Join(rpgPgBin, "pg_ctl"), "-D", c.data[rpgNodeA], "status")).Run(); err == nil {
		t.Errorf("the old primary still runs after failover.sh")
	}
	if prom := string(mustRead(t, filepath.Join(c.proj, "var", "lib", "node-exporter", "textfile", "db_failover.prom"))); !strings.Contains(prom, "db_failover_old_primary_fenced 1") {
		t.Errorf("db_failover.prom:\n%s", prom)
	}
	// The fence survives a restart: started again by mistake, the old primary refuses writes.
	c.start(rpgNodeA)
	if _, err := c.psqlErr(rpgNodeA, "app", "INSERT INTO t VALUES (0);"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write on the fenced old primary after a restart: %v, want a read-only error", err)
	}

	c.mustScript("rejoin.sh")
	c.waitSQL(rpgNodeB, "postgres", "SELECT application_name || ' ' || state FROM pg_stat_replication;", "replica_127_0_0_2 streaming")
	c.psql(rpgNodeB, "app", "INSERT INTO t VALUES (-1);")
	c.waitSQL(rpgNodeA, "app", "SELECT count(*) FROM t;", "50001")
}
