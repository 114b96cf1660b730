#!/usr/bin/env bash
# Makes an empty MariaDB server a GTID replica of the primary: creates (or updates) the
# replication account on the primary, copies everything from a consistent snapshot
# (mariadb-dump --single-transaction --master-data=1 --gtid: the data, accounts and grants,
# and the GTID position of the snapshot as gtid_slave_pos), then CHANGE MASTER TO ...
# MASTER_USE_GTID=slave_pos and START SLAVE.
# In compose it runs once, on the first start of db-replica (mounted into
# /docker-entrypoint-initdb.d, against the image's temporary server); on a plain host:
#   DB_SEED_HOST=10.0.0.1 DB_LOCAL_SOCKET=/run/mysqld/mysqld.sock ops/db/replica-seed.sh
# Variables (defaults for the container): DB_SEED_HOST (db), DB_SEED_PORT (3306),
# DB_LOCAL_SOCKET (the client's default socket), DB_ADMIN_USER (root),
# DB_ADMIN_PASSWORD_FILE (/run/secrets/db_root_password, the same on both servers),
# DB_REPLICATION_USER (replication), DB_REPLICATION_PASSWORD_FILE
# (/run/secrets/db_replication_password), DB_SEED_WAIT (seconds to wait for the primary, 600).
set -euo pipefail

DB_SEED_HOST=${DB_SEED_HOST:-db}
DB_SEED_PORT=${DB_SEED_PORT:-3306}
DB_LOCAL_SOCKET=${DB_LOCAL_SOCKET:-}
DB_ADMIN_USER=${DB_ADMIN_USER:-root}
DB_ADMIN_PASSWORD_FILE=${DB_ADMIN_PASSWORD_FILE:-/run/secrets/db_root_password}
DB_REPLICATION_USER=${DB_REPLICATION_USER:-replication}
DB_REPLICATION_PASSWORD_FILE=${DB_REPLICATION_PASSWORD_FILE:-/run/secrets/db_replication_password}
DB_SEED_WAIT=${DB_SEED_WAIT:-600}

say() { echo "replica-seed: $*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

cnf_value() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
lit() {
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf "'%s'" "$s"
}

for f in "$DB_ADMIN_PASSWORD_FILE" "$DB_REPLICATION_PASSWORD_FILE"; do
	[[ -s $f ]] || die "cannot read $f (a compose secret; on a plain host set DB_ADMIN_PASSWORD_FILE and DB_REPLICATION_PASSWORD_FILE)"
done
admin_pw=$(<"$DB_ADMIN_PASSWORD_FILE")
repl_pw=$(<"$DB_REPLICATION_PASSWORD_FILE")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
	echo '[client]'
	echo "user=$(cnf_value "$DB_ADMIN_USER")"
	echo "password=$(cnf_value "$admin_pw")"
	echo "host=$(cnf_value "$DB_SEED_HOST")"
	echo "port=$DB_SEED_PORT"
	echo 'protocol=TCP'
	echo '[mariadb-client]' # mariadb only: mariadb-dump has no connect-timeout
	echo 'connect-timeout=5'
} >"$tmp/primary.cnf"
{
	echo '[client]'
	echo "user=$(cnf_value "$DB_ADMIN_USER")"
	echo "password=$(cnf_value "$admin_pw")"
	[[ -z $DB_LOCAL_SOCKET ]] || echo "socket=$(cnf_value "$DB_LOCAL_SOCKET")"
} >"$tmp/local.cnf"
chmod 0600 "$tmp"/*.cnf
primary() { mariadb --defaults-extra-file="$tmp/primary.cnf" -N -B "$@"; }
local_db() { mariadb --defaults-extra-file="$tmp/local.cnf" -N -B "$@"; }

[[ -z $(local_db -e 'SHOW SLAVE STATUS') ]] || die "this server is already a replica: nothing to seed (ops/db/rejoin.sh --reseed re-seeds a server)"

deadline=$(($(date +%s) + DB_SEED_WAIT))
until primary -e 'SELECT 1' >/dev/null 2>"$tmp/err"; do
	[[ $(date +%s) -lt $deadline ]] || die "the primary $DB_SEED_HOST:$DB_SEED_PORT does not answer after ${DB_SEED_WAIT}s: $(<"$tmp/err")"
	sleep 3
done
[[ $(primary -e 'SELECT @@log_bin') == 1 ]] || die "the primary $DB_SEED_HOST:$DB_SEED_PORT has no binary log (log_bin=OFF): start it with compose.prod.yaml's settings"

# The account exists on the primary before the snapshot, so the copy has it too (a promoted
# replica serves the old primary with the same account).
primary -e "CREATE USER IF NOT EXISTS $(lit "$DB_REPLICATION_USER")@'%' IDENTIFIED BY $(lit "$repl_pw");
ALTER USER $(lit "$DB_REPLICATION_USER")@'%' IDENTIFIED BY $(lit "$repl_pw");
GRANT REPLICATION SLAVE ON *.* TO $(lit "$DB_REPLICATION_USER")@'%';" || die "could not create the replication account on the primary"

# Whatever this new server logged itself (its initialisation) is no history to keep: with
# gtid_strict_mode a local GTID ahead of the primary's would stop replication.
local_db -e 'RESET MASTER' || die "RESET MASTER failed on this server"
say "copying a snapshot of $DB_SEED_HOST:$DB_SEED_PORT"
start=$(date +%s)
# Not written to this server's binlog: its GTID history must stay the primary's.
{
	echo 'SET SESSION sql_log_bin = 0;'
	mariadb-dump --defaults-extra-file="$tmp/primary.cnf" --all-databases --master-data=1 --gtid \
		--single-transaction --routines --events --triggers --flush-privileges
} | local_db || die "copying the snapshot failed: remove this server's data (its volume) and start it again"
pos=$(local_db -e 'SELECT @@gtid_slave_pos')
say "snapshot copied in $(($(date +%s) - start)) s, at GTID ${pos:-(empty)}"

local_db -e "CHANGE MASTER TO MASTER_HOST = $(lit "$DB_SEED_HOST"), MASTER_PORT = $DB_SEED_PORT,
MASTER_USER = $(lit "$DB_REPLICATION_USER"), MASTER_PASSWORD = $(lit "$repl_pw"),
MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 5;
START SLAVE;" || die "CHANGE MASTER failed"
say "replicating from $DB_SEED_HOST:$DB_SEED_PORT"
