#!/usr/bin/env bash
# PostgreSQL physical backups with pgBackRest: full, differential and incremental backups of
# the data directory plus the continuous WAL archive, so that the database can be restored
# to any point in time. The encrypted pgBackRest repository (PGBACKREST_REPO1_PATH, default
# $BACKUP_DIR/pgbackrest) and a manifest per backup ($BACKUP_DIR/pgbackrest-manifests) are
# copied off-site with restic after each backup when an off-site repository is configured.
#
# THE SERVER MUST ARCHIVE ITS WAL for any of this to work. Run PostgreSQL with
#   wal_level=replica  archive_mode=on
#   archive_command='<project dir>/ops/backup/postgres-pgbackrest.sh archive-push %p'
# where the script, ops/backup/backup.env and the cipher pass (PGBACKREST_CIPHER_PASS_FILE)
# are readable by the server's user and BACKUP_DIR is writable by it (one place configures
# pgBackRest). Calling `pgbackrest --stanza=<stanza> archive-push %p` directly works too, with
# the same PGBACKREST_* environment as this script exports (see pgbr_env below). Then run
# `ops/backup/postgres-pgbackrest.sh backup` once: it creates the stanza and checks archiving.
#
# Usage: ops/backup/postgres-pgbackrest.sh backup|restore-test|list|prune|verify
#        ops/backup/postgres-pgbackrest.sh restore [--time 'YYYY-MM-DD HH:MM:SS+00'] [--target-dir DIR] ...
#        (`restore --help` lists the options)
#        ops/backup/postgres-pgbackrest.sh archive-push WAL | archive-get WAL DEST
#
# pgBackRest is configured through environment variables only (no pgbackrest.conf):
# PGBACKREST_STANZA, PGBACKREST_REPO1_PATH, PGBACKREST_CIPHER_PASS_FILE (exported as
# PGBACKREST_REPO1_CIPHER_PASS, aes-256-cbc), PGBACKREST_PG1_PATH (the data directory, read
# directly: run this where it is mounted), PGBACKREST_PG1_PORT, PGBACKREST_PG1_SOCKET_PATH,
# PGBACKREST_PG1_USER (default PGUSER). Retention: BACKUP_RETENTION_WEEKLY full backups
# (one a week) and BACKUP_RETENTION_DAILY differential ones. BACKUP_KIND=auto|full|diff|incr.
# Running as root, pgBackRest runs as the owner of the data directory and the scratch cluster
# of the restore test as RESTORE_TEST_USER (default: the owner of the repository, else postgres).
# The restore test first runs `pgbackrest verify` over the whole repository (every backup and
# WAL segment) and checks that the WAL archive has no gap in the window the backups cover;
# RESTORE_TEST_VERIFY=no skips that on repositories too large to read weekly (the daily
# `verify` of ops/backup/verify.sh still checks the local repository).
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

STORE=postgres
CANARY_TABLE=opsready_backup_canary
SCRIPT_PATH=$BACKUP_LIB_DIR/$(basename "$0")
MANIFEST_DIR=$BACKUP_DIR/pgbackrest-manifests

# Row counts of every table of the current database (not catalogs, not tables that belong to
# an extension) as a JSON array of {name, rows}, sorted by name.
COUNT_SQL="SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'rows', rows) ORDER BY name), '[]')
FROM (SELECT n.nspname || '.' || c.relname AS name,
	(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint AS rows
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
	AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')) t"
# The newest applied migration, when the database has a schema_migrations table.
MIGRATIONS_SQL="SELECT CASE WHEN to_regclass('schema_migrations') IS NOT NULL THEN
	(xpath('/row/v/text()', query_to_xml('SELECT max(version)::text AS v FROM schema_migrations', false, true, '')))[1]::text END"

usage() {
	cat <<'EOF'
Usage: ops/backup/postgres-pgbackrest.sh ACTION
  backup             a pgBackRest backup (BACKUP_KIND auto|full|diff|incr), its manifest, the off-site copy, metrics
  restore-test       restore the newest backup into a scratch cluster and probe it
  restore [OPTS]     restore into a data directory, to the end of the WAL or a point in time (see restore --help)
  list               the backups, newest last: time, kind, size in the repository, label
  prune              expire backups beyond the retention (and off-site copies), refused when backups are stale
  verify             check the local repository: every file against its checksum, and the WAL archive for gaps
  archive-push WAL   the server's archive_command: archive-push %p
  archive-get WAL DEST  the restored server's restore_command: archive-get %f "%p"
EOF
}

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/postgres-pgbackrest.sh restore [OPTIONS]
Restores a pgBackRest backup into a PostgreSQL data directory: the disaster path. Stop
PostgreSQL first; start it afterwards on DIR: it replays the archived WAL (to --time when
given), then promotes. See docs/restore-plan.md.

  --time 'YYYY-MM-DD HH:MM:SS+00'  point-in-time recovery: replay the WAL up to this time (UTC
                        offset required); the newest backup before it is chosen
  --target-dir DIR      the data directory to restore into (default: PGBACKREST_PG1_PATH);
                        created when missing; refused when not empty unless --delta or --force
  --set LABEL, --snapshot LABEL
                        restore this backup (default: the newest, or the one --time needs)
  --from local|offsite  the repository: local (default when it has backups) or the off-site
                        copy, which is restored into PGBACKREST_REPO1_PATH first (an existing
                        local repository is moved aside)
  --delta               restore over an existing data directory, rewriting only changed files
  --force               overwrite an existing data directory completely
  --restore-command CMD the restored server's restore_command (default: this script's
                        archive-get %f "%p"; the path must be valid where the server runs)
  -h, --help            this help
EOF
}

# q ARGS...: psql without psqlrc, quiet, unaligned, tuples only, stopping at the first error.
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# pgbr_env: exports pgBackRest's configuration (environment only, no configuration file).
pgbr_env() {
	[[ -n ${PGBACKREST_STANZA:-} ]] || die "PGBACKREST_STANZA is not set (see ops/backup/backup.env)"
	[[ -n ${PGBACKREST_PG1_PATH:-} ]] || die "PGBACKREST_PG1_PATH (the data directory) is not set (see ops/backup/backup.env)"
	: "${PGBACKREST_REPO1_PATH:=$BACKUP_DIR/pgbackrest}"
	PGBACKREST_REPO1_PATH=$(abs "$PGBACKREST_REPO1_PATH")
	: "${PGBACKREST_REPO1_CIPHER_TYPE:=aes-256-cbc}"
	if [[ -z ${PGBACKREST_REPO1_CIPHER_PASS:-} ]]; then
		PGBACKREST_REPO1_CIPHER_PASS=$(read_secret "$(secret_path PGBACKREST_CIPHER_PASS_FILE secrets/pgbackrest_cipher_pass)")
	fi
	# Not an option of pgBackRest, which warns about unknown PGBACKREST_* variables.
	export -n PGBACKREST_CIPHER_PASS_FILE 2>/dev/null || true
	: "${PGBACKREST_PG1_PORT:=${PGPORT:-5432}}"
	: "${PGBACKREST_PG1_SOCKET_PATH:=/var/run/postgresql}"
	: "${PGBACKREST_PG1_USER:=${PGUSER:-postgres}}"
	: "${PGBACKREST_LOCK_PATH:=$BACKUP_LOCK_DIR/pgbackrest}"
	: "${PGBACKREST_LOG_PATH:=$BACKUP_DIR/pgbackrest-log}"
	local full=$BACKUP_RETENTION_WEEKLY
	((full >= 1)) || full=1
	: "${PGBACKREST_REPO1_RETENTION_FULL:=$full}"
	: "${PGBACKREST_REPO1_RETENTION_DIFF:=$BACKUP_RETENTION_DAILY}"
	: "${PGBACKREST_START_FAST:=y}"
	: "${PGBACKREST_COMPRESS_TYPE:=zst}"
	: "${PGBACKREST_LOG_LEVEL_CONSOLE:=off}"
	: "${PGBACKREST_LOG_LEVEL_STDERR:=warn}"
	: "${PGBACKREST_CONFIG:=/dev/null}"
	export PGBACKREST_STANZA PGBACKREST_PG1_PATH PGBACKREST_REPO1_PATH PGBACKREST_REPO1_CIPHER_TYPE \
		PGBACKREST_REPO1_CIPHER_PASS PGBACKREST_PG1_PORT PGBACKREST_PG1_SOCKET_PATH PGBACKREST_PG1_USER \
		PGBACKREST_LOCK_PATH PGBACKREST_LOG_PATH PGBACKREST_REPO1_RETENTION_FULL \
		PGBACKREST_REPO1_RETENTION_DIFF PGBACKREST_START_FAST PGBACKREST_COMPRESS_TYPE \
		PGBACKREST_LOG_LEVEL_CONSOLE PGBACKREST_LOG_LEVEL_STDERR PGBACKREST_CONFIG
}

# pg_env: the libpq settings of psql (canary, row counts); the password from PGPASSWORD_FILE.
pg_env() {
	local var
	for var in PGHOST PGPORT PGUSER PGDATABASE; do
		[[ -n ${!var:-} ]] || die "$var is not set (see ops/backup/backup.env)"
	done
	PGPASSWORD=$(read_secret "$(secret_path PGPASSWORD_FILE secrets/db_password)")
	export PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD
	export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} PGAPPNAME=${PGAPPNAME:-opsready-backup}
}

# run_as UID:GID CMD...: CMD as that user when running as root (PostgreSQL and pgBackRest
# files belong to the database's user), else as ourselves.
run_as() {
	local who=$1
	shift
	if ((EUID == 0)); then
		(cd / && setpriv --reuid="${who%:*}" --regid="${who#*:}" --clear-groups -- "$@")
	else
		(cd / && "$@")
	fi
}

# owner_of PATH: uid:gid of PATH.
owner_of() { stat -c '%u:%g' "$1"; }

# pgbr ARGS...: pgBackRest as the owner of the data directory.
pgbr() { run_as "$PG_OWNER" pgbackrest "$@"; }

# pg_owner: the owner of the data directory, checked.
pg_owner() {
	[[ -d $PGBACKREST_PG1_PATH ]] ||
		die "PGBACKREST_PG1_PATH $PGBACKREST_PG1_PATH is not a directory: run this where the PostgreSQL data directory is mounted"
	PG_OWNER=$(owner_of "$PGBACKREST_PG1_PATH")
	[[ ${PG_OWNER%:*} != 0 ]] ||
		die "the data directory $PGBACKREST_PG1_PATH belongs to root, not to the user PostgreSQL runs as"
}

# prepare_dirs: the repository, lock and log directories, owned by the data directory's owner.
prepare_dirs() {
	local d
	for d in "$PGBACKREST_REPO1_PATH" "$PGBACKREST_LOCK_PATH" "$PGBACKREST_LOG_PATH"; do
		if [[ ! -d $d ]]; then
			mkdir -p "$d"
			chmod 0750 "$d"
			((EUID != 0)) || chown "$PG_OWNER" "$d"
		fi
		run_as "$PG_OWNER" test -w "$d" ||
			die "uid ${PG_OWNER%:*} (the owner of the data directory) cannot write $d: it needs write access to it and search access to its parents"
	done
	mkdir -p "$MANIFEST_DIR"
	chmod 0750 "$MANIFEST_DIR"
}

# info_json: pgBackRest's info about the stanza (one element).
info_json() { pgbr info --output=json | jq '.[0]'; }

# repo_info UID:GID: pgBackRest's info about the stanza in PGBACKREST_REPO1_PATH, read as that
# user; dies with pgBackRest's own reason when it cannot read the repository (a wrong cipher
# pass makes its info files unreadable: the reason then holds binary garbage, cut off here).
# Status 2 is "no valid backups", which the callers report themselves.
repo_info() {
	local raw reason
	raw=$(run_as "$1" pgbackrest info --output=json 2>&1) || true
	if jq -e '.[0] | [.status.code // 0, (.repo[]? | .status.code // 0)] | all(. == 0 or . == 2)' <<<"$raw" >/dev/null 2>&1; then
		jq '.[0]' <<<"$raw"
		return 0
	fi
	reason=$(tr -cd '[:print:]' <<<"$raw" | grep -o '\[[A-Za-z]*Error\] [^:]*' | head -n 1 || true)
	die "pgbackrest cannot read the repository $PGBACKREST_REPO1_PATH (a wrong cipher pass in PGBACKREST_CIPHER_PASS_FILE, or damaged info files): ${reason:-$(tr -cd '[:print:]' <<<"$raw" | cut -c1-300)}"
}

# verify_repo UID:GID INFO: checks the repository PGBACKREST_REPO1_PATH as that user: pgBackRest's
# verify (every file of every backup and every WAL segment against its checksum), then what
# verify does not judge: the continuity of the WAL archive. INFO is pgBackRest's info about
# the stanza. Prints a one-line summary; dies naming the first problem.
verify_repo() {
	local user=$1 info=$2 logdir out ranges problem
	logdir=$(temp_dir)
	((EUID != 0)) || chown "$user" "$logdir"
	# verify logs the ranges of consecutive WAL segments it found at level detail, in its log
	# file only; its own result says "ok" for an archive with a hole in it.
	out=$(run_as "$user" env PGBACKREST_LOG_PATH="$logdir" PGBACKREST_LOG_LEVEL_FILE=detail \
		pgbackrest verify --output=text --verbose 2>&1) ||
		die "pgbackrest verify failed on $PGBACKREST_REPO1_PATH: $(tail -n 3 <<<"$out" | paste -sd ' ')"
	if grep -q 'status: error' <<<"$out"; then
		die "pgbackrest verify found damaged or missing files in the repository $PGBACKREST_REPO1_PATH: $(sed -n '/status: error/,$p' <<<"$out" | grep -v ' 0, checksum invalid: 0, size invalid: 0, other: 0' | paste -sd ' ' | tr -s ' ')"
	fi
	[[ -f $logdir/$PGBACKREST_STANZA-verify.log ]] ||
		die "pgbackrest verify wrote no log ($logdir/$PGBACKREST_STANZA-verify.log): cannot check the continuity of the WAL archive"
	ranges=$(sed -n 's/^.* DETAIL: archiveId: \([^,]*\), wal start: \([0-9A-F]\{24\}\), wal stop: \([0-9A-F]\{24\}\)$/\1 \2 \3/p' \
		"$logdir/$PGBACKREST_STANZA-verify.log" | jq -R -s '[split("\n")[] | select(. != "") | split(" ") | {id: .[0], start: .[1], stop: .[2]}]')
	problem=$(wal_problem "$info" "$ranges")
	[[ -z $problem ]] || die "$problem"
	jq -r --argjson r "$ranges" '"backups=\(.backup // [] | length) wal_ranges=\($r | length) wal=\(.archive // [] | map("\(.min // "-")..\(.max // "-")") | join(","))"' <<<"$info"
}

# wal_problem INFO RANGES: the first break in the WAL a restore needs, or nothing. RANGES are
# the runs of consecutive segments verify found ([{id, start, stop}], names of 24 hex digits
# that sort in WAL order within a timeline). Two runs of one timeline (the first 8 digits) with
# segments missing between them are a gap once the oldest backup needs the WAL after it:
# recovery replays WAL in order and stops at the first missing segment, so no point after the
# gap can be reached from a backup taken before it. A new timeline (after a point-in-time
# restore) starts a run of its own and is no gap. Every backup also needs the WAL from its
# start to its stop in one run.
wal_problem() {
	jq -r --argjson ranges "$2" '
		(.backup // []) as $b
		| ($b | map(.archive.start) | min) as $oldest
		| [($ranges | group_by(.id)[] | sort_by(.start) as $r
			| range(1; $r | length) as $i
			| select($r[$i].start[0:8] == $r[$i - 1].stop[0:8] and $oldest != null and $r[$i].start > $oldest)
			| {after: $r[$i - 1].stop, before: $r[$i].start} as $g
			| $g + {backup: ([$b[] | select(.archive.stop <= $g.after) | .label] | last // null)}
			| "the WAL archive has a gap: the segments between \(.after) and \(.before) are missing, so point-in-time recovery \(if .backup then "from backup \(.backup) " else "" end)cannot reach any time after \(.after); take a full backup now (BACKUP_KIND=full) and find out why archiving lost WAL (see docs/runbooks/backup-verify-failed.md)"),
		  ($b[] | . as $x
			| select([$ranges[] | select(.start <= $x.archive.start and $x.archive.stop <= .stop)] | length == 0)
			| "backup \(.label) needs the WAL from \(.archive.start) to \(.archive.stop), which the archive does not hold in full: the backup cannot be restored consistently")]
		| first // empty' <<<"$1"
}

# auto_kind INFO: full on BACKUP_FULL_WEEKDAY (once that day) and when the newest full is
# missing or older than 7 days, else differential.
auto_kind() {
	local newest
	newest=$(jq -r '[.backup // [] | .[] | select(.type == "full")] | last | .timestamp.stop // empty' <<<"$1")
	if [[ -z $newest ]] || (($(now) - newest > 7 * 86400)); then
		echo full
	elif [[ $(LC_ALL=C date +%a) == "$BACKUP_FULL_WEEKDAY" && $(date -d "@$newest" +%F) != "$(date +%F)" ]]; then
		echo full
	else
		echo diff
	fi
}

# ---------------------------------------------------------------------------------------

do_backup() {
	need pgbackrest psql jq flock setpriv
	pgbr_env
	pg_env
	pg_owner
	backup_lock "$STORE"
	local start stage kind num server_version major canary tables migrations roles info b label type
	local size files manifest_rel id=""
	start=$(now)
	stage=$(stage_dir "$STORE")
	prepare_dirs

	pgbr stanza-create >/dev/null ||
		die "pgbackrest stanza-create $PGBACKREST_STANZA failed (see the error above; unreadable info files mean a wrong cipher pass in PGBACKREST_CIPHER_PASS_FILE)"
	pgbr check >/dev/null ||
		die "pgbackrest check failed: the server does not archive its WAL into $PGBACKREST_REPO1_PATH; it needs wal_level=replica, archive_mode=on and archive_command='$SCRIPT_PATH archive-push %p' (see the top of $SCRIPT_PATH)"

	kind=${BACKUP_KIND:-auto}
	case $kind in
	auto) kind=$(auto_kind "$(info_json)") ;;
	full | diff | incr) ;;
	*) die "BACKUP_KIND: $kind is not one of auto, full, diff, incr" ;;
	esac

	num=$(q -c 'SHOW server_version_num') ||
		die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as $PGUSER (database $PGDATABASE)"
	server_version=$(q -c 'SHOW server_version')
	server_version=${server_version%% *}
	major=$((num / 10000))
	canary="$(date -u +%Y%m%dT%H%M%SZ)-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
	q -v id="$canary" <<SQL || die "could not write the canary row into $CANARY_TABLE"
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.$CANARY_TABLE (id text PRIMARY KEY, taken_at timestamp NOT NULL DEFAULT now());
INSERT INTO public.$CANARY_TABLE (id, taken_at) VALUES (:'id', now());
SQL
	# Counted just before the backup, in one snapshot: writes that go on during the backup
	# make the restored counts differ, hence row_counts_exact=false.
	tables=$(q <<SQL
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
$COUNT_SQL;
COMMIT;
SQL
	) || die "could not count the rows of the tables of $PGDATABASE"
	migrations=$(q -c "$MIGRATIONS_SQL") || die "could not read schema_migrations of $PGDATABASE"
	roles=$(q -c "SELECT coalesce(json_agg(rolname ORDER BY rolname), '[]') FROM pg_roles WHERE rolname !~ '^pg_'")

	log "taking a $kind backup of $PGBACKREST_PG1_PATH (stanza $PGBACKREST_STANZA)"
	pgbr backup --type="$kind" || die "pgbackrest backup --type=$kind failed (see the error above)"
	info=$(info_json)
	b=$(jq -c '.backup | last' <<<"$info")
	label=$(jq -r .label <<<"$b")
	type=$(jq -r .type <<<"$b")
	size=$(jq -r '.info.repository.delta' <<<"$b")
	# pgBackRest's own manifest lists every file of the backup with its checksum; its
	# checksum here chains the manifest to the repository.
	manifest_rel=backup/$PGBACKREST_STANZA/$label/backup.manifest
	[[ -f $PGBACKREST_REPO1_PATH/$manifest_rel ]] || die "pgBackRest reported backup $label but $PGBACKREST_REPO1_PATH/$manifest_rel is missing"
	files=$(jq -n --arg name "$manifest_rel" --argjson size "$(stat -c %s "$PGBACKREST_REPO1_PATH/$manifest_rel")" \
		--arg sha256 "$(sha256sum "$PGBACKREST_REPO1_PATH/$manifest_rel" | cut -d' ' -f1)" '[{name: $name, size: $size, sha256: $sha256}]')

	jq -n --arg project "$BACKUP_PROJECT" --arg store "$STORE" --arg started "$(iso_time "$start")" \
		--arg finished "$(iso_time "$(now)")" --arg host "$(hostname)" \
		--arg pgbackrest "$(pgbackrest version | awk '{print $2}')" --arg server "$server_version" \
		--arg major "$major" --arg database "$PGDATABASE" --arg stanza "$PGBACKREST_STANZA" \
		--argjson b "$b" --argjson files "$files" --argjson tables "$tables" \
		--arg canary_table "$CANARY_TABLE" --arg canary "$canary" --argjson roles "$roles" \
		--arg migrations "$migrations" '{
			format: 1, project: $project, store: $store, method: "pgbackrest", kind: $b.type,
			started_at: $started, finished_at: $finished, host: $host,
			tool_versions: {pgbackrest: $pgbackrest, server: $server}, server_major: $major,
			database: $database, stanza: $stanza, label: $b.label, parent: $b.prior,
			chain: ([$b.reference // [] | .[]] + [$b.label]),
			backup_started_at: ($b.timestamp.start | todate), backup_finished_at: ($b.timestamp.stop | todate),
			lsn: $b.lsn, wal: $b.archive, files: $files,
			size_bytes: $b.info.repository.delta, database_size_bytes: $b.info.size,
			tables: $tables, row_counts_exact: false,
			canary: {table: $canary_table, id: $canary}, roles: $roles,
			migrations: (if $migrations == "" then null else {table: "schema_migrations", version: $migrations} end)
		}' >"$stage/manifest.json"
	copy_restore_plan "$stage"
	write_file "$MANIFEST_DIR/$label.json" <"$stage/manifest.json"
	[[ ! -f $stage/restore-plan.md ]] || write_file "$MANIFEST_DIR/restore-plan.md" <"$stage/restore-plan.md"

	if offsite_configured; then
		restic_ensure offsite
		log "copying the pgBackRest repository and the manifests off-site"
		id=$(restic_on offsite backup --json --host "$BACKUP_PROJECT" --tag "store=$STORE" --tag "kind=$type" \
			--tag "label=$label" --tag "size=$size" "$PGBACKREST_REPO1_PATH" "$MANIFEST_DIR" |
			jq -r 'select(.message_type == "summary") | .snapshot_id')
		[[ -n $id && $id != null ]] || die "the off-site copy of the pgBackRest repository failed"
	fi
	metric_backup_success "$STORE" "$type" "$start" "$size"
	log "backup stored: label=$label kind=$type size=$size${id:+ offsite=${id:0:8}} tables=$(jq length <<<"$tables") rows=$(jq '[.[].rows] | add // 0' <<<"$tables") took=$(($(now) - start))s"
}

# ---------------------------------------------------------------------------------------


# tool_version CMD: the version number CMD --version prints ("15.4").
tool_version() { "$1" --version | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+(\.[0-9]+)*$/) { print $i; exit } }'; }

# scratch_bindir MAJOR: the directory holding pg_ctl and postgres of that major version.
scratch_bindir() {
	local major=$1 dir got
	dir=${PG_BINDIR:-/usr/lib/postgresql/$major/bin}
	if [[ ! -x $dir/pg_ctl ]] && [[ -z ${PG_BINDIR:-} ]] && command -v pg_config >/dev/null 2>&1; then
		dir=$(pg_config --bindir)
	fi
	[[ -x $dir/pg_ctl && -x $dir/postgres ]] ||
		die "no PostgreSQL $major server binaries (pg_ctl, postgres) in $dir: install postgresql-$major or set PG_BINDIR"
	got=$(tool_version "$dir/postgres")
	[[ ${got%%.*} == "$major" ]] ||
		die "$dir/postgres is version $got but the backup is of PostgreSQL $major: set PG_BINDIR to the bin directory of PostgreSQL $major"
	printf '%s\n' "$dir"
}

# probe MANIFEST PSQL_ARGS...: checks the restored database against the manifest: every
# table exists, the canary row, the roles and the migrations version. Row counts were taken
# just before the backup (row_counts_exact=false): differences are reported, not failed on,
# unless the manifest says they are exact. Prints "tables=N rows=M rows_differ=K".
probe() {
	local manifest=$1 got problems n rows canary roles missing want have differ
	shift
	got=$(q "$@" -c "$COUNT_SQL") || die "could not count the rows of the restored database"
	problems=$(jq -r --argjson got "$got" '
		($got | map({key: .name, value: .rows}) | from_entries) as $g
		| .row_counts_exact as $exact
		| .tables[] as $t
		| if ($g | has($t.name) | not) then "table \($t.name) is missing"
		  elif $exact and $g[$t.name] != $t.rows then "table \($t.name) has \($g[$t.name]) rows, the manifest says \($t.rows)"
		  else empty end' "$manifest")
	differ=$(jq -r --argjson got "$got" '($got | map({key: .name, value: .rows}) | from_entries) as $g
		| [.tables[] | select($g[.name] != null and $g[.name] != .rows) | "\(.name): \($g[.name]) rows, \(.rows) counted before the backup"]
		| .[]' "$manifest")
	[[ -z $differ ]] || log "note: row counts that changed while the backup ran: $(paste -sd ';' <<<"$differ")"
	canary=$(jq -r '.canary.id // empty' "$manifest")
	if [[ -n $canary ]]; then
		n=$(q "$@" -v id="$canary" 2>&1 <<SQL
SELECT count(*) FROM public.$CANARY_TABLE WHERE id = :'id';
SQL
		) || n="error: $n"
		[[ $n == 1 ]] || problems+=${problems:+$'\n'}"the canary row $canary is missing from $CANARY_TABLE ($n)"
	fi
	roles=$(jq -c '.roles // []' "$manifest")
	missing=$(q "$@" -v roles="$roles" <<'SQL'
SELECT string_agg(r, ', ') FROM json_array_elements_text((:'roles')::json) AS r WHERE r NOT IN (SELECT rolname FROM pg_roles);
SQL
	) || die "could not list the roles of the restored cluster"
	[[ -z $missing ]] || problems+=${problems:+$'\n'}"roles of the backup are missing: $missing"
	want=$(jq -r '.migrations.version // empty' "$manifest")
	if [[ -n $want ]]; then
		have=$(q "$@" -c "$MIGRATIONS_SQL") || have="error"
		[[ $have == "$want" ]] || problems+=${problems:+$'\n'}"the migrations version is '$have', the manifest says '$want'"
	fi
	if [[ -n $problems ]]; then
		die "the restored database does not match the backup's manifest: $(head -n 10 <<<"$problems" | paste -sd ';' | sed 's/;/; /g')"
	fi
	n=$(jq '.tables | length' "$manifest")
	rows=$(jq -n --argjson got "$got" '[$got[].rows] | add // 0')
	printf 'tables=%s rows=%s rows_differ=%s\n' "$n" "$rows" "$(grep -c . <<<"$differ" || true)"
}

# fetch_offsite ID DEST: restores off-site snapshot ID (the pgBackRest repository and the
# manifests) below DEST and prints two lines: the repository's path and the manifests' path.
fetch_offsite() {
	local id=$1 dest=$2 p repo="" manifests=""
	restic_on offsite restore "$id" --target "$dest" >/dev/null ||
		die "restic could not restore snapshot ${id:0:8} from the offsite repository: damaged or incomplete (check it with: restic check --read-data)"
	while IFS= read -r p; do
		if [[ -d $dest$p/backup/$PGBACKREST_STANZA ]]; then repo=$dest$p; else manifests=$dest$p; fi
	done < <(restic_on offsite snapshots --json "$id" | jq -r '.[0].paths[]')
	[[ -n $repo && -n $manifests ]] ||
		die "off-site snapshot ${id:0:8} does not hold a pgBackRest repository of stanza $PGBACKREST_STANZA and its manifests"
	printf '%s\n%s\n' "$repo" "$manifests"
}

do_restore_test() {
	need pgbackrest psql jq restic flock setpriv
	run_restore_test "$STORE" postgres-pgbackrest.sh
}

do_restore_test_probe() {
	local result_file=$1 start detail=""
	start=$(now)
	need pgbackrest psql jq restic flock setpriv
	pgbr_env
	local repo work id="" manifests user info label manifest major bindir cluster port db result
	local -a paths
	repo=$(restore_repo)
	work=$(temp_dir)
	if [[ $repo == offsite ]]; then
		id=$(latest_snapshot offsite "$STORE")
		[[ -n $id ]] || die "no off-site copy of the pgBackRest repository in the offsite repository"
		detail="snapshot=${id:0:8} "
		printf '%s\n' "$detail" >"$result_file"
		mapfile -t paths < <(fetch_offsite "$id" "$work/fetch")
		((${#paths[@]} == 2)) || die "could not fetch off-site snapshot ${id:0:8}"
		PGBACKREST_REPO1_PATH=${paths[0]}
		manifests=${paths[1]}
	else
		manifests=$MANIFEST_DIR
		[[ -d $PGBACKREST_REPO1_PATH/backup/$PGBACKREST_STANZA ]] ||
			die "no pgBackRest repository of stanza $PGBACKREST_STANZA in $PGBACKREST_REPO1_PATH"
	fi

	# The user pgBackRest and the scratch cluster run as (PostgreSQL refuses root).
	if [[ -n ${RESTORE_TEST_USER:-} ]]; then
		user="$(id -u "$RESTORE_TEST_USER"):$(id -g "$RESTORE_TEST_USER")" ||
			die "RESTORE_TEST_USER $RESTORE_TEST_USER does not exist"
	elif ((EUID != 0)); then
		user="$(id -u):$(id -g)"
	elif [[ $repo == primary && $(owner_of "$PGBACKREST_REPO1_PATH") != 0:* ]]; then
		user=$(owner_of "$PGBACKREST_REPO1_PATH")
	else
		user="$(id -u postgres):$(id -g postgres)" ||
			die "no user postgres to run the scratch cluster as: set RESTORE_TEST_USER"
	fi
	((EUID != 0)) || [[ $repo != offsite ]] || { chmod 0711 "$work" && chown -R "$user" "$work/fetch"; }
	cluster=$(temp_dir)
	((EUID != 0)) || chown "$user" "$cluster"
	chmod 0700 "$cluster"
	((${#cluster} < 90)) || die "the scratch directory $cluster is too long for a Unix socket path: set TMPDIR to a shorter one"
	# Locks and logs of this pgBackRest (and of the scratch server's archive-get) stay there.
	PGBACKREST_LOCK_PATH=$cluster/lock PGBACKREST_LOG_PATH=$cluster/log
	export PGBACKREST_REPO1_PATH PGBACKREST_LOCK_PATH PGBACKREST_LOG_PATH

	info=$(repo_info "$user")
	label=$(jq -r '.backup // [] | last | .label // empty' <<<"$info")
	[[ -n $label ]] || die "the pgBackRest repository $PGBACKREST_REPO1_PATH has no backup of stanza $PGBACKREST_STANZA"
	detail+="label=$label "
	# What is known so far goes with a failure too.
	printf '%s\n' "$detail" >"$result_file"
	manifest=$manifests/$label.json
	[[ -f $manifest ]] || die "backup $label has no manifest ($manifest): not taken by $SCRIPT_PATH, or the manifest was lost"
	verify_files "$PGBACKREST_REPO1_PATH" "$manifest"
	# Every file of every backup and of the WAL archive against pgBackRest's checksums: a
	# damaged older backup or WAL segment would break a point-in-time restore.
	# A gap in the WAL archive breaks point-in-time recovery into that window although every
	# backup restores: verify_repo checks the archive's continuity too.
	if [[ ${RESTORE_TEST_VERIFY:-yes} != no ]]; then
		verify_repo "$user" "$info" >/dev/null
	fi
	major=$(jq -r .server_major "$manifest")
	bindir=$(scratch_bindir "$major")

	log "restoring backup $label ($(jq -r .kind "$manifest")) from the $repo repository into a scratch cluster"
	run_as "$user" mkdir -m 0700 "$cluster/data" "$cluster/lock" "$cluster/log"
	run_as "$user" pgbackrest restore --pg1-path="$cluster/data" --set="$label" --type=immediate \
		--target-action=promote --archive-mode=off 2>"$work/restore.err" ||
		die "pgbackrest restore of backup $label failed (damaged or incomplete backup?): $(grep -A 2 -m 1 'ERROR' "$work/restore.err" | paste -sd ' ')"
	# Its own authentication and configuration: only a Unix socket in its private directory.
	[[ -f $cluster/data/postgresql.conf ]] || run_as "$user" touch "$cluster/data/postgresql.conf"
	printf 'local all all trust\n' >"$cluster/pg_hba.conf"
	: >"$cluster/pg_ident.conf"
	((EUID != 0)) || chown "$user" "$cluster/pg_hba.conf" "$cluster/pg_ident.conf"
	port=$(free_port)
	run_as "$user" "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t "${RESTORE_TEST_TIMEOUT:-600}" -s \
		-o "-c port=$port -c listen_addresses='' -c unix_socket_directories='$cluster' -c unix_socket_permissions=0700 -c hba_file='$cluster/pg_hba.conf' -c ident_file='$cluster/pg_ident.conf' -c archive_mode=off -c ssl=off -c shared_buffers=128MB -c logging_collector=off -c fsync=off" \
		start || die "the scratch PostgreSQL $major did not start on backup $label: $(tail -n 5 "$cluster/server.log" 2>/dev/null | paste -sd ' ')"
	on_exit "run_as '$user' '$bindir/pg_ctl' -D '$cluster/data' -m immediate -s stop"
	CONN=(-h "$cluster" -p "$port" -U "$PGBACKREST_PG1_USER")
	wait_for "${RESTORE_TEST_TIMEOUT:-600}" "the end of recovery of the scratch cluster" scratch_promoted

	db=$(jq -r .database "$manifest")
	result=$(probe "$manifest" "${CONN[@]}" -d "$db")
	printf '%s\n' "${detail}$result" >"$result_file"
	log "restore test passed: ${detail}from the $repo repository, PostgreSQL $major, $result, took $(($(now) - start))s"
}

CONN=()
scratch_promoted() { [[ $(q "${CONN[@]}" -d postgres -c 'SELECT pg_is_in_recovery()') == f ]]; }

# ---------------------------------------------------------------------------------------

do_restore() {
	local time="" target="" set="" from="" delta=0 force=0 restore_command=""
	while (($# > 0)); do
		case $1 in
		--time) time=${2:?--time needs 'YYYY-MM-DD HH:MM:SS+00'}; shift ;;
		--time=*) time=${1#*=} ;;
		--target-dir) target=${2:?--target-dir needs a directory}; shift ;;
		--target-dir=*) target=${1#*=} ;;
		# --snapshot, as the other stores name it: here the pgBackRest backup label.
		--set | --snapshot) set=${2:?$1 needs a backup label}; shift ;;
		--set=* | --snapshot=*) set=${1#*=} ;;
		--from) from=${2:?--from needs local or offsite}; shift ;;
		--from=*) from=${1#*=} ;;
		--restore-command) restore_command=${2:?--restore-command needs a command}; shift ;;
		--restore-command=*) restore_command=${1#*=} ;;
		--delta) delta=1 ;;
		--force) force=1 ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "restore: unknown option $1" ;;
		esac
		shift
	done
	need pgbackrest jq flock setpriv
	pgbr_env
	target=$(abs "${target:-$PGBACKREST_PG1_PATH}")
	if [[ -n $time && ! $time =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?[+-][0-9]{2}(:?[0-9]{2})?$ ]]; then
		die "--time '$time' is not of the form 'YYYY-MM-DD HH:MM:SS+00' (with the UTC offset)"
	fi
	backup_lock "$STORE"
	local info count owner id
	local -a paths opts
	if [[ -d $target && -n $(ls -A "$target") ]]; then
		((delta || force)) ||
			die "the data directory $target is not empty: stop PostgreSQL and pass --delta (rewrite changed files) or --force (overwrite all), or restore into an empty --target-dir"
		[[ ! -f $target/postmaster.pid ]] || ((force)) ||
			die "$target/postmaster.pid exists: stop PostgreSQL before restoring (or pass --force if it is stale)"
	fi

	# The repository: local when it has backups, else the off-site copy.
	count=0
	if [[ -d $PGBACKREST_REPO1_PATH/backup/$PGBACKREST_STANZA ]]; then
		count=$(run_as "$(owner_of "$PGBACKREST_REPO1_PATH")" pgbackrest info --output=json | jq '.[0].backup // [] | length') || count=0
	fi
	if [[ -z $from ]]; then
		from=offsite
		((count == 0)) || from=local
	fi
	case $from in
	local) ((count > 0)) || die "the local pgBackRest repository $PGBACKREST_REPO1_PATH has no backups: restore from the off-site copy with --from offsite" ;;
	offsite)
		need restic
		offsite_configured || die "no backups in $PGBACKREST_REPO1_PATH and no off-site repository (BACKUP_OFFSITE_REPOSITORY) to restore from"
		id=$(latest_snapshot offsite "$STORE")
		[[ -n $id ]] || die "no copy of the pgBackRest repository in the off-site repository"
		local fetch
		fetch=$(mktemp -d "$BACKUP_DIR/restore-fetch.XXXXXX")
		on_exit "rm -rf '$fetch'"
		log "fetching the pgBackRest repository from off-site snapshot ${id:0:8}"
		mapfile -t paths < <(fetch_offsite "$id" "$fetch")
		((${#paths[@]} == 2)) || die "could not fetch off-site snapshot ${id:0:8}"
		if [[ -e $PGBACKREST_REPO1_PATH ]]; then
			log "moving the local repository aside to $PGBACKREST_REPO1_PATH.before-restore-$(now)"
			mv "$PGBACKREST_REPO1_PATH" "$PGBACKREST_REPO1_PATH.before-restore-$(now)"
		fi
		mkdir -p "$(dirname "$PGBACKREST_REPO1_PATH")" "$MANIFEST_DIR"
		mv "${paths[0]}" "$PGBACKREST_REPO1_PATH"
		cp -n "${paths[1]}"/*.json "$MANIFEST_DIR/" 2>/dev/null || true
		;;
	*) die "--from: $from is not local or offsite" ;;
	esac

	# pgBackRest and the restored files belong to the owner of the data directory (or of
	# the repository when the data directory is new).
	if [[ -d $target ]]; then owner=$(owner_of "$target"); else owner=$(owner_of "$PGBACKREST_REPO1_PATH"); fi
	if ((EUID == 0)) && [[ ${owner%:*} == 0 ]]; then
		owner="$(id -u postgres):$(id -g postgres)" || die "cannot tell which user PostgreSQL runs as: chown $target to it"
	fi
	((EUID != 0)) || chown -R "$owner" "$PGBACKREST_REPO1_PATH"
	if [[ ! -d $target ]]; then
		mkdir -p "$target"
		chmod 0700 "$target"
		((EUID != 0)) || chown "$owner" "$target"
	fi
	PGBACKREST_LOCK_PATH=$(mktemp -d "${TMPDIR:-/tmp}/pgbackrest-restore-lock.XXXXXX")
	on_exit "rm -rf '$PGBACKREST_LOCK_PATH'"
	((EUID != 0)) || chown "$owner" "$PGBACKREST_LOCK_PATH"
	[[ -d $PGBACKREST_LOG_PATH ]] || PGBACKREST_LOG_PATH=$PGBACKREST_LOCK_PATH
	export PGBACKREST_LOCK_PATH PGBACKREST_LOG_PATH

	opts=(--pg1-path="$target")
	[[ -z $set ]] || opts+=(--set="$set")
	if [[ -n $time ]]; then
		opts+=(--type=time --target="$time" --target-action=promote)
	fi
	((delta == 0)) || opts+=(--delta)
	((force == 0)) || opts+=(--force)
	opts+=(--recovery-option="restore_command=${restore_command:-$SCRIPT_PATH archive-get %f \"%p\"}")
	log "restoring backup ${set:-(the newest${time:+ before $time})} from the $from repository into $target"
	run_as "$owner" pgbackrest restore "${opts[@]}" || die "pgbackrest restore into $target failed (see the error above)"
	info=$(grep -E '^(restore_command|recovery_target)' "$target/postgresql.auto.conf" | paste -sd ';' || true)
	log "restored into $target ($info). Start PostgreSQL on it: it replays the archived WAL${time:+ up to $time}, then promotes and runs on a new timeline; then take a full backup (BACKUP_KIND=full ops/backup/backup.sh postgres)"
}

# ---------------------------------------------------------------------------------------

do_list() {
	need pgbackrest jq setpriv
	pgbr_env
	pg_owner
	local n
	info_json | jq -r '.backup // [] | .[] | [(.timestamp.stop | todate), .type, .info.repository.delta, .label] | @tsv'
	if offsite_configured; then
		need restic
		n=$(snapshots_json offsite "$STORE" | jq -r 'if length == 0 then "none" else "\(length), the newest \(last.time | sub("\\.[0-9]+"; "")) (\(last.tags | map(select(startswith("label="))) | first // "" | ltrimstr("label=")))" end')
		log "off-site copies of the repository: $n"
	fi
}

do_prune() {
	need pgbackrest jq restic flock setpriv
	pgbr_env
	pg_owner
	backup_lock "$STORE"
	local info newest labels f newest_copy
	info=$(info_json)
	newest=$(jq -r '.backup // [] | last | .timestamp.stop // empty' <<<"$info")
	prune_guard "$STORE" "$newest"
	log "expiring pgBackRest backups: keep $PGBACKREST_REPO1_RETENTION_FULL full (one a week) and $PGBACKREST_REPO1_RETENTION_DIFF differential"
	pgbr expire || die "pgbackrest expire failed (see the error above)"
	labels=$(info_json | jq -r '.backup // [] | .[].label')
	for f in "$MANIFEST_DIR"/*.json; do
		[[ -f $f ]] || continue
		grep -qxF "$(basename "$f" .json)" <<<"$labels" || rm -f "$f"
	done
	if offsite_configured; then
		restic_ensure offsite
		newest_copy=$(snapshots_json offsite "$STORE" | jq -r 'last | .time // empty')
		[[ -z $newest_copy ]] || newest_copy=$(date -d "$newest_copy" +%s)
		prune_guard "$STORE" "$newest_copy"
		log "pruning the off-site copies: keep $BACKUP_RETENTION_DAILY daily, $BACKUP_RETENTION_WEEKLY weekly, $BACKUP_RETENTION_MONTHLY monthly"
		restic_on offsite forget --host "$BACKUP_PROJECT" --tag "store=$STORE" --group-by host \
			--keep-daily "$BACKUP_RETENTION_DAILY" --keep-weekly "$BACKUP_RETENTION_WEEKLY" \
			--keep-monthly "$BACKUP_RETENTION_MONTHLY" --prune >&2
	fi
}

# do_verify: the scheduled check of the local repository (ops/backup/verify.sh), which the
# restore test does not read when it restores the off-site copy: verify_repo as the
# repository's owner. Prints the summary.
do_verify() {
	need pgbackrest jq flock setpriv
	pgbr_env
	[[ -d $PGBACKREST_REPO1_PATH/backup/$PGBACKREST_STANZA ]] ||
		die "no pgBackRest repository of stanza $PGBACKREST_STANZA in $PGBACKREST_REPO1_PATH (has a backup run yet?)"
	backup_lock "$STORE"
	local user info
	user=$(owner_of "$PGBACKREST_REPO1_PATH")
	if [[ ${user%:*} == 0 ]]; then
		user="$(id -u postgres):$(id -g postgres)" || die "the repository $PGBACKREST_REPO1_PATH belongs to root and there is no user postgres to read it as"
	fi
	info=$(repo_info "$user")
	[[ $(jq '.backup // [] | length' <<<"$info") -gt 0 ]] ||
		die "the pgBackRest repository $PGBACKREST_REPO1_PATH has no backup of stanza $PGBACKREST_STANZA"
	verify_repo "$user" "$info"
}

# archive-push and archive-get run as the server's user for every WAL segment: no lock, no
# checks beyond the configuration.
do_archive() {
	need pgbackrest
	pgbr_env
	exec pgbackrest "$@"
}

case ${1:-} in
backup) do_backup ;;
restore-test) do_restore_test ;;
restore-test-probe) shift; do_restore_test_probe "$@" ;;
restore) shift; do_restore "$@" ;;
list) do_list ;;
prune) do_prune ;;
verify) do_verify ;;
archive-push)
	(($# == 2)) || die "usage: $SCRIPT_PATH archive-push WAL_PATH (archive_command = '$SCRIPT_PATH archive-push %p')"
	do_archive archive-push "$2"
	;;
archive-get)
	(($# == 3)) || die "usage: $SCRIPT_PATH archive-get WAL_NAME DEST (restore_command = '$SCRIPT_PATH archive-get %f \"%p\"')"
	# The server runs restore_command in its data directory, which pgBackRest wants as pg1-path
	# (a restored copy is not where PGBACKREST_PG1_PATH points).
	[[ ! -f $PWD/PG_VERSION ]] || export PGBACKREST_PG1_PATH=$PWD
	do_archive archive-get "$2" "$3"
	;;
-h | --help | help) usage ;;
*) usage >&2; die "unknown action '${1:-}'" ;;
esac
