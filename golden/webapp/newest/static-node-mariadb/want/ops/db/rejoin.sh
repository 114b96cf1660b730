#!/usr/bin/env bash
# Turns the old primary into a replica of the new one, after ops/db/failover.sh:
#   1. refuses unless the new primary answers, is writable and is no replica;
#   2. starts the old primary (compose) if needed and fences it (read_only=1);
#   3. compares GTID histories: the old primary must have nothing the new one lacks (a
#      transaction it committed that never reached the replica). If it has (or has no history
#      at all: a new server), it refuses and names them; --reseed replaces its data with a
#      consistent dump of the new primary (those transactions are dropped: save them first,
#      see docs/runbooks/db-rejoin.md);
#   4. gtid_slave_pos = its own gtid_current_pos (for a former primary that is its binlog
#      position: gtid_slave_pos is stale), CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos,
#      START SLAVE; waits until both threads run and it has caught up with the new primary;
#   5. turns semi-synchronous commit back on on the new primary when the servers are set up
#      for it; records what it did (var/log/ops/db-failover.log, var/db-failover.status).
# Exit status: 0 replicating, 3 refused (nothing changed), 4 another run holds the lock,
# 1 failed part-way (the log says which step).
# Usage: ops/db/rejoin.sh [--reseed]       Variables: docs/replica.md#failover-and-rejoin
set -euo pipefail
# shellcheck source=ops/db/replica-lib.sh
. "$(dirname "$0")/replica-lib.sh"

reseed=0
for arg in "$@"; do
	case $arg in
	--reseed) reseed=1 ;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "rejoin.sh: unknown argument $arg (see --help)" >&2
		exit 2
		;;
	esac
done

setup_state
take_lock
setup_nodes new
log "start: make $OLD_DESC a replica of $NEW_DESC (reached as $NEW_ADDRESS:$NEW_PORT, DB_VIA=$DB_VIA)"

# 1. The new primary.
ro=$(sql NEW 'SELECT @@read_only' 2>&1) || die 3 "the new primary ($NEW_DESC) does not answer: $ro"
[[ $ro == 0 ]] || die 3 "$NEW_DESC is read-only: it is not the primary (has ops/db/failover.sh run? .env says DB_PRIMARY_HOST=$(env_get DB_PRIMARY_HOST)); nothing changed"
st=$(slave_status NEW) || die 3 "SHOW SLAVE STATUS failed on $NEW_DESC"
[[ -z $st ]] || die 3 "$NEW_DESC is itself a replica (of $(field "$st" Master_Host)): rejoin only under a promoted primary; nothing changed"

# 2. The old primary: running and read-only.
if ! sql OLD 'SELECT 1' >/dev/null 2>&1; then
	if [[ $DB_VIA == compose ]]; then
		log "starting service $OLD_SVC"
		dc up -d --no-deps --wait "$OLD_SVC" >&2 || die 3 "service $OLD_SVC does not start: docker compose logs $OLD_SVC"
	fi
	sql OLD 'SELECT 1' >/dev/null || die 3 "the old primary ($OLD_DESC) does not answer: start it first; nothing changed"
fi
sql OLD 'SET GLOBAL read_only = 1' >/dev/null || die 3 "could not set read_only on $OLD_DESC"
log "old primary read-only"

st=$(slave_status OLD) || die 1 "SHOW SLAVE STATUS failed on $OLD_DESC"
if [[ -n $st && $(field "$st" Slave_IO_Running) == Yes && $(field "$st" Slave_SQL_Running) == Yes ]]; then
	log "$OLD_DESC already replicates from $(field "$st" Master_Host); nothing to do"
	status ok "replica=$OLD_DESC" "primary=$NEW_DESC" "already=yes"
	exit 0
fi

# 3. Has the old primary anything the new one lacks? Each domain's last GTID d-s-n of the old
# primary's binlog must be in the new primary's history: its binlog state holds d-s-m, m >= n.
old_pos=$(sql OLD 'SELECT @@gtid_binlog_pos')
# The new primary's history: its binlog, and what it applied as a replica (gtid_slave_pos:
# the copy it was seeded from is in no binlog of its own).
new_state=$(sql NEW "SELECT CONCAT_WS(',', NULLIF(@@gtid_binlog_state, ''), NULLIF(@@gtid_slave_pos, ''))")
extra=
IFS=, read -r -a gtids <<<"$old_pos"
for g in "${gtids[@]}"; do
	[[ -n $g ]] || continue
	IFS=- read -r d s n <<<"$g"
	m=$(tr , '\n' <<<"$new_state" | awk -F- -v d="$d" -v s="$s" '$1 == d && $2 == s && $3 > max { max = $3 } END { if (max != "") print max }')
	if [[ -z $m || $m -lt $n ]]; then extra+="${extra:+, }$d-$s-$((${m:-0} + 1))..$g"; fi
done

if [[ -z $old_pos && $reseed == 0 ]]; then
	die 3 "$OLD_DESC has no GTID history (a new, empty server?): run ops/db/rejoin.sh --reseed to copy the new primary into it; nothing changed"
fi
if [[ -n $extra && $reseed == 0 ]]; then
	die 3 "$OLD_DESC has transactions the new primary lacks ($extra; its binlog ends at $old_pos, the new primary's history is $new_state): they were committed but never replicated. Save them (docs/runbooks/db-rejoin.md), then run ops/db/rejoin.sh --reseed, which replaces its data with a copy of the new primary; nothing changed"
fi

if [[ $reseed == 1 ]]; then
	log "re-seeding $OLD_DESC from $NEW_DESC (${extra:+diverged: $extra}${extra:-requested}); its own binlog history is reset"
	sql OLD 'STOP SLAVE; RESET SLAVE ALL; RESET MASTER' >/dev/null || die 1 "could not reset replication and binlog on $OLD_DESC"
	dump_opts=(--all-databases --master-data=1 --gtid --single-transaction --routines --events --triggers --flush-privileges)
	if [[ $DB_VIA == direct ]]; then
		{
			echo 'SET SESSION sql_log_bin = 0;'
			mariadb-dump --defaults-extra-file="$TMP_DIR/NEW.cnf" "${dump_opts[@]}"
		} | mariadb --defaults-extra-file="$TMP_DIR/OLD.cnf" || die 1 "re-seed of $OLD_DESC failed (it is read-only, not replicating): run ops/db/rejoin.sh --reseed again"
	else
		# The dump runs inside the old primary's container, from the new primary's service.
		# shellcheck disable=SC2016 # expanded by the container's shell, not here
		dc exec -T -e NEW="$NEW_SVC" -e OPTS="${dump_opts[*]}" "$OLD_SVC" sh -c 'export MYSQL_PWD="$(cat /run/secrets/db_root_password)"; { echo "SET SESSION sql_log_bin = 0;"; mariadb-dump -h "$NEW" -uroot $OPTS; } | mariadb -uroot' >&2 ||
			die 1 "re-seed of $OLD_DESC failed (it is read-only, not replicating): run ops/db/rejoin.sh --reseed again"
	fi
	log "re-seeded: gtid_slave_pos $(sql OLD 'SELECT @@gtid_slave_pos')"
else
	# A former primary's own writes are in its binlog, not in gtid_slave_pos: start from
	# gtid_current_pos (per domain the newer of the two), which is what it has applied.
	sql OLD 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = @@gtid_current_pos' >/dev/null ||
		die 1 "could not set gtid_slave_pos on $OLD_DESC"
	log "no divergence: $OLD_DESC starts replicating after ${old_pos:-nothing}"
fi

# 4. Replicate.
repl_pw=$(read_secret "$DB_REPLICATION_PASSWORD_FILE" DB_REPLICATION_PASSWORD_FILE)
semi=$(sql OLD 'SELECT @@rpl_semi_sync_slave_enabled')
sql OLD "CHANGE MASTER TO MASTER_HOST = $(lit "$NEW_ADDRESS"), MASTER_PORT = $NEW_PORT, MASTER_USER = $(lit "$DB_REPLICATION_USER"), MASTER_PASSWORD = $(lit "$repl_pw"), MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 5; START SLAVE" >/dev/null ||
	die 1 "CHANGE MASTER / START SLAVE failed on $OLD_DESC"
target=$(sql NEW 'SELECT @@gtid_binlog_pos')
deadline=$(($(date +%s) + DB_WAIT_TIMEOUT))
while :; do
	st=$(slave_status OLD) || die 1 "SHOW SLAVE STATUS failed on $OLD_DESC"
	io=$(field "$st" Slave_IO_Running) sqlt=$(field "$st" Slave_SQL_Running)
	[[ $io == Yes && $sqlt == Yes ]] && break
	if [[ $(field "$st" Last_IO_Errno) == 1236 ]]; then
		die 1 "the new primary refuses the old one's position (error 1236: $(field "$st" Last_IO_Error)): their histories diverged; run ops/db/rejoin.sh --reseed"
	fi
	if [[ $sqlt == No || $(date +%s) -ge $deadline ]]; then
		die 1 "replication does not run on $OLD_DESC (IO thread $io: $(field "$st" Last_IO_Error); SQL thread $sqlt: $(field "$st" Last_SQL_Error))"
	fi
	sleep 1
done
wait_gtid OLD "$target" || die 1 "$OLD_DESC replicates but has not caught up with $target within ${DB_WAIT_TIMEOUT}s; watch SHOW SLAVE STATUS"
log "$OLD_DESC replicates from $NEW_ADDRESS: IO and SQL threads running, caught up with $target"

# 5. Synchronous commit again, when the servers are configured for it.
if [[ $semi == 1 && $(sql NEW 'SELECT @@rpl_semi_sync_master_enabled') == 0 ]]; then
	sql NEW 'SET GLOBAL rpl_semi_sync_master_enabled = ON' >/dev/null
	# The replica announces semi-sync when its IO thread connects: reconnect it.
	sql OLD 'STOP SLAVE IO_THREAD; START SLAVE IO_THREAD' >/dev/null
	log "semi-synchronous commit on again on $NEW_DESC"
fi

status ok "replica=$OLD_DESC" "primary=$NEW_DESC" "primary_address=$NEW_ADDRESS" "reseeded=$([[ $reseed == 1 ]] && echo yes || echo no)" "caught_up_with=$target"
log "done in $(($(date +%s) - STARTED)) s"
