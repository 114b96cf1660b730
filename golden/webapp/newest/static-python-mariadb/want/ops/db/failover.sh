#!/usr/bin/env bash
# Promotes the MariaDB replica to primary and points the application at it:
#   1. refuses unless the replica answers, is a replica and its SQL thread runs (and its IO
#      thread is not stopped: --force promotes anyway, losing what it never received);
#   2. fences the old primary when it answers: read_only=1, client connections killed, then
#      waits until the replica has everything the old primary wrote (nothing acknowledged is
#      lost); an old primary that does not answer is not fenced (docs/runbooks/db-failover.md);
#   3. waits until the replica has applied its relay log, then STOP SLAVE; RESET SLAVE ALL;
#      read_only=0 (and no semi-synchronous wait: there is no replica until ops/db/rejoin.sh);
#   4. rewrites DB_PRIMARY_HOST in .env (the one place that says where the primary is) and
#      recreates the backend containers so that they read it;
#   5. records what it did: var/log/ops/db-failover.log and var/db-failover.status.
# Exit status: 0 promoted, 3 refused (nothing changed), 4 another run holds the lock,
# 1 failed part-way (the log says which step).
# Usage: ops/db/failover.sh [--force]      Variables: docs/replica.md#failover-and-rejoin
set -euo pipefail
# shellcheck source=ops/db/replica-lib.sh
. "$(dirname "$0")/replica-lib.sh"

force=0
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "failover.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done

setup_state
take_lock
setup_nodes old
log "start: promote $NEW_DESC, replacing $OLD_DESC (DB_VIA=$DB_VIA)"

# 1. The replica must be one, and be able to apply what it received.
st=$(slave_status NEW 2>&1) || die 3 "the replica ($NEW_DESC) does not answer, nothing changed: $st"
[[ -n $st ]] || die 3 "$NEW_DESC is not a replica (SHOW SLAVE STATUS is empty): it may already be the primary (.env says DB_PRIMARY_HOST=$(env_get DB_PRIMARY_HOST)); nothing changed"
io=$(field "$st" Slave_IO_Running)
sqlt=$(field "$st" Slave_SQL_Running)
if [[ $sqlt != Yes ]]; then
	die 3 "the replica's SQL thread is not running (Last_SQL_Error: $(field "$st" Last_SQL_Error)): it cannot apply what it received; fix replication first (docs/runbooks/db-failover.md), nothing changed"
fi
if [[ $io == No && $force == 0 ]]; then
	die 3 "the replica's IO thread is stopped (Last_IO_Error: $(field "$st" Last_IO_Error)): it has not been receiving the primary's changes, so promoting it may lose them; if the primary is gone for good and the loss is accepted, run again with --force; nothing changed"
fi
log "replica: IO thread $io, SQL thread $sqlt, received $(field "$st" Gtid_IO_Pos), $(field "$st" Seconds_Behind_Master) s behind"

# 2. Fence the old primary where it answers, and let the replica catch up with it.
fenced=no
if sql OLD 'SELECT 1' >/dev/null 2>&1; then
	if ! sql OLD 'SET GLOBAL read_only = 1' >/dev/null; then
		die 3 "could not set read_only on the old primary ($OLD_DESC), nothing changed"
	fi
	ids=$(sql OLD "SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user NOT IN ('system user', 'event_scheduler', '$DB_REPLICATION_USER') AND command NOT IN ('Binlog Dump', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')") || ids=
	for id in $ids; do sql OLD "KILL CONNECTION $id" >/dev/null 2>&1 || true; done
	old_pos=$(sql OLD 'SELECT @@gtid_binlog_pos')
	log "old primary fenced: read_only=1, $(wc -w <<<"$ids") client connection(s) killed, its binlog ends at ${old_pos:-nothing}"
	if ! wait_gtid NEW "$old_pos"; then
		sql OLD 'SET GLOBAL read_only = 0' >/dev/null 2>&1 || true
		die 3 "the replica did not reach the old primary's position $old_pos within ${DB_WAIT_TIMEOUT}s (DB_WAIT_TIMEOUT): the old primary is writable again, nothing else changed; see the replica's SHOW SLAVE STATUS"
	fi
	fenced=yes
else
	log "old primary ($OLD_DESC) does not answer: not fenced; whatever it committed and the replica did not receive is lost"
	if [[ $DB_VIA == compose ]]; then
		# A crashed container would come back by its restart policy, writable: keep it stopped
		# until ops/db/rejoin.sh.
		if dc stop "$OLD_SVC" >&2; then
			log "stopped service $OLD_SVC (ops/db/rejoin.sh starts it as a replica)"
		else
			log "could not stop service $OLD_SVC: stop it by hand before it comes back writable"
		fi
	fi
fi

# 3. Apply the relay log, then stop being a replica.
sql NEW 'STOP SLAVE IO_THREAD' >/dev/null || die 1 "STOP SLAVE IO_THREAD failed on $NEW_DESC"
st=$(slave_status NEW) || die 1 "SHOW SLAVE STATUS failed on $NEW_DESC"
received=$(field "$st" Gtid_IO_Pos)
if ! wait_gtid NEW "$received"; then
	die 1 "the replica did not apply its relay log up to $received within ${DB_WAIT_TIMEOUT}s: it is still a replica with its IO thread stopped (START SLAVE undoes this step)"
fi
sql NEW 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0' >/dev/null || die 1 "promotion failed on $NEW_DESC: check SHOW SLAVE STATUS and @@read_only there"
if [[ $(sql NEW 'SELECT @@rpl_semi_sync_master_enabled') == 1 ]]; then
	# With no replica to acknowledge, every commit would wait rpl_semi_sync_master_timeout.
	sql NEW 'SET GLOBAL rpl_semi_sync_master_enabled = OFF' >/dev/null
	log "semi-synchronous commit off on the new primary until ops/db/rejoin.sh gives it a replica"
fi
pos=$(sql NEW 'SELECT @@gtid_binlog_pos')
log "promoted $NEW_DESC: writable, applied up to ${received:-nothing}, binlog at ${pos:-nothing}"

# 4. Point the application at the new primary.
env_set DB_PRIMARY_HOST "$NEW_ADDRESS"
log "$DB_ENV_FILE: DB_PRIMARY_HOST=$NEW_ADDRESS"
restarted=no
if [[ -n ${DB_APP_RESTART+set} ]]; then
	if [[ -n $DB_APP_RESTART ]]; then
		bash -c "$DB_APP_RESTART" >&2 || die 1 "the database is promoted and .env points at it, but DB_APP_RESTART failed: restart the application by hand"
		restarted=yes
	fi
elif [[ $DB_VIA == compose ]]; then
	# up (not restart) recreates the containers, which is what makes them read .env again.
	dc up -d --no-deps backend >&2 || die 1 "the database is promoted and .env points at it, but the backend could not be recreated: run docker compose ... up -d --no-deps backend"
	restarted=yes
fi
if [[ $restarted == yes ]]; then
	log "application restarted"
else
	log "application not restarted (DB_APP_RESTART empty, or DB_VIA=direct): restart it so that it reads DB_PRIMARY_HOST"
fi

status ok "old_primary=$OLD_DESC" "old_primary_fenced=$fenced" "new_primary=$NEW_DESC" \
	"db_primary_host=$NEW_ADDRESS" "applied_up_to=$received" "binlog_pos=$pos" "app_restarted=$restarted"
log "done in $(($(date +%s) - STARTED)) s; next: ops/db/rejoin.sh once the old primary is back"
