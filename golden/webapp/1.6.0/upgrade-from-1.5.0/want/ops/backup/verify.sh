#!/usr/bin/env bash
# Verifies the backup repositories of this host, daily (ops/systemd/<name>-verify.timer or the
# cron file). The weekly restore test reads the off-site copy when one is configured, so damage
# to this host's repositories, or a hole in the WAL archive, would otherwise go unseen until
# the day a restore needs them.
#   primary     restic check --read-data-subset of this host's restic repository
#   offsite     the same for the off-site copy (when BACKUP_OFFSITE_REPOSITORY is set)
#   pgbackrest  pgbackrest verify of the local pgBackRest repository (every backup file and WAL
#               segment against its checksum) and the continuity of the WAL archive
#               (PostgreSQL with pgBackRest only: `postgres-pgbackrest.sh verify`)
# Each result goes to var/log/ops/verify.log and to the textfile metrics
# backup_verify_last_result and, when it passed, backup_verify_last_success_timestamp_seconds
# (labels repository and tool). A failed check does not stop the others; the job fails at the end.
# BACKUP_VERIFY_READ_DATA_SUBSET: the part of the packs restic reads back and checks; the
# default, auto, is the n-th seventh on the n-th day of the week (1/7 on Monday ... 7/7 on
# Sunday), so that the daily runs read every pack once a week at a seventh of the cost each;
# set it in ops/backup/backup.env (e.g. 5%), or for one run with --read-data-subset=100%.
# The restic checks hold the locks of every store: backups and pruning wait meanwhile.
# Usage: ops/backup/verify.sh [--read-data-subset=N%|n/t] [primary|offsite|pgbackrest ...]
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

: "${BACKUP_VERIFY_READ_DATA_SUBSET:=auto}"

# record_verify REPOSITORY TOOL passed|failed START_EPOCH DETAIL: a line in verify.log and the
# metrics, written atomically; the success timestamp only when the check passed, so that a
# failing check leaves the last success in place and goes stale.
record_verify() {
	local repo=$1 tool=$2 result=$3 start=$4 detail=$5 end labels value=0
	end=$(now)
	labels="repository=\"$repo\",tool=\"$tool\""
	[[ $result != passed ]] || value=1
	mkdir -p "$BACKUP_LOG_DIR"
	printf '%s repository=%s tool=%s result=%s duration_s=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		"$repo" "$tool" "$result" "$((end - start))" "$detail" >>"$BACKUP_LOG_DIR/verify.log"
	write_file "$BACKUP_TEXTFILE_DIR/backup_verify_result_$repo.prom" <<EOF
# HELP backup_verify_last_result Result of the last verification of a backup repository: 1 passed, 0 failed.
# TYPE backup_verify_last_result gauge
backup_verify_last_result{$labels} $value
EOF
	if ((value == 1)); then
		write_file "$BACKUP_TEXTFILE_DIR/backup_verify_$repo.prom" <<EOF
# HELP backup_verify_last_success_timestamp_seconds Unix time the last passed verification of a backup repository finished.
# TYPE backup_verify_last_success_timestamp_seconds gauge
backup_verify_last_success_timestamp_seconds{$labels} $end
# HELP backup_verify_last_duration_seconds Duration of the last passed verification of a backup repository.
# TYPE backup_verify_last_duration_seconds gauge
backup_verify_last_duration_seconds{$labels} $((end - start))
EOF
	fi
}

# error_of FILE: the cause of a failure from a check's stderr: its last `error:` line (ours),
# else restic's or pgBackRest's last error lines, quoted for a log line.
error_of() {
	local detail
	detail=$(grep ': error: ' "$1" | tail -n 1 | sed 's/^.*: error: //' || true)
	[[ -n $detail ]] || detail=$(grep -E -i 'error|fatal|invalid|missing|not match|locked' "$1" | tail -n 3 | paste -sd ' ' || true)
	[[ -n $detail ]] || detail=$(grep . "$1" | tail -n 2 | paste -sd ' ' || true)
	[[ -n $detail ]] || detail="exited with status $2"
	printf '%s\n' "$detail" | tr -s ' \t' ' ' | tr '"' "'"
}

# subset: the --read-data-subset of today's run.
subset() {
	case $BACKUP_VERIFY_READ_DATA_SUBSET in
	auto) echo "$(date +%u)/7" ;;
	*) echo "$BACKUP_VERIFY_READ_DATA_SUBSET" ;;
	esac
}

# check_restic primary|offsite: restic check, reading back a subset of the packs (in a child,
# so that a fatal error of restic_on is recorded, not lost).
check_restic() {
	local repo=$1 path
	if [[ $repo == primary ]]; then
		path=$BACKUP_RESTIC_REPOSITORY
	else
		path=$(abs "$BACKUP_OFFSITE_REPOSITORY")
	fi
	if [[ $path != *:* && ! -f $path/config ]]; then
		die "no restic repository at $path (its config file is missing): has a backup run yet, is the disk mounted?"
	fi
	restic_on "$repo" check --read-data-subset="$(subset)" >&2 ||
		die "restic check of the $repo repository $path found errors or could not run (see above)"
}

# run_check REPOSITORY TOOL CMD...: runs CMD and records its result; returns its status.
run_check() {
	local repo=$1 tool=$2 start rc=0 out err
	shift 2
	start=$(now)
	out=$(mktemp)
	err=$(mktemp)
	("$@") >"$out" 2>"$err" || rc=$?
	cat "$err" >&2
	if ((rc == 0)); then
		record_verify "$repo" "$tool" passed "$start" "$(grep . "$out" | tail -n 1 | tr '"' "'" || true)"
		log "verify $repo ($tool): passed in $(($(now) - start))s"
	else
		record_verify "$repo" "$tool" failed "$start" "error=\"$(error_of "$err" "$rc")\""
		log "verify $repo ($tool): FAILED: $(error_of "$err" "$rc")"
	fi
	rm -f "$out" "$err"
	return "$rc"
}

need restic jq flock
wanted=()
for arg in "$@"; do
	case $arg in
	--read-data-subset=*) BACKUP_VERIFY_READ_DATA_SUBSET=${arg#*=} ;;
	-*) die "unknown option $arg (usage: verify.sh [--read-data-subset=N%] [primary|offsite|pgbackrest ...])" ;;
	*) wanted+=("$arg") ;;
	esac
done
if ((${#wanted[@]} == 0)); then
	wanted=(primary)
	! offsite_configured || wanted+=(offsite)
	[[ " ${BACKUP_STORES:-} " != *:postgres-pgbackrest\ * ]] || wanted+=(pgbackrest)
fi
for r in "${wanted[@]}"; do
	case $r in
	primary) ;;
	offsite) offsite_configured || die "offsite: no off-site repository is configured (BACKUP_OFFSITE_REPOSITORY)" ;;
	pgbackrest) [[ " ${BACKUP_STORES:-} " == *:postgres-pgbackrest\ * ]] || die "pgbackrest: this project does not back up with pgBackRest (BACKUP_STORES)" ;;
	*) die "unknown repository '$r': one of primary, offsite, pgbackrest" ;;
	esac
done

backup_lock verify
failed=()
# pgBackRest first: its script takes the postgres lock itself.
for r in "${wanted[@]}"; do
	[[ $r == pgbackrest ]] || continue
	run_check pgbackrest pgbackrest "$BACKUP_LIB_DIR/postgres-pgbackrest.sh" verify || failed+=("$r")
done
# restic check locks the repository exclusively: a backup starting meanwhile would fail, so
# every store's job lock is taken first (a running backup is waited for).
locks=()
for pair in ${BACKUP_STORES:-}; do
	backup_lock "${pair%%:*}"
	locks+=("$BACKUP_LOCK_FD")
done
for r in "${wanted[@]}"; do
	[[ $r != pgbackrest ]] || continue
	run_check "$r" restic check_restic "$r" || failed+=("$r")
done
for fd in "${locks[@]}"; do
	exec {fd}>&-
done
if ((${#failed[@]} > 0)); then
	die "verify failed for: ${failed[*]} (see var/log/ops/verify.log and docs/runbooks/backup-verify-failed.md)"
fi
log "verify: ${wanted[*]}: all passed"
