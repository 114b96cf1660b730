#!/usr/bin/env bash
# Restores the newest backup of every store (or the stores named) into a scratch instance,
# probes it against its manifest, and records the result: metrics, var/log/ops/restore-test.log and
# docs/backup-policy.md. Never touches the live services.
# Usage: ops/backup/restore-test.sh [STORE...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

dispatch restore-test "$@"
