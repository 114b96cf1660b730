#!/usr/bin/env bash
# Applies the retention (daily/weekly/monthly) to every store (or the stores named); refuses
# to prune a store whose newest backup is missing or older than BACKUP_MAX_AGE_HOURS.
# Usage: ops/backup/prune.sh [STORE...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

dispatch prune "$@"
