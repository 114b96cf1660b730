#!/usr/bin/env bash
# Shared by the scripts in ops/db (sourced, not run): settings, logging, locking, and the
# PostgreSQL steps of streaming replication that run on the docker host (failover.sh,
# rejoin.sh) and on a database node (replica-start.sh, rejoin-node.sh). docs/replica.md says
# how it works.
#
# Every setting is an environment variable with a default for the compose services of
# compose.prod.yaml. On a plain host (PostgreSQL without docker) set DB_OPS_MODE=host and
# the variables of docs/replica.md ("Without docker").

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	echo "lib.sh is sourced by the other scripts in ops/db, not run" >&2
	exit 2
fi
set -Eeuo pipefail
shopt -s inherit_errexit

DB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DB_SCRIPT=${DB_SCRIPT:-$(basename "$0" .sh)}

# compose: the nodes are the services db and db-replica of compose.prod.yaml, reached with
# `docker compose exec/run/stop/up`; host: the nodes are addresses, reached with psql over
# TCP, and pg_ctl for the nodes whose data directory is on this host (DB_PGDATA_MAP).
: "${DB_OPS_MODE:=compose}"
# The two nodes, by the names .env's DB_PRIMARY_HOST uses for them.
: "${DB_NODES:=db db-replica}"
: "${DB_PORT:=5432}"
# The superuser (the image's POSTGRES_USER) and the role the replicas connect as.
: "${DB_SUPERUSER:=app}"
: "${DB_REPLICATION_USER:=replicator}"
# PostgreSQL acknowledges a commit only once the replica has applied it (remote_apply).
: "${DB_SYNC_COMMIT:=false}"
# Seconds to wait for a server to start, a promotion, and a rejoined replica to stream.
: "${DB_WAIT_SECONDS:=300}"
# Where pg_ctl, pg_rewind and pg_basebackup are (empty: on PATH).
: "${PG_BINDIR:=}"

log() {
	local line
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $DB_SCRIPT: $*"
	printf '%s\n' "$line" >&2
	if [[ -n ${DB_LOG_FILE:-} ]]; then
		printf '%s\n' "$line" >>"$DB_LOG_FILE" 2>/dev/null || true
	fi
}

die() {
	log "error: $*"
	exit 1
}

# A command that fails outside a die is logged with its text.
on_error() { log "error: command failed with status $1 (line $2): $3"; }
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

# pgbin NAME: the path of a PostgreSQL program.
pgbin() {
	if [[ -n $PG_BINDIR ]]; then
		printf '%s/%s\n' "$PG_BINDIR" "$1"
	else
		printf '%s\n' "$1"
	fi
}

# secret VAR FILE_VAR DEFAULT_FILE: the value of the secret, from $VAR when it is set, else
# from the file named by $FILE_VAR (or DEFAULT_FILE), without its trailing newline.
secret() {
	local var=$1 file_var=$2 file v
	if [[ -n ${!var:-} ]]; then
		printf '%s' "${!var}"
		return
	fi
	file=${!file_var:-$3}
	[[ -r $file && -s $file ]] || die "$file_var: secret file $file is missing, empty or unreadable (set $file_var or $var)"
	v=$(<"$file")
	printf '%s' "${v%$'\n'}"
}

superuser_password() { secret DB_PASSWORD DB_PASSWORD_FILE "${DB_SECRETS_DIR:-secrets}/db_password"; }
replication_password() {
	secret DB_REPLICATION_PASSWORD DB_REPLICATION_PASSWORD_FILE "${DB_SECRETS_DIR:-secrets}/db_replication_password"
}

# standby_name NODE: the replication slot and application_name of NODE as a replica
# (lower-case letters, digits and underscores: db-replica -> replica_db_replica).
standby_name() {
	local n=${1,,}
	printf 'replica_%s\n' "${n//[^a-z0-9_]/_}"
}

# conninfo_quote VALUE: VALUE as a libpq connection-string value.
conninfo_quote() {
	local v=${1//\\/\\\\}
	printf "'%s'" "${v//\'/\\\'}"
}

# conf_quote VALUE: VALUE as a postgresql.conf string.
conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# psql_set NAME VALUE: a psql \set line that sets the variable NAME to VALUE (used as :'NAME').
psql_set() {
	local v=${2//\\/\\\\}
	printf "\\\\set %s '%s'\n" "$1" "${v//\'/\'\'}"
}

# primary_setup_sql STANDBY: the SQL (for psql, on the primary, as the superuser) that lets
# STANDBY replicate: the replication role with the password of the secret, STANDBY's
# replication slot, the pg_hba.conf line for replication connections, wal_log_hints (which
# pg_rewind needs; it takes effect at the next restart), and the reload. Idempotent.
primary_setup_sql() {
	local standby=$1
	psql_set repl_user "$DB_REPLICATION_USER"
	psql_set repl_password "$(replication_password)"
	psql_set slot "$standby"
	psql_set hba_line "host replication $DB_REPLICATION_USER all scram-sha-256"
	cat <<'SQL'
SELECT format('CREATE ROLE %I WITH LOGIN REPLICATION', :'repl_user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'repl_user') \gexec
SET password_encryption = 'scram-sha-256';
ALTER ROLE :"repl_user" WITH LOGIN REPLICATION PASSWORD :'repl_password';
SELECT pg_create_physical_replication_slot(:'slot')
  WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = :'slot');
-- The image's pg_hba.conf lets no replication connection in over the network. The line is
-- put first through SQL, so that an existing database needs no restart and no edit by hand.
SELECT format('COPY (SELECT NULLIF(l, %L) FROM unnest(%L::text[]) WITH ORDINALITY AS t(l, n) ORDER BY n) TO %L WITH (FORMAT csv, DELIMITER E''\x01'', QUOTE E''\x02'')',
              '', array_prepend(:'hba_line', string_to_array(rtrim(pg_read_file(current_setting('hba_file')), E'\n'), E'\n')),
              current_setting('hba_file'))
  WHERE position(:'hba_line' in pg_read_file(current_setting('hba_file'))) = 0 \gexec
SELECT CASE WHEN current_setting('wal_log_hints') = 'off' THEN 'ALTER SYSTEM SET wal_log_hints = on' END \gexec
SELECT pg_reload_conf();
SQL
}

# sync_sql STANDBY: on the primary, wait for STANDBY at each commit (DB_SYNC_COMMIT=true)
# or for no one; with STANDBY empty, for no one.
sync_sql() {
	if [[ $DB_SYNC_COMMIT == true && -n $1 ]]; then
		psql_set sync_names "\"$1\""
		cat <<'SQL'
ALTER SYSTEM SET synchronous_standby_names = :'sync_names';
ALTER SYSTEM SET synchronous_commit = 'remote_apply';
SELECT pg_reload_conf();
SQL
	else
		printf '%s\n' "ALTER SYSTEM RESET synchronous_standby_names;" "SELECT pg_reload_conf();"
	fi
}

# write_standby_conf PGDATA PRIMARY STANDBY: makes the data directory PGDATA a hot standby of
# PRIMARY:DB_PORT through the slot STANDBY, with hot_standby_feedback. The password is the
# replication secret's, written into postgresql.auto.conf (mode 0600, inside the data
# directory, as pg_basebackup -R does); settings that make sense only on a primary are
# removed.
write_standby_conf() {
	local pgdata=$1 primary=$2 standby=$3 conf conninfo tmp
	conf=$pgdata/postgresql.auto.conf
	conninfo="host=$(conninfo_quote "$primary") port=$DB_PORT user=$(conninfo_quote "$DB_REPLICATION_USER")"
	conninfo+=" password=$(conninfo_quote "$(replication_password)") application_name=$standby connect_timeout=10"
	tmp=$(mktemp "$pgdata/.auto.conf.XXXXXX")
	if [[ -f $conf ]]; then
		grep -Ev '^[[:space:]]*(primary_conninfo|primary_slot_name|hot_standby_feedback|synchronous_standby_names|default_transaction_read_only)[[:space:]]*=' "$conf" >"$tmp" || true
	fi
	{
		printf 'primary_conninfo = %s\n' "$(conf_quote "$conninfo")"
		printf 'primary_slot_name = %s\n' "$(conf_quote "$standby")"
		printf 'hot_standby_feedback = on\n'
	} >>"$tmp"
	chmod 0600 "$tmp"
	mv -f "$tmp" "$conf"
	: >"$pgdata/standby.signal"
}

# seed_standby PGDATA PRIMARY STANDBY: copies PRIMARY into the empty directory PGDATA with
# pg_basebackup through the slot STANDBY, and makes it a standby of PRIMARY.
seed_standby() {
	local pgdata=$1 primary=$2 standby=$3
	log "pg_basebackup from $primary:$DB_PORT into $pgdata (slot $standby)"
	PGPASSWORD=$(replication_password) "$(pgbin pg_basebackup)" --pgdata="$pgdata" --host="$primary" --port="$DB_PORT" \
		--username="$DB_REPLICATION_USER" --wal-method=stream --slot="$standby" --checkpoint=fast --no-password \
		|| die "pg_basebackup from $primary:$DB_PORT failed: check that the primary runs, that this host reaches it (firewall: TCP $DB_PORT) and the replication password (secrets/db_replication_password)"
	write_standby_conf "$pgdata" "$primary" "$standby"
}

# wait_primary HOST: waits until the server at HOST:DB_PORT accepts connections.
wait_primary() {
	local i
	for ((i = 0; i < DB_WAIT_SECONDS; i++)); do
		"$(pgbin pg_isready)" -q -h "$1" -p "$DB_PORT" -t 5 && return 0
		sleep 1
	done
	die "the primary $1:$DB_PORT did not accept connections within ${DB_WAIT_SECONDS}s"
}

# ---- on the docker host (failover.sh, rejoin.sh) ----

host_init() {
	PROJECT_DIR=${PROJECT_DIR:-$(cd "$DB_LIB_DIR/../.." && pwd)}
	cd "$PROJECT_DIR"
	: "${DB_ENV_FILE:=.env}"
	: "${DB_COMPOSE:=docker compose -f compose.yaml -f compose.prod.yaml}"
	: "${DB_LOG_DIR:=var/log/ops}"
	: "${DB_TEXTFILE_DIR:=var/lib/node-exporter/textfile}"
	: "${DB_LOCK_FILE:=var/lock/db-ops.lock}"
	mkdir -p "$DB_LOG_DIR" "$(dirname "$DB_LOCK_FILE")"
	DB_LOG_FILE=$DB_LOG_DIR/db-$DB_SCRIPT.log
	read -r -a DB_NODE_LIST <<<"$DB_NODES"
	((${#DB_NODE_LIST[@]} == 2)) || die "DB_NODES must name two nodes, not: $DB_NODES"
	[[ $DB_OPS_MODE == compose || $DB_OPS_MODE == host ]] || die "DB_OPS_MODE must be compose or host, not: $DB_OPS_MODE"
}

# lock: one failover or rejoin at a time; a second one is refused at once.
lock() {
	exec {DB_LOCK_FD}>"$DB_LOCK_FILE"
	flock -n "$DB_LOCK_FD" || die "another failover.sh or rejoin.sh is running (it holds $DB_LOCK_FILE); not running two at once"
}

# env_get KEY: the value of KEY in .env (empty when absent).
env_get() {
	[[ -f $DB_ENV_FILE ]] || return 0
	sed -n "s/^$1=//p" "$DB_ENV_FILE" | tail -n 1 | sed "s/^'\(.*\)'\$/\1/; s/^\"\(.*\)\"\$/\1/"
}

# env_set KEY VALUE: sets KEY=VALUE in .env, replacing its line or appending one, atomically
# (a new file renamed over the old), keeping the rest of the file and its mode.
env_set() {
	local key=$1 value=$2 tmp
	tmp=$(mktemp "$(dirname "$DB_ENV_FILE")/.env.XXXXXX")
	if [[ -f $DB_ENV_FILE ]]; then
		chmod --reference="$DB_ENV_FILE" "$tmp"
		awk -v k="$key" -v v="$value" '
			index($0, k "=") == 1 { if (!done) print k "=" v; done = 1; next }
			{ print }
			END { if (!done) print k "=" v }' "$DB_ENV_FILE" >"$tmp"
	else
		chmod 0600 "$tmp"
		printf '%s=%s\n' "$key" "$value" >"$tmp"
	fi
	mv -f "$tmp" "$DB_ENV_FILE"
}

# current_primary: the node .env names as the primary (the first node when it names none).
current_primary() {
	local p
	p=$(env_get DB_PRIMARY_HOST)
	printf '%s\n' "${p:-${DB_NODE_LIST[0]}}"
}

# other_node NODE: the node of DB_NODES that is not NODE.
other_node() {
	if [[ $1 == "${DB_NODE_LIST[0]}" ]]; then
		printf '%s\n' "${DB_NODE_LIST[1]}"
	elif [[ $1 == "${DB_NODE_LIST[1]}" ]]; then
		printf '%s\n' "${DB_NODE_LIST[0]}"
	else
		die "DB_PRIMARY_HOST=$1 in $DB_ENV_FILE is none of DB_NODES ($DB_NODES)"
	fi
}

# node_pgdata NODE: NODE's data directory on this host (host mode, from DB_PGDATA_MAP, a
# list of NODE=DIR), or nothing.
node_pgdata() {
	local kv
	for kv in ${DB_PGDATA_MAP:-}; do
		[[ ${kv%%=*} == "$1" ]] && printf '%s\n' "${kv#*=}"
	done
	return 0
}

# node_psql NODE: runs the SQL of stdin on NODE's database postgres as the superuser and
# prints the rows (unaligned, tuples only).
node_psql() {
	local node=$1
	if [[ $DB_OPS_MODE == compose ]]; then
		$DB_COMPOSE exec -T -u postgres "$node" psql -X -q -A -t -v ON_ERROR_STOP=1 -U "$DB_SUPERUSER" -d postgres
	else
		PGPASSWORD=$(superuser_password) PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} \
			psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$node" -p "$DB_PORT" -U "$DB_SUPERUSER" -d postgres -w
	fi
}

# node_state NODE: primary, standby, or down (no answer).
node_state() {
	local r
	r=$(node_psql "$1" <<<"SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END;" 2>/dev/null) || r=
	printf '%s\n' "${r:-down}"
}

# node_stop NODE: stops NODE's server (compose: the service; host: pg_ctl stop, when its
# data directory is on this host).
node_stop() {
	local node=$1 pgdata
	if [[ $DB_OPS_MODE == compose ]]; then
		$DB_COMPOSE stop "$node"
		return
	fi
	if [[ -n ${DB_NODE_STOP_CMD:-} ]]; then
		node=$node eval "$DB_NODE_STOP_CMD"
		return
	fi
	pgdata=$(node_pgdata "$node")
	[[ -n $pgdata ]] || {
		log "cannot stop $node from here: its data directory is not in DB_PGDATA_MAP"
		return 1
	}
	if [[ -f $pgdata/postmaster.pid ]] && "$(pgbin pg_ctl)" -D "$pgdata" status >/dev/null 2>&1; then
		"$(pgbin pg_ctl)" -D "$pgdata" -m fast -w -t "$DB_WAIT_SECONDS" stop
	fi
}

# node_start NODE: starts NODE's server.
node_start() {
	local node=$1 pgdata
	if [[ $DB_OPS_MODE == compose ]]; then
		$DB_COMPOSE up -d --no-deps "$node"
		return
	fi
	pgdata=$(node_pgdata "$node")
	# The server must not inherit the lock: it would hold it for as long as it runs.
	if [[ -n ${DB_NODE_START_CMD:-} ]]; then
		node=$node pgdata=$pgdata eval "$DB_NODE_START_CMD" {DB_LOCK_FD}>&-
		return
	fi
	[[ -n $pgdata ]] || die "cannot start $node from here: its data directory is not in DB_PGDATA_MAP"
	"$(pgbin pg_ctl)" -D "$pgdata" -l "$DB_LOG_DIR/postgres-$node.log" -w -t "$DB_WAIT_SECONDS" start {DB_LOCK_FD}>&-
}

# node_rejoin NODE PRIMARY: runs rejoin-node.sh for the stopped NODE against PRIMARY (compose:
# in a one-off container of NODE's service, with its data volume).
node_rejoin() {
	local node=$1 primary=$2 pgdata
	local -a vars=(DB_PORT="$DB_PORT" DB_SUPERUSER="$DB_SUPERUSER" DB_REPLICATION_USER="$DB_REPLICATION_USER"
		DB_REJOIN_PRIMARY="$primary" DB_REJOIN_STANDBY="$(standby_name "$node")" DB_WAIT_SECONDS="$DB_WAIT_SECONDS")
	if [[ $DB_OPS_MODE == compose ]]; then
		# The passwords go in through the environment of `docker compose run` (-e NAME takes
		# the value from this script's environment), not on its command line. Both services
		# mount ops/db at /opt/opsready/db (compose.prod.yaml).
		DB_PASSWORD=$(superuser_password) DB_REPLICATION_PASSWORD=$(replication_password) \
			$DB_COMPOSE run --rm --no-deps -T -u postgres --entrypoint bash \
			-e DB_PASSWORD -e DB_REPLICATION_PASSWORD \
			"${vars[@]/#/-e}" -e PGDATA=/var/lib/postgresql/data "$node" /opt/opsready/db/rejoin-node.sh
		return
	fi
	pgdata=$(node_pgdata "$node")
	[[ -n $pgdata ]] || die "cannot rejoin $node from here: its data directory is not in DB_PGDATA_MAP (run rejoin.sh on $node's host)"
	DB_PASSWORD=$(superuser_password) DB_REPLICATION_PASSWORD=$(replication_password) \
		env "${vars[@]}" PGDATA="$pgdata" PG_BINDIR="$PG_BINDIR" DB_SCRIPT=rejoin-node DB_LOG_FILE="$DB_LOG_FILE" \
		bash "$DB_LIB_DIR/rejoin-node.sh"
}

# record NAME "METRIC VALUE"...: the outcome of failover.sh or rejoin.sh for monitoring, as
# Prometheus textfile metrics in DB_TEXTFILE_DIR/db_NAME.prom (node-exporter's textfile
# collector reads that directory).
record() {
	local name=$1 tmp file
	shift
	mkdir -p "$DB_TEXTFILE_DIR"
	file=$DB_TEXTFILE_DIR/db_$name.prom
	tmp=$(mktemp "$file.XXXXXX")
	printf '%s\n' "$@" >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$file"
}
