#!/usr/bin/env bash
# Lists the backups of every store (or the stores named) in the repository restores read from.
# Usage: ops/backup/list.sh [STORE...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

dispatch list "$@"
