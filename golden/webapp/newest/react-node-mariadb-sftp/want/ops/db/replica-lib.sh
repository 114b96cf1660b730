#!/usr/bin/env bash
# Shared by ops/db/failover.sh and ops/db/rejoin.sh (sourced, not run): how the two MariaDB
# servers are reached, the lock, the log and status file, and the one line of .env that says
# where the primary is. docs/replica.md lists every variable.
#
# DB_VIA=compose (the default): the services `db` and `db-replica` of this compose project, on
#   this host, through `docker compose exec` (root's password is the container's secret).
#   Which one is the primary is what .env's DB_PRIMARY_HOST says.
# DB_VIA=direct: mariadb clients to the addresses or sockets in DB_OLD_PRIMARY_* and
#   DB_NEW_PRIMARY_* (HOST, PORT, SOCKET), for servers on other hosts or outside containers.
#   The old primary is the server being replaced, the new primary the replica being promoted.

# The variables it sets are read by the scripts that source it.
# shellcheck disable=SC2034

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	echo "replica-lib.sh is sourced by ops/db/failover.sh and ops/db/rejoin.sh, not run" >&2
	exit 2
fi

PROJECT_DIR=${PROJECT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DB_ENV_FILE=${DB_ENV_FILE:-$PROJECT_DIR/.env}
DB_STATE_DIR=${DB_STATE_DIR:-$PROJECT_DIR/var}
DB_VIA=${DB_VIA:-compose}
DB_COMPOSE_FILES=${DB_COMPOSE_FILES:-compose.yaml:compose.prod.yaml}
DB_ADMIN_USER=${DB_ADMIN_USER:-root}
DB_ADMIN_PASSWORD_FILE=${DB_ADMIN_PASSWORD_FILE:-$PROJECT_DIR/secrets/db_root_password}
DB_REPLICATION_USER=${DB_REPLICATION_USER:-replication}
DB_REPLICATION_PASSWORD_FILE=${DB_REPLICATION_PASSWORD_FILE:-$PROJECT_DIR/secrets/db_replication_password}
DB_WAIT_TIMEOUT=${DB_WAIT_TIMEOUT:-120}

LOG_FILE=$DB_STATE_DIR/log/ops/db-failover.log
STATUS_FILE=$DB_STATE_DIR/db-failover.status
SCRIPT_NAME=$(basename "$0")
STARTED=$(date +%s)

log() {
	local line
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $SCRIPT_NAME: $*"
	printf '%s\n' "$line" >&2
	printf '%s\n' "$line" >>"$LOG_FILE" 2>/dev/null || true
}

# status RESULT [KEY=VALUE...]: replaces the status file (one KEY=VALUE a line) atomically.
status() {
	local tmp
	tmp=$(mktemp "$STATUS_FILE.XXXXXX")
	{
		echo "action=${SCRIPT_NAME%.sh}"
		echo "result=$1"
		echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "seconds=$(($(date +%s) - STARTED))"
		shift
		printf '%s\n' "$@"
	} >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$STATUS_FILE"
}

# die CODE MESSAGE: logs, records the failure and exits with CODE (3: refused, nothing changed;
# 4: another run holds the lock; 1: failed part-way, the log says where).
die() {
	local code=$1
	shift
	log "ERROR: $*"
	if [[ $code != 4 ]]; then
		status "$([[ $code == 3 ]] && echo refused || echo failed)" "error=$*" || true
	fi
	exit "$code"
}

setup_state() {
	mkdir -p "$DB_STATE_DIR/log/ops" || die 1 "cannot create $DB_STATE_DIR/log/ops: set DB_STATE_DIR to a writable folder"
}

# take_lock: one failover.sh or rejoin.sh at a time (flock; released when the script exits).
take_lock() {
	exec 9>>"$DB_STATE_DIR/db-failover.lock"
	if ! flock -n 9; then
		die 4 "another ops/db/failover.sh or ops/db/rejoin.sh is running (lock $DB_STATE_DIR/db-failover.lock held); wait for it and read $LOG_FILE"
	fi
}

# env_get KEY: the value of KEY in .env (the last assignment; empty when absent).
env_get() {
	[[ -f $DB_ENV_FILE ]] || return 0
	sed -n "s/^$1=//p" "$DB_ENV_FILE" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

# env_set KEY VALUE: rewrites the line KEY=... of .env (adds it when absent), keeping every
# other line and the file's mode; the new file replaces the old one in one rename.
env_set() {
	local key=$1 value=$2 tmp
	[[ $value =~ ^[A-Za-z0-9._:-]+$ ]] || die 1 "refusing to write $key=$value to $DB_ENV_FILE: not a host name or address"
	tmp=$(mktemp "$DB_ENV_FILE.XXXXXX") || die 1 "cannot write beside $DB_ENV_FILE"
	if [[ -f $DB_ENV_FILE ]]; then
		chmod --reference="$DB_ENV_FILE" "$tmp"
		chown --reference="$DB_ENV_FILE" "$tmp" 2>/dev/null || true
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

# dc ARGS: docker compose with the production files (DB_COMPOSE_FILES, colon-separated).
DC=(docker compose --project-directory "$PROJECT_DIR")
IFS=: read -r -a _files <<<"$DB_COMPOSE_FILES"
for _f in "${_files[@]}"; do DC+=(-f "$PROJECT_DIR/$_f"); done
unset _files _f
dc() { "${DC[@]}" "$@"; }

# cnf_value TEXT: TEXT quoted for an option file.
cnf_value() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# lit TEXT: TEXT as an SQL string literal.
lit() {
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf "'%s'" "$s"
}

read_secret() {
	[[ -r $1 ]] || die 3 "cannot read $1: run from the project folder or set ${2}"
	local v
	v=$(<"$1")
	[[ -n $v ]] || die 3 "$1 is empty"
	printf '%s' "$v"
}

TMP_DIR=
cleanup_tmp() { [[ -z $TMP_DIR ]] || rm -rf "$TMP_DIR"; }
trap cleanup_tmp EXIT

# setup_nodes ROLE_OF_DB_PRIMARY_HOST: decides what OLD and NEW are. For compose, the service
# .env names as the primary is OLD for failover.sh ("old") and NEW for rejoin.sh ("new").
OLD_SVC='' NEW_SVC='' OLD_DESC='' NEW_DESC='' NEW_ADDRESS='' NEW_PORT=''
setup_nodes() {
	local current
	case $DB_VIA in
	compose)
		current=$(env_get DB_PRIMARY_HOST)
		current=${current:-db}
		local other
		case $current in
		db) other=db-replica ;;
		db-replica) other=db ;;
		*) die 3 "DB_PRIMARY_HOST in $DB_ENV_FILE is $current, not a service of this compose project (db or db-replica): with a server on another host, run with DB_VIA=direct and DB_OLD_PRIMARY_HOST, DB_NEW_PRIMARY_HOST (docs/replica.md)" ;;
		esac
		if [[ $1 == old ]]; then
			OLD_SVC=${DB_OLD_PRIMARY_SERVICE:-$current} NEW_SVC=${DB_NEW_PRIMARY_SERVICE:-$other}
		else
			NEW_SVC=${DB_NEW_PRIMARY_SERVICE:-$current} OLD_SVC=${DB_OLD_PRIMARY_SERVICE:-$other}
		fi
		OLD_DESC="service $OLD_SVC" NEW_DESC="service $NEW_SVC"
		NEW_ADDRESS=${DB_NEW_PRIMARY_ADDRESS:-$NEW_SVC}
		NEW_PORT=${DB_NEW_PRIMARY_PORT:-3306}
		;;
	direct)
		TMP_DIR=$(mktemp -d)
		local pw node
		pw=$(read_secret "$DB_ADMIN_PASSWORD_FILE" DB_ADMIN_PASSWORD_FILE)
		for node in OLD NEW; do
			local host_var=DB_${node}_PRIMARY_HOST port_var=DB_${node}_PRIMARY_PORT sock_var=DB_${node}_PRIMARY_SOCKET
			local host=${!host_var:-} port=${!port_var:-3306} sock=${!sock_var:-}
			[[ -n $host || -n $sock ]] || die 3 "DB_VIA=direct needs $host_var (or $sock_var) for the ${node,,} primary"
			{
				echo '[client]'
				echo "user=$(cnf_value "$DB_ADMIN_USER")"
				echo "password=$(cnf_value "$pw")"
				if [[ -n $sock ]]; then
					echo "socket=$(cnf_value "$sock")"
				else
					echo "host=$(cnf_value "$host")"
					echo "port=$port"
					echo 'protocol=TCP'
				fi
				echo '[mariadb-client]' # mariadb only: mariadb-dump has no connect-timeout
				echo 'connect-timeout=5'
			} >"$TMP_DIR/$node.cnf"
			chmod 0600 "$TMP_DIR/$node.cnf"
			if [[ -n $sock ]]; then printf -v "${node}_DESC" 'MariaDB at %s' "$sock"; else printf -v "${node}_DESC" 'MariaDB at %s:%s' "$host" "$port"; fi
		done
		NEW_ADDRESS=${DB_NEW_PRIMARY_ADDRESS:-${DB_NEW_PRIMARY_HOST:-}}
		NEW_PORT=${DB_NEW_PRIMARY_PORT:-3306}
		[[ -n $NEW_ADDRESS ]] || die 3 "set DB_NEW_PRIMARY_ADDRESS: the address the application and the other server use to reach the new primary"
		;;
	*) die 3 "DB_VIA is $DB_VIA: use compose or direct" ;;
	esac
}

# sql NODE SQL: runs SQL as the admin user on OLD or NEW; prints rows tab-separated, no
# header. Fails (status 1, the client's message on stderr) when the server does not answer.
sql() {
	local node=$1 q=$2
	if [[ $DB_VIA == direct ]]; then
		timeout 60 mariadb --defaults-extra-file="$TMP_DIR/$node.cnf" -N -B -e "$q"
	else
		local svc=${node}_SVC
		# shellcheck disable=SC2016 # expanded by the container's shell, not here
		printf '%s\n' "$q" | timeout 60 "${DC[@]}" exec -T "${!svc}" sh -c 'export MYSQL_PWD="$(cat /run/secrets/db_root_password)"; exec mariadb -uroot -N -B --connect-timeout=5'
	fi
}

# slave_status NODE: SHOW SLAVE STATUS as "Field: value" lines (nothing when not a replica).
slave_status() {
	local node=$1
	if [[ $DB_VIA == direct ]]; then
		timeout 60 mariadb --defaults-extra-file="$TMP_DIR/$node.cnf" -E -e 'SHOW SLAVE STATUS'
	else
		local svc=${node}_SVC
		# shellcheck disable=SC2016 # expanded by the container's shell, not here
		echo 'SHOW SLAVE STATUS' | timeout 60 "${DC[@]}" exec -T "${!svc}" sh -c 'export MYSQL_PWD="$(cat /run/secrets/db_root_password)"; exec mariadb -uroot -E --connect-timeout=5'
	fi
}

# field STATUS NAME: the value of NAME in slave_status's output.
field() {
	# A here-string, not a pipe: awk stops early, and a writer into a pipe would die of SIGPIPE.
	awk -v k="$2" '{ sub(/^ +/, "") } index($0, k ": ") == 1 { print substr($0, length(k) + 3); exit }' <<<"$1"
}

# wait_gtid NODE POS: waits until NODE (a replica) has applied POS; fails after DB_WAIT_TIMEOUT.
wait_gtid() {
	local r
	r=$(sql "$1" "SELECT MASTER_GTID_WAIT($(lit "$2"), $DB_WAIT_TIMEOUT)") || return 1
	[[ $r == 0 ]]
}
