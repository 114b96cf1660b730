#!/usr/bin/env bash
# Healthcheck of db-replica (and of db in production, which is the replica after
# ops/db/rejoin.sh): healthy while the server is the primary, or a standby whose WAL receiver
# streams from the primary. A replica that answers queries but does not replicate (primary
# gone, slot or password wrong, WAL it needs removed) is unhealthy. Over TCP to 127.0.0.1,
# like db's pg_isready check: the image's server listens on its socket only while it
# initialises a new database (DB_HEALTH_HOST: another host or socket directory).
set -euo pipefail
state=$(PGCONNECT_TIMEOUT=4 psql -X -q -A -t -h "${DB_HEALTH_HOST:-127.0.0.1}" -U "${DB_SUPERUSER:-app}" -d postgres -c "
  SELECT CASE WHEN NOT pg_is_in_recovery() THEN 'primary'
              WHEN EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 'streaming'
              ELSE 'not streaming' END")
case $state in
primary | streaming) echo "$state" ;;
*)
	echo "replication broken: $state (docs/runbooks/db-failover.md)" >&2
	exit 1
	;;
esac
