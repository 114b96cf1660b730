#!/usr/bin/env bash
# Run by rejoin.sh on the node to rejoin, with its server stopped (compose: in a one-off
# container of the node's service, with its data volume): winds the data directory back to
# where it left the new primary's history with pg_rewind and makes it a standby of the new
# primary. When pg_rewind cannot (no wal_log_hints nor data checksums, WAL it needs already
# removed), it copies the new primary afresh with pg_basebackup; the old files are kept in
# $PGDATA/.before-rejoin-<time>/ until you delete them.
#
# Settings (environment): PGDATA, DB_REJOIN_PRIMARY, DB_REJOIN_STANDBY (slot and
# application_name), DB_PORT, DB_SUPERUSER, DB_PASSWORD, DB_REPLICATION_USER,
# DB_REPLICATION_PASSWORD, PG_BINDIR, DB_REJOIN_RESEED (auto: re-seed when pg_rewind fails;
# never: fail instead).
DB_SCRIPT=${DB_SCRIPT:-rejoin-node}
# shellcheck source=ops/db/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PGDATA:?set PGDATA: the data directory of the node to rejoin}"
: "${DB_REJOIN_PRIMARY:?set DB_REJOIN_PRIMARY: the new primary}"
: "${DB_REJOIN_STANDBY:?set DB_REJOIN_STANDBY: the slot of this node}"
: "${DB_REJOIN_RESEED:=auto}"
[[ -s $PGDATA/PG_VERSION ]] || die "$PGDATA is not a PostgreSQL data directory"

# The password goes in through PGPASSWORD, not in the connection string (which `ps` shows).
source_conn="host=$(conninfo_quote "$DB_REJOIN_PRIMARY") port=$DB_PORT user=$(conninfo_quote "$DB_SUPERUSER") dbname=postgres connect_timeout=10"
# pg_rewind first ends the crash recovery of a server that was killed (in single-user mode).
log "pg_rewind $PGDATA from $DB_REJOIN_PRIMARY:$DB_PORT"
if out=$(PGPASSWORD=$(superuser_password) "$(pgbin pg_rewind)" --target-pgdata="$PGDATA" --source-server="$source_conn" 2>&1); then
	log "rewound with pg_rewind: ${out##*$'\n'}"
else
	log "pg_rewind failed: ${out//$'\n'/; }"
	[[ $DB_REJOIN_RESEED == auto ]] || die "pg_rewind failed and DB_REJOIN_RESEED=$DB_REJOIN_RESEED: re-seed with DB_REJOIN_RESEED=auto (the old files are kept aside)"
	old=$PGDATA/.before-rejoin-$(date -u +%Y%m%dT%H%M%SZ)
	new=$PGDATA/.reseed
	rm -rf "$new"
	mkdir -m 0700 "$new"
	seed_standby "$new" "$DB_REJOIN_PRIMARY" "$DB_REJOIN_STANDBY"
	mkdir -m 0700 "$old"
	find "$PGDATA" -mindepth 1 -maxdepth 1 ! -name "$(basename "$old")" ! -name .reseed ! -name '.before-rejoin-*' -exec mv -t "$old" {} +
	find "$new" -mindepth 1 -maxdepth 1 -exec mv -t "$PGDATA" {} +
	rmdir "$new"
	log "re-seeded $PGDATA from $DB_REJOIN_PRIMARY; the old files are in $old (delete them once the replica streams)"
fi
write_standby_conf "$PGDATA" "$DB_REJOIN_PRIMARY" "$DB_REJOIN_STANDBY"
log "$PGDATA is a standby of $DB_REJOIN_PRIMARY (slot $DB_REJOIN_STANDBY)"
