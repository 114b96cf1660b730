#!/usr/bin/env bash
# Healthcheck of the db and db-replica services: the server answers, and when it is a
# replica (SHOW SLAVE STATUS has a row) both replication threads run. A replica whose IO
# thread is stopped or reconnecting, or whose SQL thread stopped on an error, is unhealthy.
# Variables (defaults for the container): DB_ADMIN_USER (root), DB_ADMIN_PASSWORD_FILE
# (/run/secrets/db_root_password), DB_LOCAL_SOCKET (the client's default), DB_LOCAL_HOST and
# DB_LOCAL_PORT (instead of the socket).
set -euo pipefail
pwfile=${DB_ADMIN_PASSWORD_FILE:-/run/secrets/db_root_password}
args=(-u"${DB_ADMIN_USER:-root}" --connect-timeout=3)
if [[ -n ${DB_LOCAL_HOST:-} ]]; then
	args+=(--protocol=TCP -h"$DB_LOCAL_HOST" -P"${DB_LOCAL_PORT:-3306}")
elif [[ -n ${DB_LOCAL_SOCKET:-} ]]; then
	args+=(-S"$DB_LOCAL_SOCKET")
fi
MYSQL_PWD=$(<"$pwfile")
export MYSQL_PWD
st=$(mariadb "${args[@]}" -E -e 'SHOW SLAVE STATUS') || {
	echo "unhealthy: the server does not answer" >&2
	exit 1
}
[[ -n $st ]] || exit 0 # the primary
# A here-string, not a pipe: awk stops at the field, and a writer still writing into the pipe
# would die of SIGPIPE (exit 141 under pipefail: an unhealthy verdict on a healthy replica).
field() { awk -v k="$1" '{ sub(/^ +/, "") } index($0, k ": ") == 1 { print substr($0, length(k) + 3); exit }' <<<"$st"; }
io=$(field Slave_IO_Running)
sqlt=$(field Slave_SQL_Running)
if [[ $io != Yes || $sqlt != Yes ]]; then
	echo "unhealthy: replication broken: IO thread $io ($(field Last_IO_Error)), SQL thread $sqlt ($(field Last_SQL_Error))" >&2
	exit 1
fi
