#!/usr/bin/env bash
# Entrypoint of the db-replica service (compose.prod.yaml): on the first start (an empty data
# volume) it prepares the primary for this replica (ops/db/lib.sh, primary_setup_sql), copies
# it with pg_basebackup through a replication slot and makes the copy a hot standby; then it
# runs its arguments (the image's `docker-entrypoint.sh postgres`). A data directory that
# exists is started as it is (a replica, or the primary after a failover).
#
# Settings (environment): PGDATA, DB_REPLICA_SOURCE (the primary's address), DB_REPLICA_NAME
# (this node, as DB_NODES names it), DB_PORT, DB_SUPERUSER, DB_PASSWORD_FILE,
# DB_REPLICATION_USER, DB_REPLICATION_PASSWORD_FILE, DB_SYNC_COMMIT, PG_BINDIR. On a plain
# host, run it as the postgres user without arguments, then start the server.
DB_SCRIPT=replica-start
# shellcheck source=ops/db/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PGDATA:?set PGDATA: the data directory of the replica}"
: "${DB_REPLICA_SOURCE:=db}"
: "${DB_REPLICA_NAME:=db-replica}"
: "${DB_SECRETS_DIR:=/run/secrets}"

if [[ $(id -u) == 0 ]]; then
	# As root (the container's start): the data directory belongs to postgres, then the rest
	# runs as postgres, as the image's own entrypoint does.
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	standby=$(standby_name "$DB_REPLICA_NAME")
	[[ -z $(ls -A "$PGDATA") ]] || die "$PGDATA has files but no PG_VERSION: not a data directory; move them away and restart"
	wait_primary "$DB_REPLICA_SOURCE"
	log "preparing $DB_REPLICA_SOURCE for the replica $standby (role $DB_REPLICATION_USER, slot, pg_hba.conf)"
	primary_setup_sql "$standby" | PGPASSWORD=$(superuser_password) PGCONNECT_TIMEOUT=10 \
		"$(pgbin psql)" -X -q -A -t -v ON_ERROR_STOP=1 -h "$DB_REPLICA_SOURCE" -p "$DB_PORT" -U "$DB_SUPERUSER" -d postgres -w >/dev/null \
		|| die "could not prepare the primary $DB_REPLICA_SOURCE:$DB_PORT as $DB_SUPERUSER (secrets/db_password)"
	seed_standby "$PGDATA" "$DB_REPLICA_SOURCE" "$standby"
	if [[ $DB_SYNC_COMMIT == true ]]; then
		# Only now: from here on, every commit on the primary waits for this replica.
		log "synchronous commit: the primary now waits for $standby (remote_apply)"
		sync_sql "$standby" | PGPASSWORD=$(superuser_password) "$(pgbin psql)" -X -q -A -t -v ON_ERROR_STOP=1 \
			-h "$DB_REPLICA_SOURCE" -p "$DB_PORT" -U "$DB_SUPERUSER" -d postgres -w >/dev/null
	fi
	log "replica seeded from $DB_REPLICA_SOURCE"
elif [[ -f $PGDATA/standby.signal ]]; then
	# Still a standby: its connection settings follow the secret (a rotated password).
	write_standby_conf "$PGDATA" "$DB_REPLICA_SOURCE" "$(standby_name "$DB_REPLICA_NAME")"
fi
if (($# > 0)); then
	exec "$@"
fi
