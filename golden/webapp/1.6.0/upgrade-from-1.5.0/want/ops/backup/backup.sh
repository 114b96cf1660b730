#!/usr/bin/env bash
# Backs up every store of ops/backup/backup.env (or the stores named), one after the other;
# a failed store does not stop the others, and the job fails at the end. BACKUP_KIND=full|diff|incr
# forces the kind of a physical backup (default: auto, see docs/backup-policy.md). Each store's
# outcome is recorded: var/log/ops/backup-results.log and backup_last_result (textfile metrics).
# Usage: ops/backup/backup.sh [STORE...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

dispatch backup "$@"
