#!/usr/bin/env bash
# Shared by the scripts in ops/backup (sourced, not run): settings, logging, locking, the
# restic repositories, manifests, Prometheus textfile metrics and the restore-test record.
#
# Every setting is an environment variable. Defaults come from ops/backup/backup.env; a
# variable already set in the environment wins over that file. Relative paths are taken
# relative to the project directory.

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	echo "lib.sh is sourced by the other scripts in ops/backup, not run" >&2
	exit 2
fi

# A failure anywhere stops the script, also inside $(...) (inherit_errexit: without it
# `id=$(store_snapshot ...)` carried on after a failed off-site copy) and in functions and
# subshells the ERR trap below must see (-E).
set -Eeuo pipefail
shopt -s inherit_errexit

BACKUP_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=${PROJECT_DIR:-$(cd "$BACKUP_LIB_DIR/../.." && pwd)}
BACKUP_SCRIPT=${BACKUP_SCRIPT:-$(basename "$0" .sh)}

log() {
	printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BACKUP_SCRIPT" "$*" >&2
}

# The last error of this job, in a file shared with its subshells (a die inside $(...) must
# reach the failure record of the script): BACKUP_ERROR_FILE when a parent passes one (the
# restore test reads its probe's), else a deleted temporary file used through a descriptor.
if [[ -n ${BACKUP_ERROR_FILE:-} ]]; then
	exec {BACKUP_ERROR_FD}>>"$BACKUP_ERROR_FILE"
	: >"$BACKUP_ERROR_FILE"
else
	BACKUP_ERROR_FILE=$(mktemp "${TMPDIR:-/tmp}/backup-error.XXXXXX")
	exec {BACKUP_ERROR_FD}<>"$BACKUP_ERROR_FILE"
	rm -f "$BACKUP_ERROR_FILE"
	BACKUP_ERROR_FILE=/dev/fd/$BACKUP_ERROR_FD
fi
# set_error MESSAGE: records MESSAGE as the job's error (the newest wins).
set_error() { printf '%s\n' "$*" >"/dev/fd/$BACKUP_ERROR_FD" 2>/dev/null || true; }
# clear_error: forgets a recorded error that was handled.
clear_error() { : >"/dev/fd/$BACKUP_ERROR_FD" 2>/dev/null || true; }
# last_error: the recorded error on one line, or nothing.
last_error() { tr '\n' ' ' <"/dev/fd/$BACKUP_ERROR_FD" 2>/dev/null | sed 's/ *$//' || true; }

die() {
	log "error: $*"
	set_error "$*"
	exit 1
}

# A command that fails outside a die (a crashed tool, a full disk) is recorded with its text
# unless a more precise error (die, a failed restic) came first.
on_error() {
	local rc=$1 line=$2 cmd=$3
	[[ -s /dev/fd/$BACKUP_ERROR_FD ]] && return 0
	set_error "command failed with status $rc ($BACKUP_SCRIPT line $line): $cmd"
	log "error: command failed with status $rc (line $line): $cmd"
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

# load_env FILE: exports each VAR=value of FILE that is not set already. Values may be
# single-quoted as the generator writes them; nothing in the file is executed.
load_env() {
	local file=$1 line key value n=0
	[[ -f $file ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$file:$n: not a VAR=value line"
		key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
		if [[ $value =~ ^\'(.*)\'$ ]]; then
			value=${BASH_REMATCH[1]}
			value=${value//\'\\\'\'/\'}
		fi
		[[ -n ${!key+x} ]] || export "$key=$value"
	done <"$file"
}

# abs PATH: PATH made absolute against the project directory (URLs are left alone).
abs() {
	case $1 in
	'' | /* | *:*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$PROJECT_DIR/$1" ;;
	esac
}

load_env "${BACKUP_ENV_FILE:-$BACKUP_LIB_DIR/backup.env}"

: "${BACKUP_PROJECT:=app}"
: "${BACKUP_DIR:=var/backups}"
BACKUP_DIR=$(abs "$BACKUP_DIR")
: "${BACKUP_RESTIC_REPOSITORY:=$BACKUP_DIR/restic}"
BACKUP_RESTIC_REPOSITORY=$(abs "$BACKUP_RESTIC_REPOSITORY")
: "${BACKUP_OFFSITE_REPOSITORY:=}"
: "${RESTIC_PASSWORD_FILE:=secrets/restic_password}"
RESTIC_PASSWORD_FILE=$(abs "$RESTIC_PASSWORD_FILE")
: "${BACKUP_STAGING_DIR:=$BACKUP_DIR/staging}"
BACKUP_STAGING_DIR=$(abs "$BACKUP_STAGING_DIR")
: "${BACKUP_LOCK_DIR:=$BACKUP_DIR/locks}"
BACKUP_LOCK_DIR=$(abs "$BACKUP_LOCK_DIR")
: "${BACKUP_LOCK_TIMEOUT:=600}"
: "${BACKUP_TEXTFILE_DIR:=var/lib/node-exporter/textfile}"
BACKUP_TEXTFILE_DIR=$(abs "$BACKUP_TEXTFILE_DIR")
: "${BACKUP_LOG_DIR:=var/log/ops}"
BACKUP_LOG_DIR=$(abs "$BACKUP_LOG_DIR")
: "${BACKUP_RETENTION_DAILY:=7}"
: "${BACKUP_RETENTION_WEEKLY:=4}"
: "${BACKUP_RETENTION_MONTHLY:=6}"
: "${BACKUP_MAX_AGE_HOURS:=26}"
: "${BACKUP_FULL_WEEKDAY:=Sun}"
: "${BACKUP_RESTORE_PLAN:=docs/restore-plan.md}"
BACKUP_RESTORE_PLAN=$(abs "$BACKUP_RESTORE_PLAN")
# Where the restore test fetches from: auto (off-site when configured), primary or offsite.
: "${RESTORE_TEST_FROM:=auto}"
# Free space asked for beyond the estimate of a backup or a scratch restore, in percent.
: "${BACKUP_SPACE_MARGIN_PERCENT:=20}"
# How far the newest off-site copy of a store may be behind the newest local backup before
# the restore test fails (seconds; 0: the newest local backup must be off-site).
: "${BACKUP_OFFSITE_MAX_LAG_SECONDS:=0}"
export RESTIC_PASSWORD_FILE
unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_PASSWORD_COMMAND

# need CMD...: fails clearly when a required program is missing.
need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not installed (needed by $BACKUP_SCRIPT; the backup image ops/backup/Dockerfile has it)"
	done
}

# secret_path VAR DEFAULT: the absolute path of a secret file named by VAR, checked readable.
secret_path() {
	local var=$1 path
	path=$(abs "${!var:-$2}")
	[[ -r $path ]] || die "$var: secret file $path is missing or unreadable"
	[[ -s $path ]] || die "$var: secret file $path is empty"
	printf '%s\n' "$path"
}

# read_secret PATH: the file's content without its trailing newline.
read_secret() {
	local v
	v=$(<"$1")
	printf '%s' "${v%$'\n'}"
}

# Exit hooks (one line each) run in reverse order of registration, whatever way the script
# ends. They are kept in a file, not an array: hooks registered in a command substitution
# (d=$(temp_dir)) run in a subshell, which can neither add to the script's array nor runs its
# EXIT trap, so they would be lost. The file is deleted at once and used through its
# descriptor (Linux reopens /dev/fd/N), so that nothing is left behind by exec or kill -9.
BACKUP_EXIT_HOOKS_FILE=$(mktemp "${TMPDIR:-/tmp}/backup-exit-hooks.XXXXXX")
exec {BACKUP_EXIT_HOOKS_FD}<>"$BACKUP_EXIT_HOOKS_FILE"
rm -f "$BACKUP_EXIT_HOOKS_FILE"
on_exit() { printf '%s\n' "$*" >>"/dev/fd/$BACKUP_EXIT_HOOKS_FD"; }
BACKUP_MAIN_PID=$BASHPID
run_exit_hooks() {
	local rc=$? i hooks=()
	BACKUP_EXIT_RC=$rc
	mapfile -t hooks <"/dev/fd/$BACKUP_EXIT_HOOKS_FD"
	for ((i = ${#hooks[@]} - 1; i >= 0; i--)); do
		eval "${hooks[i]}" || true
	done
	return "$rc"
}
trap run_exit_hooks EXIT
# The record of a store script's backup or restore test (see job_finished), registered first
# so that it runs last, after the clean-up.
case ${1:-} in
backup | restore-test) [[ $BACKUP_SCRIPT == backup || $BACKUP_SCRIPT == restore-test ]] || on_exit "job_finished $1" ;;
esac

# temp_dir: a new private directory removed at exit.
temp_dir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/${BACKUP_PROJECT}-${BACKUP_SCRIPT}.XXXXXX")
	on_exit "rm -rf '$d'"
	printf '%s\n' "$d"
}

# backup_lock NAME: one job per NAME at a time. A second job waits up to BACKUP_LOCK_TIMEOUT
# seconds, then fails (it never runs alongside the first).
backup_lock() {
	local file="$BACKUP_LOCK_DIR/$1.lock"
	mkdir -p "$BACKUP_LOCK_DIR"
	exec {BACKUP_LOCK_FD}>"$file"
	if ! flock -w "$BACKUP_LOCK_TIMEOUT" "$BACKUP_LOCK_FD"; then
		die "another job holds $file (waited ${BACKUP_LOCK_TIMEOUT}s); not running two $1 jobs at once"
	fi
}

# stage_dir STORE: the fixed staging directory of STORE, emptied. Fixed, so that restic sees
# the same path each time and groups the snapshots of a store together for retention.
stage_dir() {
	local d="$BACKUP_STAGING_DIR/$1"
	rm -rf "$d"
	mkdir -p "$d"
	chmod 0700 "$BACKUP_STAGING_DIR" "$d"
	on_exit "rm -rf '$d'"
	printf '%s\n' "$d"
}

now() { date +%s; }
iso_time() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# ---------------------------------------------------------------------------------------
# restic: the primary repository on this host and the optional off-site copy.

offsite_configured() { [[ -n $BACKUP_OFFSITE_REPOSITORY ]]; }

# restic_repo primary|offsite: the repository's location, made absolute.
restic_repo() {
	case $1 in
	primary) printf '%s\n' "$BACKUP_RESTIC_REPOSITORY" ;;
	offsite)
		offsite_configured || die "no off-site repository is configured (BACKUP_OFFSITE_REPOSITORY)"
		abs "$BACKUP_OFFSITE_REPOSITORY"
		;;
	*) die "restic_repo: unknown repository $1" ;;
	esac
}

# restic_on primary|offsite ARGS...: runs restic against that repository. restic's errors go
# to stderr as they are; when restic fails, its last "Fatal:" line becomes the job's recorded
# error. A command refused because of a lock is retried once after removing stale locks
# (restic_unlock_stale), unless it reads stdin.
restic_on() {
	local which=$1 repo key id secret hosts target errf rc=0
	shift
	local -a opts=(--cache-dir "$BACKUP_DIR/cache/restic")
	repo=$(restic_repo "$which")
	if [[ $which == offsite && $repo == s3:* ]]; then
		id=$(secret_path BACKUP_S3_ACCESS_KEY_ID_FILE secrets/offsite_s3_access_key_id)
		secret=$(secret_path BACKUP_S3_SECRET_ACCESS_KEY_FILE secrets/offsite_s3_secret_access_key)
		AWS_ACCESS_KEY_ID=$(read_secret "$id")
		AWS_SECRET_ACCESS_KEY=$(read_secret "$secret")
		export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	elif [[ $which == offsite && $repo == sftp:* ]]; then
		target=${repo#sftp:}
		key=$(secret_path BACKUP_SFTP_KEY_FILE secrets/offsite_sftp_key)
		hosts=$(secret_path BACKUP_SFTP_KNOWN_HOSTS_FILE secrets/offsite_sftp_known_hosts)
		target=${target%%:/*}
		opts+=(-o "sftp.command=ssh -i $key -o IdentitiesOnly=yes -o UserKnownHostsFile=$hosts -o StrictHostKeyChecking=yes $target -s sftp")
	fi
	[[ -r $RESTIC_PASSWORD_FILE ]] || die "RESTIC_PASSWORD_FILE: $RESTIC_PASSWORD_FILE is missing or unreadable"
	[[ -s $RESTIC_PASSWORD_FILE ]] || die "RESTIC_PASSWORD_FILE: $RESTIC_PASSWORD_FILE is empty"
	errf=$(mktemp "${TMPDIR:-/tmp}/backup-restic-err.XXXXXX")
	RESTIC_REPOSITORY=$repo restic "${opts[@]}" "$@" 2>"$errf" || rc=$?
	if ((rc != 0)) && [[ $1 != unlock && " $* " != *" --stdin "* ]] && grep -q 'repository is already locked' "$errf"; then
		cat "$errf" >&2
		log "the $which repository is locked; removing stale locks and trying again"
		if restic_unlock_stale "$which"; then
			rc=0
			RESTIC_REPOSITORY=$repo restic "${opts[@]}" "$@" 2>"$errf" || rc=$?
			cat "$errf" >&2
		fi
	else
		cat "$errf" >&2
	fi
	if ((rc != 0)); then
		local fatal
		fatal=$(awk '/^Fatal: |already locked|^unable to|^error:/ { m = $0 } END { print m }' "$errf")
		[[ -n $fatal ]] || fatal=$(awk 'NF { m = $0 } END { print m }' "$errf")
		set_error "restic $1 on the $which repository ($repo) failed: ${fatal:-exit status $rc}"
	fi
	rm -f "$errf"
	return "$rc"
}

# restic_unlock_stale primary|offsite: removes the locks of restic processes that are gone,
# with restic's own rule (`restic unlock` without --remove-all): a lock is stale when it is
# older than 30 minutes (a running restic refreshes its lock every 5) or was created on this
# host by a process that no longer exists. Live locks stay. Logs each lock removed or kept.
# Fails when a lock remains.
restic_unlock_stale() {
	local which=$1 repo before after l info
	repo=$(restic_repo "$which")
	before=$(restic_lock_ids "$which")
	[[ -n $before ]] || return 0
	declare -A infos=()
	for l in $before; do
		# The lock's owner, for the log; a lock removed meanwhile is fine.
		info=$(RESTIC_REPOSITORY=$repo restic --cache-dir "$BACKUP_DIR/cache/restic" --no-lock cat lock "$l" 2>/dev/null |
			jq -r '"host=\(.hostname) pid=\(.pid) created=\(.time | sub("\\.[0-9]+"; "")) exclusive=\(.exclusive)"') || info="(unreadable)"
		infos[$l]=$info
	done
	RESTIC_REPOSITORY=$repo restic --cache-dir "$BACKUP_DIR/cache/restic" unlock >/dev/null 2>&1 ||
		log "warning: restic unlock on the $which repository failed"
	after=$(restic_lock_ids "$which")
	for l in $before; do
		if [[ " ${after//$'\n'/ } " == *" $l "* ]]; then
			log "kept the live lock ${l:0:8} on the $which repository: ${infos[$l]}"
		else
			log "removed the stale lock ${l:0:8} from the $which repository: ${infos[$l]}"
		fi
	done
	[[ -z $after ]]
}

# restic_lock_ids primary|offsite: the ids of the repository's locks, one per line. A local
# repository is read directly (no key derivation).
restic_lock_ids() {
	local repo
	repo=$(restic_repo "$1")
	if [[ $repo != *:* ]]; then
		if [[ -d $repo/locks ]]; then
			# Lock files only: a restic killed while writing one leaves NAME-tmp-N, which
			# restic itself ignores.
			find "$repo/locks" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' -printf '%f\n'
		fi
		return 0
	fi
	RESTIC_REPOSITORY=$repo restic --cache-dir "$BACKUP_DIR/cache/restic" --no-lock list locks 2>/dev/null || true
}

# restic_ensure primary|offsite: initialises the repository on first use.
restic_ensure() {
	local repo
	repo=$(restic_repo "$1")
	# A local repository exists when its config file does: no need to open it, which costs a
	# key derivation (~0.6 s); a wrong password shows at the next command anyway.
	# One marker per location (a hash of it), written when the repository is first seen.
	local marker exists=0
	marker="$BACKUP_DIR/.restic-initialised/$(printf '%s' "$repo" | sha256sum | cut -c1-16)"
	if [[ $repo == *:* ]]; then
		# restic_on's own checks (password file, credentials) where their error shows: the
		# probe below silences stderr. `version` opens no repository.
		restic_on "$1" version >/dev/null
		restic_on "$1" --no-lock cat config >/dev/null 2>&1 && exists=1
		# Not an error: the repository is initialised below.
		clear_error
	elif [[ -f $repo/config ]]; then
		exists=1
	fi
	if ((exists)); then
		[[ -s $marker ]] || printf '%s\n' "$repo" | write_file "$marker"
		return 0
	fi
	# A repository that existed and is gone is not silently replaced by an empty one (an
	# unmounted off-site disk would get a new repository on the local disk).
	if [[ -s $marker && $(<"$marker") == "$repo" ]]; then
		die "the $1 restic repository $repo is missing (it was initialised before; is its disk mounted?); to start a new, empty one, remove $marker"
	fi
	log "initialising the $1 restic repository"
	if [[ $1 == offsite ]]; then
		restic_ensure primary
		# Same chunker parameters as the primary, so that copies deduplicate.
		RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE \
			restic_on offsite init --copy-chunker-params --from-repo "$BACKUP_RESTIC_REPOSITORY" >/dev/null
	else
		mkdir -p "$(dirname "$BACKUP_RESTIC_REPOSITORY")"
		restic_on primary init >/dev/null
	fi
	printf '%s\n' "$repo" | write_file "$marker"
}

# store_snapshot STORE KIND DIR [TAG...]: stores DIR as a snapshot tagged store=STORE and
# kind=KIND in the primary repository, copies it off-site when configured, and prints the
# snapshot id.
store_snapshot() {
	local store=$1 kind=$2 dir=$3 id tag
	shift 3
	local -a tags=(--tag "store=$store" --tag "kind=$kind")
	for tag in "$@"; do tags+=(--tag "$tag"); done
	need_repo_space primary "$dir"
	restic_ensure primary
	id=$(restic_on primary backup --json --host "$BACKUP_PROJECT" "${tags[@]}" "$dir" |
		jq -r 'select(.message_type == "summary") | .snapshot_id')
	[[ -n $id && $id != null ]] || die "restic backup of $dir did not report a snapshot"
	if offsite_configured; then
		need_repo_space offsite "$dir"
		restic_ensure offsite
		log "copying snapshot ${id:0:8} off-site"
		RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE \
			restic_on offsite copy --from-repo "$BACKUP_RESTIC_REPOSITORY" "$id" >/dev/null
	fi
	printf '%s\n' "$id"
}

# stream_ready primary|offsite ESTIMATE_BYTES: readies a repository for a dump streamed into it
# (restic backup --stdin): initialised, room for ESTIMATE_BYTES plus the margin (a local
# repository), and no stale locks, since a stream cannot be replayed after restic refused it.
stream_ready() {
	local repo
	restic_ensure "$1"
	repo=$(restic_repo "$1")
	[[ $repo == *:* ]] || need_space "$repo" "$(with_margin "$2")" "the backup in the $1 restic repository"
	# A live lock stays (restic_unlock_stale logs it); only an exclusive one makes the backup fail.
	[[ -z $(restic_lock_ids "$1") ]] || restic_unlock_stale "$1" || true
}

# stream_snapshots REPO TAGS: the snapshots of a streamed dump tagged TAGS (comma-separated,
# as the manifest's dump.snapshot_tags lists them), oldest first, as JSON.
stream_snapshots() {
	restic_on "$1" snapshots --json --host "$BACKUP_PROJECT" --tag "$2" | jq 'sort_by(.time)'
}

# fetch_stream REPO DIR: completes a backup fetched into DIR (fetch_snapshot) whose manifest
# says that its dump was streamed into a snapshot of its own (dump.snapshot_tags): that
# snapshot's file is written into DIR under the dump's name, where verify_files checks it.
# Backups that hold the dump beside the manifest (webapp 1.3.0, 1.3.1 before streaming) need
# nothing.
fetch_stream() {
	local repo=$1 dir=$2 tags file id
	[[ -s $dir/manifest.json ]] || return 0 # verify_files says that the manifest is missing
	tags=$(jq -r '.dump.snapshot_tags // empty | join(",")' "$dir/manifest.json")
	[[ -n $tags ]] || return 0
	file=$(jq -r '.dump.file' "$dir/manifest.json")
	id=$(stream_snapshots "$repo" "$tags" | jq -r 'last | .id // empty')
	[[ -n $id ]] || die "the dump of this backup (the snapshot tagged $tags) is missing from the $repo repository"
	if ! restic_on "$repo" dump "$id" "/$file" >"$dir/$file"; then
		die "restic could not restore the dump snapshot ${id:0:8} from the $repo repository: damaged or incomplete (check it with: restic check --read-data): $(last_error)"
	fi
}

# restore_repo: the repository restores and restore tests read from.
restore_repo() {
	case $RESTORE_TEST_FROM in
	auto) if offsite_configured; then echo offsite; else echo primary; fi ;;
	primary | offsite) echo "$RESTORE_TEST_FROM" ;;
	*) die "RESTORE_TEST_FROM: $RESTORE_TEST_FROM is not one of auto, primary, offsite" ;;
	esac
}

# snapshots_json REPO STORE [TAG...]: the snapshots of STORE (and TAGs), oldest first, as JSON.
snapshots_json() {
	local repo=$1 store=$2 filter
	shift 2
	filter="store=$store"
	local tag
	for tag in "$@"; do filter+=",$tag"; done
	restic_on "$repo" snapshots --json --host "$BACKUP_PROJECT" --tag "$filter" | jq 'sort_by(.time)'
}

# fetch_snapshot REPO ID DEST [PATH]: restores snapshot ID of REPO (ids differ between the
# repositories) into DEST, a directory that must not exist yet, so that DEST holds the files
# of the staged directory itself. PATH, the snapshot's path (.paths[0]) when the caller has
# it already from snapshots_json, saves a restic run.
fetch_snapshot() {
	local repo=$1 id=$2 dest=$3 path=${4:-} tmp
	[[ ! -e $dest ]] || die "fetch_snapshot: $dest exists already"
	# Missing or truncated packs first, in about a second: restic 0.14's restore retries
	# reading them for ~45 s before it fails.
	local chk
	chk=$(mktemp "${TMPDIR:-/tmp}/backup-check.XXXXXX")
	if ! restic_on "$repo" check --no-lock >/dev/null 2>"$chk"; then
		cat "$chk" >&2
		local what
		what=$(awk '/^pack [0-9a-f]+: / && !/not referenced/ { print; exit }' "$chk")
		rm -f "$chk"
		die "the $repo restic repository is damaged: ${what:-$(last_error)} (restic check; snapshot ${id:0:8} not restored)"
	fi
	rm -f "$chk"
	[[ -n $path ]] || path=$(restic_on "$repo" snapshots --json "$id" | jq -r '.[0].paths[0] // empty')
	[[ -n $path ]] || die "snapshot $id not found in the $repo repository"
	tmp=$(mktemp -d "$dest.restic.XXXXXX")
	if ! restic_on "$repo" restore "$id" --target "$tmp" >/dev/null; then
		local cause
		cause=$(last_error)
		rm -rf "$tmp"
		die "restic could not restore snapshot ${id:0:8} from the $repo repository: damaged or incomplete (check it with: restic check --read-data): ${cause:-see above}"
	fi
	mv "$tmp$path" "$dest"
	rm -rf "$tmp"
}

# latest_snapshot REPO STORE [TAG...]: the id of the newest snapshot, or nothing.
latest_snapshot() {
	snapshots_json "$@" | jq -r 'last | .id // empty'
}

# check_offsite_current STORE [TAG...]: fails, naming both, when the newest off-site backup of
# STORE (and TAGs) is older than the newest one in the primary repository by more than
# BACKUP_OFFSITE_MAX_LAG_SECONDS: a restore test of a stale copy proves nothing about the
# newest backup. Snapshot ids differ between the repositories; `restic copy` keeps the time.
# Holds the store's lock shared meanwhile, so that a backup between its two steps is waited for.
check_offsite_current() {
	local store=$1 fd primary offsite pt ot
	mkdir -p "$BACKUP_LOCK_DIR"
	exec {fd}>>"$BACKUP_LOCK_DIR/$store.lock"
	flock -s -w "$BACKUP_LOCK_TIMEOUT" "$fd" ||
		die "a $store backup kept its lock for ${BACKUP_LOCK_TIMEOUT}s; cannot compare the off-site copy with it"
	primary=$(snapshots_json primary "$@" | jq -c 'last // empty')
	offsite=$(snapshots_json offsite "$@" | jq -c 'last // empty')
	exec {fd}>&-
	[[ -n $primary ]] || return 0
	[[ -n $offsite ]] || die "the off-site repository has no $store backup, the local one has $(jq -r .short_id <<<"$primary") from $(jq -r .time <<<"$primary"): the off-site copy failed"
	pt=$(date -d "$(jq -r .time <<<"$primary")" +%s)
	ot=$(date -d "$(jq -r .time <<<"$offsite")" +%s)
	if ((pt - ot > BACKUP_OFFSITE_MAX_LAG_SECONDS)); then
		die "the off-site copy is stale: its newest $store backup is from $(iso_time "$ot"), the local repository has a newer one from $(iso_time "$pt") (snapshot $(jq -r .short_id <<<"$primary")), $(((pt - ot) / 60)) min later (allowed: BACKUP_OFFSITE_MAX_LAG_SECONDS=$BACKUP_OFFSITE_MAX_LAG_SECONDS); the off-site copy of a backup failed: see var/log/ops/backup-results.log"
	fi
}

# list_snapshots STORE [TAG...]: the backups of STORE in the repository restores read from,
# oldest first, one per line: time, kind, size (the size= tag), short id.
list_snapshots() {
	local store=$1
	shift
	local repo last
	need restic jq
	repo=$(restore_repo)
	if [[ -f $BACKUP_LOG_DIR/restore-test.log ]]; then
		last=$(awk -v s="store=$store" '$2 == s { l = $0 } END { print l }' "$BACKUP_LOG_DIR/restore-test.log")
		log "last restore test of $store: ${last:-never}"
	fi
	snapshots_json "$repo" "$store" "$@" |
		jq -r '.[] | [(.time | sub("\\.[0-9]+"; "")),
			((.tags // []) | map(select(startswith("kind="))) | first // "kind=?" | ltrimstr("kind=")),
			((.tags // []) | map(select(startswith("size="))) | first // "size=?" | ltrimstr("size=")),
			.short_id] | @tsv'
}

# prune_guard STORE NEWEST_EPOCH: refuses to prune (exit 1) when the newest backup of STORE
# is missing or older than BACKUP_MAX_AGE_HOURS: pruning then could leave nothing to restore.
prune_guard() {
	local store=$1 newest=${2:-} age
	if [[ -z $newest ]]; then
		die "refusing to prune $store: no backup of it exists; fix the backups first (docs/runbooks/backup-missing.md)"
	fi
	age=$(($(now) - newest))
	if ((age > BACKUP_MAX_AGE_HOURS * 3600)); then
		die "refusing to prune $store: its newest backup is $((age / 3600))h old (limit ${BACKUP_MAX_AGE_HOURS}h); recent backups are missing, fix them first (docs/runbooks/backup-stale.md)"
	fi
}

# restic_prune STORE [TAG...]: applies the GFS retention to the snapshots of STORE in both
# repositories, behind the guard.
restic_prune() {
	local store=$1 filter newest repo
	shift
	filter="store=$store"
	local tag
	for tag in "$@"; do filter+=",$tag"; done
	local -a repos=(primary)
	offsite_configured && repos+=(offsite)
	local -a keep=(--keep-daily "$BACKUP_RETENTION_DAILY" --keep-weekly "$BACKUP_RETENTION_WEEKLY"
		--keep-monthly "$BACKUP_RETENTION_MONTHLY")
	local streams kept orphans
	for repo in "${repos[@]}"; do
		restic_ensure "$repo"
		newest=$(snapshots_json "$repo" "$store" "$@" | jq -r 'last | .time // empty')
		[[ -z $newest ]] || newest=$(date -d "$newest" +%s)
		prune_guard "$store" "$newest"
		log "pruning $store in the $repo repository: keep $BACKUP_RETENTION_DAILY daily, $BACKUP_RETENTION_WEEKLY weekly, $BACKUP_RETENTION_MONTHLY monthly"
		# Dumps streamed into snapshots of their own (tagged data-of=STORE and set=ID, like the
		# backup's manifest snapshot) follow their manifest snapshot: the retention applies to
		# the manifest snapshots, then every dump snapshot whose set no kept snapshot of the
		# store names goes too (also those of failed backups, which no manifest names).
		streams=$(stream_snapshots "$repo" "data-of=$store")
		if [[ $streams == '[]' ]]; then
			restic_on "$repo" forget --host "$BACKUP_PROJECT" --tag "$filter" --group-by host "${keep[@]}" --prune >&2
			continue
		fi
		restic_on "$repo" forget --host "$BACKUP_PROJECT" --tag "$filter" --group-by host "${keep[@]}" >&2
		# A failed listing stops here (never an empty list that would orphan every dump).
		kept=$(snapshots_json "$repo" "$store" | jq -c '[.[].tags // [] | .[] | select(startswith("set="))]')
		orphans=$(jq -r --argjson kept "$kept" \
			'.[] | select(((.tags // []) | map(select(startswith("set="))) | first) as $s | $kept | any(.[]; . == $s) | not) | .id' <<<"$streams")
		if [[ -n $orphans ]]; then
			log "forgetting $(wc -l <<<"$orphans") dump snapshot(s) of $store in the $repo repository that no kept backup names"
			# shellcheck disable=SC2086 # one id per word
			restic_on "$repo" forget $orphans --prune >&2
		else
			restic_on "$repo" prune >&2
		fi
	done
}

# ---------------------------------------------------------------------------------------
# Manifests: manifest.json beside every backup.

# manifest_files DIR: a JSON array of {name, size, sha256} for every file below DIR except
# manifest.json and restore-plan.md, sorted by name.
manifest_files() {
	local dir=$1
	(
		cd "$dir" || exit 1
		# A few processes for all files, not a few per file: a physical backup has thousands.
		local list
		list=$(mktemp)
		find . -type f ! -name manifest.json ! -name restore-plan.md -printf '%P\0' | LC_ALL=C sort -z >"$list"
		jq -n --rawfile sums <(xargs -0r sha256sum --zero -- <"$list") \
			--rawfile sizes <(xargs -0r stat --printf '%s\0' -- <"$list") '
			($sums | split("\u0000") | map(select(. != ""))) as $s
			| ($sizes | split("\u0000") | map(select(. != ""))) as $z
			| [range($s | length) | {name: $s[.][66:], size: ($z[.] | tonumber), sha256: $s[.][0:64]}]'
		rm -f "$list"
	)
}

# verify_files DIR MANIFEST: every file the manifest lists is in DIR with its size and sha256.
verify_files() {
	local dir=$1 manifest=$2 list problem
	[[ -s $manifest ]] || die "the backup has no manifest ($manifest): incomplete or not made by these scripts"
	manifest=$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")
	list=$(mktemp)
	jq -j '.files[] | .name + "\u0000"' "$manifest" >"$list"
	# All files in one pass (a few processes, not a few per file), then the first problem.
	problem=$(cd "$dir" && jq -n -r --slurpfile m "$manifest" \
		--rawfile sums <(xargs -0r sha256sum --zero -- <"$list" 2>/dev/null) \
		--rawfile sizes <(xargs -0r stat -L --printf '%F\t%s\t%n\0' -- <"$list" 2>/dev/null) '
		($sums | split("\u0000") | map(select(. != "") | {key: .[66:], value: .[0:64]}) | from_entries) as $sha
		| ($sizes | split("\u0000") | map(select(. != "") | split("\t")
			| select(.[0] | startswith("regular")) | {key: (.[2:] | join("\t")), value: .[1]}) | from_entries) as $size
		| [$m[0].files[]
			| if $size[.name] == null then "backup file \(.name) listed in the manifest is missing"
			elif $size[.name] != (.size | tostring) then "backup file \(.name) is \($size[.name]) bytes, the manifest says \(.size): truncated or damaged"
			elif $sha[.name] != .sha256 then "backup file \(.name) has sha256 \($sha[.name] // "(unreadable)"), the manifest says \(.sha256): damaged"
			else empty end] | first // empty')
	rm -f "$list"
	[[ -z $problem ]] || die "$problem"
}

# files_size DIR: total bytes below DIR.
files_size() { du -sb "$1" | cut -f1; }

# copy_restore_plan DIR: a copy of the restore plan travels with every backup.
copy_restore_plan() {
	if [[ -f $BACKUP_RESTORE_PLAN ]]; then
		cp "$BACKUP_RESTORE_PLAN" "$1/restore-plan.md"
	else
		log "warning: no restore plan at $BACKUP_RESTORE_PLAN to store with the backup"
	fi
}

# free_bytes PATH: the bytes available to this user on the file system of PATH (or of its
# nearest existing parent).
free_bytes() {
	local d=$1 out
	while [[ ! -e $d ]]; do d=$(dirname "$d"); done
	out=$(df -B1 --output=avail -- "$d" | tail -n 1 | tr -d ' ')
	[[ $out =~ ^[0-9]+$ ]] || die "cannot tell the free space of $d (df said: $out)"
	printf '%s\n' "$out"
}

# human BYTES: a size for people (MiB, GiB).
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || printf '%s bytes\n' "$1"; }

# need_space PATH BYTES WHAT: fails clearly, before anything is written, when the file system
# of PATH has less than BYTES free (callers add their margin, BACKUP_SPACE_MARGIN_PERCENT).
need_space() {
	local path=$1 want=$2 what=$3 have
	have=$(free_bytes "$path")
	if ((have < want)); then
		die "not enough free space for $what in $path: $(human "$have") free, about $(human "$want") needed; free some space or move it (see BACKUP_DIR, BACKUP_STAGING_DIR, TMPDIR)"
	fi
}

# with_margin BYTES: BYTES plus BACKUP_SPACE_MARGIN_PERCENT, plus 16 MiB for small files.
with_margin() { printf '%s\n' $(($1 * (100 + BACKUP_SPACE_MARGIN_PERCENT) / 100 + 16 * 1024 * 1024)); }

# need_repo_space primary|offsite DIR: a local repository's file system can take DIR (restic
# stores at most its size, less what deduplicates). Remote repositories are not checked.
need_repo_space() {
	local repo
	repo=$(restic_repo "$1")
	[[ $repo != *:* ]] || return 0
	need_space "$repo" "$(with_margin "$(files_size "$2")")" "the backup in the $1 restic repository"
}

# last_backup_size STORE: backup_last_size_bytes of the store's newest successful backup
# (any kind), 0 when none is recorded.
last_backup_size() {
	local f=""
	[[ -d $BACKUP_TEXTFILE_DIR ]] && f=$(find "$BACKUP_TEXTFILE_DIR" -maxdepth 1 -name "backup_$1_*.prom" -printf '%T@\t%p\n' 2>/dev/null |
		sort -rn | head -n 1 | cut -f2)
	[[ -n $f ]] || {
		echo 0
		return 0
	}
	awk '/^backup_last_size_bytes[{ ]/ { v = $NF } END { printf "%d\n", v + 0 }' "$f"
}

# write_file PATH: stdin to PATH atomically (a reader never sees half a file).
write_file() {
	local tmp
	mkdir -p "$(dirname "$1")"
	tmp=$(mktemp "$1.XXXXXX.tmp")
	cat >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------------------------------
# Metrics (node-exporter textfile collector) and the restore-test record.

# metric_backup_success STORE KIND START_EPOCH SIZE_BYTES: only ever called after a backup
# has been stored, so a failed job leaves the previous success in place and goes stale.
metric_backup_success() {
	local store=$1 kind=$2 start=$3 size=$4 end labels
	end=$(now)
	BACKUP_JOB_DETAIL="kind=$kind size=$size"
	labels="store=\"$store\",kind=\"$kind\""
	write_file "$BACKUP_TEXTFILE_DIR/backup_${store}_${kind}.prom" <<EOF
# HELP backup_last_success_timestamp_seconds Unix time the last successful backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{$labels} $end
# HELP backup_last_duration_seconds Duration of the last successful backup.
# TYPE backup_last_duration_seconds gauge
backup_last_duration_seconds{$labels} $((end - start))
# HELP backup_last_size_bytes Size of the last successful backup before deduplication.
# TYPE backup_last_size_bytes gauge
backup_last_size_bytes{$labels} $size
EOF
}

# metric_restore_test STORE RESULT(1|0) START_EPOCH: the result always; the success
# timestamp and duration only when the test passed.
metric_restore_test() {
	local store=$1 result=$2 start=$3 end
	end=$(now)
	write_file "$BACKUP_TEXTFILE_DIR/restore_test_result_${store}.prom" <<EOF
# HELP restore_test_last_result Result of the last restore test: 1 passed, 0 failed.
# TYPE restore_test_last_result gauge
restore_test_last_result{store="$store"} $result
EOF
	if [[ $result == 1 ]]; then
		write_file "$BACKUP_TEXTFILE_DIR/restore_test_${store}.prom" <<EOF
# HELP restore_test_last_success_timestamp_seconds Unix time the last passed restore test finished.
# TYPE restore_test_last_success_timestamp_seconds gauge
restore_test_last_success_timestamp_seconds{store="$store"} $end
# HELP restore_test_last_duration_seconds Duration of the last passed restore test: the measured RTO.
# TYPE restore_test_last_duration_seconds gauge
restore_test_last_duration_seconds{store="$store"} $((end - start))
EOF
	fi
}

# record_restore_test STORE passed|failed START_EPOCH DETAIL: appends a line to
# var/log/ops/restore-test.log and writes the metrics. Nothing tracked by git is edited (a
# deploy would reset it): restore-test.log, the metrics and `list` show the last result.
record_restore_test() {
	local store=$1 result=$2 start=$3 detail=$4 took line
	took=$(($(now) - start))
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) store=$store result=$result duration_s=$took $detail"
	RESTORE_TEST_RECORDED=1
	mkdir -p "$BACKUP_LOG_DIR"
	printf '%s\n' "$line" >>"$BACKUP_LOG_DIR/restore-test.log"
	if [[ $result == passed ]]; then metric_restore_test "$store" 1 "$start"; else metric_restore_test "$store" 0 "$start"; fi
}

# error_detail ERRFILE STDERR RC: the cause of a failure on one line, with double quotes made
# single: the recorded error, else the last "error:" or "Fatal:" line of STDERR, else its last
# line, else the exit status.
error_detail() {
	local errfile=$1 stderr=$2 rc=$3 d=""
	[[ ! -s $errfile ]] || d=$(tr '\n' ' ' <"$errfile" | sed 's/ *$//')
	if [[ -z $d && -s $stderr ]]; then
		d=$(awk '/: error: / { sub(/^.*: error: /, ""); e = $0 } /^Fatal: / { f = $0 } NF { l = $0 }
			END { print (e != "" ? e : (f != "" ? f : l)) }' "$stderr")
	fi
	[[ -n $d ]] || d="exited with status $rc"
	printf '%s\n' "${d//\"/\'}"
}

# run_restore_test STORE SCRIPT: runs SCRIPT's restore-test-probe action in a child process and
# records the outcome, so that a failure anywhere in the probe (a subshell included) is
# recorded as failed with the probe's error before this exits non-zero. The probe writes
# its one-line detail (snapshot, counts) into the file named by its first argument, and may
# write what it knows so far there before that (kept with a failure).
run_restore_test() {
	local store=$1 script=$2 start work rc=0 detail
	start=$(now)
	work=$(temp_dir)
	backup_lock "$store-restore-test"
	BACKUP_ERROR_FILE=$work/error "$BACKUP_LIB_DIR/$script" restore-test-probe "$work/result" 2>"$work/stderr" || rc=$?
	cat "$work/stderr" >&2
	if ((rc == 0)) && [[ -s $work/result ]]; then
		detail=$(<"$work/result")
		record_restore_test "$store" passed "$start" "$detail"
		log "restore test of $store passed: $detail"
		return 0
	fi
	# A probe may leave what it knew before failing (the snapshot, the backup) in the file.
	local known=""
	[[ ! -s $work/result ]] || known=$(head -n 1 "$work/result" | sed 's/ *$//')
	detail=$(error_detail "$work/error" "$work/stderr" "$rc")
	record_restore_test "$store" failed "$start" "${known:+$known }error=\"$detail\""
	die "restore test of $store FAILED: $detail"
}

# Every run of a store script's backup or restore-test action records its outcome when it
# ends, whatever way it ends (short of SIGKILL): backup_last_result, the time of the last
# failure and a line in var/log/ops/backup-results.log for backups; a failed restore test
# that ended before run_restore_test recorded it (a missing tool, a lock) is recorded too.
# lib.sh sees the script's arguments: the action is $1.
BACKUP_JOB_START=$(now)
BACKUP_JOB_DETAIL=
RESTORE_TEST_RECORDED=0

# metric_backup_result STORE 1|0: backup_result_STORE.prom; the time of the last failure is
# kept across successes.
metric_backup_result() {
	local store=$1 result=$2 file failed=""
	file="$BACKUP_TEXTFILE_DIR/backup_result_${store}.prom"
	if [[ $result == 0 ]]; then
		failed=$(now)
	elif [[ -f $file ]]; then
		failed=$(awk '/^backup_last_failure_timestamp_seconds[{ ]/ { print $NF }' "$file")
	fi
	{
		cat <<EOF
# HELP backup_last_result Result of the last backup job of the store: 1 succeeded, 0 failed.
# TYPE backup_last_result gauge
backup_last_result{store="$store"} $result
EOF
		if [[ -n $failed ]]; then
			cat <<EOF
# HELP backup_last_failure_timestamp_seconds Unix time the last failed backup job of the store ended.
# TYPE backup_last_failure_timestamp_seconds gauge
backup_last_failure_timestamp_seconds{store="$store"} $failed
EOF
		fi
	} | write_file "$file"
}

# record_backup_result STORE passed|failed DETAIL: the line in backup-results.log and the metric.
record_backup_result() {
	local store=$1 result=$2 detail=$3
	mkdir -p "$BACKUP_LOG_DIR"
	printf '%s store=%s result=%s duration_s=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$store" "$result" \
		"$(($(now) - BACKUP_JOB_START))" "$detail" >>"$BACKUP_LOG_DIR/backup-results.log"
	if [[ $result == passed ]]; then metric_backup_result "$store" 1; else metric_backup_result "$store" 0; fi
}

# job_finished ACTION: the exit hook of a store script's backup or restore-test.
job_finished() {
	local action=$1 store=${STORE:-${BACKUP_SCRIPT%%-*}} rc=${BACKUP_EXIT_RC:-1} detail
	# Subshells run no exit hooks of their own (see run_exit_hooks); only the script does.
	[[ $BASHPID == "$BACKUP_MAIN_PID" ]] || return 0
	case $action in
	backup)
		if ((rc == 0)); then
			record_backup_result "$store" passed "$BACKUP_JOB_DETAIL"
		else
			detail=$(error_detail "/dev/fd/$BACKUP_ERROR_FD" /dev/null "$rc")
			record_backup_result "$store" failed "error=\"$detail\""
			log "backup of $store FAILED: $detail (recorded in $BACKUP_LOG_DIR/backup-results.log)"
		fi
		;;
	restore-test)
		if ((rc != 0 && RESTORE_TEST_RECORDED == 0)); then
			detail=$(error_detail "/dev/fd/$BACKUP_ERROR_FD" /dev/null "$rc")
			record_restore_test "$store" failed "$BACKUP_JOB_START" "error=\"$detail\""
		fi
		;;
	esac
}

# ---------------------------------------------------------------------------------------
# Scratch instances for restore tests.

# free_port: a TCP port on 127.0.0.1 nobody listens on, below the kernel's ephemeral range:
# a port in that range may be the local end of any outgoing connection at the moment the
# scratch server binds it (a busy host's restore test failed on "Address already in use").
free_port() {
	local p i low=
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((low > 12000)) || low=32768
	for ((i = 0; i < 50; i++)); do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	die "no free TCP port found for a scratch instance"
}

# wait_for SECONDS DESCRIPTION CMD...: retries CMD every half second until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 2; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "$what did not come up within ${secs}s"
}

# dispatch ACTION [STORE...]: runs ops/backup/<script>.sh ACTION for each configured store
# (or only the named ones), carrying on after a failure and failing at the end.
dispatch() {
	local action=$1 pair store script failed=() ran=0
	shift
	[[ -n ${BACKUP_STORES:-} ]] || die "BACKUP_STORES is empty: nothing to do (see ops/backup/backup.env)"
	for pair in $BACKUP_STORES; do
		store=${pair%%:*} script=${pair#*:}
		if (($# > 0)); then
			local want=0 s
			for s in "$@"; do [[ $s == "$store" ]] && want=1; done
			((want)) || continue
		fi
		ran=$((ran + 1))
		log "$action: $store ($script.sh)"
		if ! "$BACKUP_LIB_DIR/$script.sh" "$action"; then
			log "$action of $store FAILED"
			failed+=("$store")
		fi
	done
	((ran > 0)) || die "no configured store matches: $* (configured: $BACKUP_STORES)"
	if ((${#failed[@]} > 0)); then
		die "$action failed for: ${failed[*]}"
	fi
	log "$action: all done"
}
