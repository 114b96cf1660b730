package replica

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// rpgFakeDocker stands in for `docker compose` on PATH: it logs its arguments and maps what
// failover.sh asks of the services db and db-replica onto the two local nodes (exec: the
// program on the node's socket; stop: pg_ctl stop; up: logged only).
const rpgFakeDocker = `#!/usr/bin/env bash
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_DOCKER_LOG"
[[ $1 == compose ]] || exit 3
shift
while [[ $1 == -f ]]; do shift 2; done
cmd=$1
shift
data() {
	case $1 in
	db) echo "$FAKE_DATA_DB" ;;
	db-replica) echo "$FAKE_DATA_REPLICA" ;;
	*) echo "unknown service $1" >&2; exit 3 ;;
	esac
}
case $cmd in
exec)
	[[ $1 == -T && $2 == -u && $3 == postgres ]] || { echo "unexpected exec options: $*" >&2; exit 3; }
	shift 3
	d=$(data "$1")
	shift
	PGHOST=$d.s PGPORT=$FAKE_PORT exec "$@"
	;;
stop) "$FAKE_PG_BIN/pg_ctl" -D "$(data "$1")" -m fast -w -t 60 stop ;;
up) ;;
*) echo "unexpected docker compose $cmd" >&2; exit 3 ;;
esac
`

// TestRpgFailoverComposeDefaults runs failover.sh with its compose defaults (no DB_OPS_MODE,
// DB_NODES or FAILOVER_RESTART_CMD) against a fake `docker compose` that maps the services
// db and db-replica onto two local nodes: it must find the primary by .env's generated
// DB_PRIMARY_HOST=db, promote db-replica through `docker compose exec`, stop db, write
// DB_PRIMARY_HOST=db-replica and recreate migrate and backend.
func TestRpgFailoverComposeDefaults(t *testing.T) {
	t.Parallel()
	c := rpgNewCluster(t, map[string]string{"db": "postgres", "db_replica": "streaming"})
	c.setEnvFile("DB_PRIMARY_HOST", "db") // what .env.example says
	c.initPrimary(rpgNodeA)
	c.mustScript("replica-start.sh", "PGDATA="+c.data[rpgNodeB], "DB_REPLICA_SOURCE="+rpgNodeA,
		"DB_REPLICA_NAME=db-replica", "DB_SECRETS_DIR="+filepath.Join(c.proj, "secrets"))
	c.start(rpgNodeB)
	c.waitSQL(rpgNodeA, "postgres", "SELECT application_name || ' ' || state FROM pg_stat_replication;", "replica_db_replica streaming")
	c.psql(rpgNodeA, "app", "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000);")
	c.waitSQL(rpgNodeB, "app", "SELECT count(*) FROM t;", "1000")
	if err := syscall.Kill(c.pid(rpgNodeA), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(c.base, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(rpgFakeDocker), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(c.base, "docker.log")
	if err := os.WriteFile(log, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(log, 0o666); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + c.base, "TMPDIR=" + c.base,
		"FAKE_DOCKER_LOG=" + log, "FAKE_DATA_DB=" + c.data[rpgNodeA], "FAKE_DATA_REPLICA=" + c.data[rpgNodeB],
		"FAKE_PORT=" + strconv.Itoa(c.port), "FAKE_PG_BIN=" + rpgPgBin}
	saved := c.env
	c.env = env
	out, code := c.script("failover.sh")
	c.env = saved
	if code != 0 {
		t.Fatalf("failover.sh with the compose defaults exited %d:\n%s\n%s", code, out, c.serverLog(rpgNodeB))
	}
	if got := c.primaryHost(); got != "db-replica" {
		t.Errorf(".env DB_PRIMARY_HOST = %q, want db-replica", got)
	}
	if got := c.psql(rpgNodeB, "app", "SELECT pg_is_in_recovery() || ' ' || count(*) FROM t;"); got != "false 1000" {
		t.Errorf("db-replica after failover.sh: in recovery, rows = %q, want false 1000", got)
	}
	calls := string(mustRead(t, log))
	for _, want := range []string{
		"compose -f compose.yaml -f compose.prod.yaml exec -T -u postgres db-replica psql",
		"compose -f compose.yaml -f compose.prod.yaml stop db\n",
		"compose -f compose.yaml -f compose.prod.yaml up -d --no-deps migrate backend\n",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("failover.sh did not run %q; it ran:\n%s", want, calls)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
