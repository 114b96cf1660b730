#!/usr/bin/env bash
# Entrypoint of the db and db-replica services: the image's docker-entrypoint.sh with the
# command, plus the replication options of DB_REPLICATION_OPTIONS (compose.prod.yaml), plus
# --read-only=1 when this server is a replica. A replica is one with replication configured
# (master.info in the data directory: CHANGE MASTER writes it, ops/db/failover.sh's
# RESET SLAVE ALL removes it), or, on the very first start, the service started with
# DB_START_ROLE=replica (db-replica, before replica-seed.sh configured it). So a promoted
# replica stays writable and a rejoined old primary stays read-only across restarts.
set -euo pipefail
datadir=${DB_DATADIR:-/var/lib/mysql}
[[ $# -gt 0 ]] || set -- mariadbd
opts=()
read -r -d '' -a opts <<<"${DB_REPLICATION_OPTIONS:-}" || true
if [[ -f $datadir/master.info ]] || { [[ ! -d $datadir/mysql ]] && [[ ${DB_START_ROLE:-primary} == replica ]]; }; then
	opts+=(--read-only=1)
fi
exec "${DB_ENTRYPOINT:-docker-entrypoint.sh}" "$@" "${opts[@]}"
