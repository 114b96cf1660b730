#!/usr/bin/env bash
# Turns the old primary into a replica of the new one after ops/db/failover.sh:
#   1. checks that the node .env's DB_PRIMARY_HOST names is a primary;
#   2. prepares it for the replica (role, replication slot, pg_hba.conf; as replica-start.sh);
#   3. stops the old primary, winds it back with pg_rewind (or copies the primary afresh with
#      pg_basebackup when that fails; ops/db/rejoin-node.sh) and starts it as a standby;
#   4. waits until it streams, then, with synchronous commit, makes the primary wait for it.
# Run again, it finds the node streaming and does nothing. docs/runbooks/db-rejoin.md.
#
# Usage: ops/db/rejoin.sh [NODE]   (NODE: the node to rejoin; default: the node of DB_NODES
# that is not the primary). Settings: ops/db/lib.sh, docs/replica.md.
DB_SCRIPT=rejoin
# shellcheck source=ops/db/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
host_init

lock
started=$(date +%s)
primary=$(current_primary)
node=${1:-$(other_node "$primary")}
standby=$(standby_name "$node")
[[ $node != "$primary" ]] || die "$node is the primary ($DB_ENV_FILE: DB_PRIMARY_HOST=$primary); name the node to rejoin"
[[ $(node_state "$primary") == primary ]] || die "the primary $primary (DB_PRIMARY_HOST in $DB_ENV_FILE) does not answer as a primary: fix that first (docs/runbooks/db-rejoin.md)"

# streaming: t when the primary sends WAL to the node's slot.
streaming() {
	node_psql "$primary" <<<"SELECT EXISTS (SELECT FROM pg_stat_replication WHERE application_name = '$standby' AND state = 'streaming');" 2>/dev/null
}
if [[ $(node_state "$node") == standby && $(streaming) == t ]]; then
	log "$node already streams from $primary (slot $standby): nothing to do"
	exit 0
fi

log "preparing $primary for the replica $node (slot $standby)"
primary_setup_sql "$standby" | node_psql "$primary" >/dev/null
# A checkpoint writes the new timeline of a freshly promoted primary into its control file;
# before it, pg_rewind sees one timeline on both sides and wrongly finds nothing to rewind.
node_psql "$primary" <<<"CHECKPOINT;" >/dev/null
log "stopping $node"
node_stop "$node" || die "could not stop $node: stop it, then run rejoin.sh again"
node_rejoin "$node" "$primary"
log "starting $node as a standby of $primary"
node_start "$node"
for ((i = 0; i < DB_WAIT_SECONDS; i++)); do
	[[ $(streaming) == t ]] && break
	sleep 1
done
[[ $(streaming) == t ]] || die "$node did not start streaming from $primary within ${DB_WAIT_SECONDS}s: see its log (docs/runbooks/db-rejoin.md)"
[[ $(node_state "$node") == standby ]] || die "$node streams but is not in recovery"
sync_sql "$standby" | node_psql "$primary" >/dev/null
if [[ $DB_SYNC_COMMIT == true ]]; then
	log "synchronous commit: $primary waits for $standby again"
fi
took=$(($(date +%s) - started))
record rejoin "db_rejoin_last_timestamp_seconds $(date +%s)" "db_rejoin_last_duration_seconds $took"
log "done in ${took}s: $node streams from $primary (slot $standby)"
