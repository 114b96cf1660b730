#!/usr/bin/env bash
# Restores a store from its newest backup (or the one named) over the live service: the
# disaster-recovery path. Read docs/restore-plan.md first; every method script prints its
# options with `ops/backup/<script>.sh restore --help`.
# Usage: ops/backup/restore.sh STORE [OPTIONS...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

(($# >= 1)) || die "usage: ops/backup/restore.sh STORE [OPTIONS...] (stores: $BACKUP_STORES)"
store=$1
shift
for pair in $BACKUP_STORES; do
	if [[ ${pair%%:*} == "$store" ]]; then
		exec "$BACKUP_LIB_DIR/${pair#*:}.sh" restore "$@"
	fi
done
die "unknown store $store (configured: $BACKUP_STORES)"
