#!/usr/bin/env bash
# Promotes the replica to primary when the primary is lost (or for a planned switchover):
#   1. refuses unless the replica answers and is a standby (in recovery);
#   2. fences the old primary when it answers: it refuses writes from then on
#      (default_transaction_read_only, kept across restarts), its sessions are ended, the
#      replica catches up with its last WAL, and it is stopped; an old primary that does not
#      answer is only stopped where that is possible (compose: `docker compose stop`);
#   3. promotes the replica (pg_promote) and clears what only a standby had (synchronous
#      standby names: there is no replica until rejoin.sh);
#   4. repoints the application: DB_PRIMARY_HOST in .env (the one place that says where the
#      primary is), then restarts the backend with it (FAILOVER_RESTART_CMD);
#   5. records each step in var/log/ops/db-failover.log and the outcome in
#      var/lib/node-exporter/textfile/db_failover.prom.
# Then turn the old primary into a replica of the new one: ops/db/rejoin.sh.
# docs/runbooks/db-failover.md says when to fail over and when to wait.
#
# Usage: ops/db/failover.sh [NODE]   (NODE: the replica to promote; default: the node of
# DB_NODES that .env's DB_PRIMARY_HOST does not name). Settings: ops/db/lib.sh, docs/replica.md.
DB_SCRIPT=failover
# shellcheck source=ops/db/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
host_init
# How the application is restarted with the new DB_PRIMARY_HOST (empty: not at all).
: "${FAILOVER_RESTART_CMD=$DB_COMPOSE up -d --no-deps migrate backend}"
# Seconds a planned switchover waits for the replica to replay the old primary's last WAL.
: "${FAILOVER_CATCHUP_SECONDS:=60}"

lock
started=$(date +%s)
old=$(current_primary)
new=${1:-$(other_node "$old")}
[[ $new != "$old" ]] || die "$new is already the primary ($DB_ENV_FILE: DB_PRIMARY_HOST=$old)"
log "failover from $old to $new (mode $DB_OPS_MODE)"

# 1. The replica must be a working standby, or there is nothing to promote.
state=$(node_state "$new")
case $state in
standby) ;;
primary) die "refusing: $new is not a replica (it is not in recovery): it may already have been promoted; check both nodes, then set DB_PRIMARY_HOST in $DB_ENV_FILE by hand if the application points at the wrong one. Nothing was changed" ;;
*) die "refusing: the replica $new does not answer (as $DB_SUPERUSER on port $DB_PORT): start it or find why it is down (docs/runbooks/db-failover.md). Nothing was changed" ;;
esac
lag=$(node_psql "$new" <<<"SELECT coalesce(pg_last_wal_replay_lsn()::text, '?') || ' replayed, ' || coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::int::text, '?') || 's since the last replayed transaction';") || lag=unknown
log "replica $new: $lag"

# 2. Fence the old primary.
old_state=$(node_state "$old")
fenced=0
if [[ $old_state == primary ]]; then
	log "fencing $old: read-only from now on, sessions ended"
	lsn=$(node_psql "$old" <<'SQL'
ALTER SYSTEM SET default_transaction_read_only = on;
SELECT pg_reload_conf();
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();
SELECT pg_current_wal_lsn();
SQL
	) || lsn=
	lsn=${lsn##*$'\n'}
	if [[ -n $lsn ]]; then
		fenced=1
		log "waiting up to ${FAILOVER_CATCHUP_SECONDS}s for $new to replay $old's WAL up to $lsn"
		caught=
		for ((i = 0; i < FAILOVER_CATCHUP_SECONDS * 2; i++)); do
			caught=$(node_psql "$new" <<<"SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn;" 2>/dev/null) || caught=
			[[ $caught == t ]] && break
			sleep 0.5
		done
		if [[ $caught == t ]]; then
			log "$new has replayed everything $old wrote"
		else
			log "warning: $new did not replay up to $lsn: transactions after its position are not on the new primary"
		fi
	fi
else
	log "$old does not answer as a primary ($old_state): not fenced by SQL; it must not start as a primary again (rejoin.sh makes it a replica)"
fi
if node_stop "$old"; then
	log "stopped $old"
	fenced=1
else
	log "warning: could not stop $old; if it comes back it must not take writes: run rejoin.sh for it before anything else"
fi

# 3. Promote.
log "promoting $new"
promoted=$(node_psql "$new" <<<"SELECT pg_promote(true, $DB_WAIT_SECONDS);") || promoted=
[[ $promoted == t ]] || die "pg_promote on $new did not finish within ${DB_WAIT_SECONDS}s: check its log; .env still names $old"
node_psql "$new" >/dev/null <<'SQL'
ALTER SYSTEM RESET default_transaction_read_only;
ALTER SYSTEM RESET synchronous_standby_names;
SELECT pg_reload_conf();
SQL
[[ $(node_state "$new") == primary ]] || die "$new is still in recovery after pg_promote; .env still names $old"
log "promoted $new"

# 4. Repoint the application.
env_set DB_PRIMARY_HOST "$new"
log "DB_PRIMARY_HOST=$new in $DB_ENV_FILE"
if [[ -n $FAILOVER_RESTART_CMD ]]; then
	log "restarting the application: $FAILOVER_RESTART_CMD"
	eval "$FAILOVER_RESTART_CMD" {DB_LOCK_FD}>&- || die "the application did not restart ($FAILOVER_RESTART_CMD); the database failover is done: DB_PRIMARY_HOST=$new; restart it by hand"
fi

# 5. Record.
took=$(($(date +%s) - started))
record failover "db_failover_last_timestamp_seconds $(date +%s)" "db_failover_last_duration_seconds $took" \
	"db_failover_old_primary_fenced $fenced" "db_primary_info{node=\"$new\"} 1"
log "done in ${took}s: $new is the primary; $old is stopped and must be rejoined: ops/db/rejoin.sh"
