#!/usr/bin/env bash
# Restores the newest backup of every store (or the stores named) into a scratch instance,
# probes it against its manifest, and records the result: metrics and var/log/ops/restore-test.log
# (`make backups` / list.sh show the last one). Never touches the live services. Reading the
# off-site copy, it first checks that the copy holds the newest local backup.
# Usage: ops/backup/restore-test.sh [STORE...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

dispatch restore-test "$@"
