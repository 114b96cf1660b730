#!/usr/bin/env bash
# MariaDB, physical: mariadb-backup chains of a full backup followed by differential
# (against the chain's full) and incremental (against the chain's previous backup) ones,
# each stored with restic (encrypted, copied off-site) as its own snapshot tagged with its
# chain, label, parent and LSN, so that no earlier backup has to stay on disk in plain text.
#
# Usage: ops/backup/mariadb-backup.sh backup|restore-test|restore|list|prune [OPTIONS]
#   restore --help prints the options of the disaster path.
#
# Kinds (BACKUP_KIND): auto (default) takes a full backup on BACKUP_FULL_WEEKDAY (once that
# day), when the newest full is older than 7 days or when there is none, else a
# differential one; full, diff and incr force the kind (the incremental timer sets incr).
#
# Settings (environment, defaults in ops/backup/backup.env): MARIADB_HOST, MARIADB_PORT,
# MARIADB_SOCKET (a local socket instead of host and port), MARIADB_USER,
# MARIADB_PASSWORD_FILE, MARIADB_DATABASE (whose tables the manifest counts and the restore
# test probes; the backup holds every database), MARIADB_DATADIR (the server's data
# directory, read directly: it must be mounted here), MARIADB_BACKUP_PARALLEL (copy threads,
# default 2), MARIADB_SYSTEM_USERS, MARIADB_BINDIR (where mariadbd of the scratch server is),
# RESTORE_TEST_ROW_TOLERANCE (percent a table's row count may differ from the manifest's,
# counted just after the backup, so writes during it differ; default 2), MIGRATIONS_TABLE.
#
# The backup account needs RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR and SELECT on *.*
# and INSERT, CREATE, DELETE on the database (the canary row); root has them. mariadb-backup
# must be of the server's version and run where the data directory is readable.
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=ops/backup/mariadb-lib.sh
. "$(dirname "$0")/mariadb-lib.sh"
# Errors inside $(...) stop the script too.
shopt -s inherit_errexit

STORE=mariadb
CANARY_TABLE=opsready_backup_canary
: "${MARIADB_HOST:=127.0.0.1}"
: "${MARIADB_PORT:=3306}"
: "${MARIADB_SOCKET:=}"
: "${MARIADB_USER:=root}"
: "${MARIADB_DATABASE:=app}"
: "${MARIADB_PASSWORD_FILE:=secrets/db_root_password}"
: "${MARIADB_DATADIR:=/var/lib/mysql}"
MARIADB_DATADIR=$(abs "$MARIADB_DATADIR")
: "${MARIADB_BACKUP_PARALLEL:=2}"
: "${MARIADB_SYSTEM_USERS:=root mariadb.sys mysql healthcheck debian-sys-maint PUBLIC}"
: "${MARIADB_BINDIR:=}"
: "${MIGRATIONS_TABLE:=schema_migrations}"
: "${RESTORE_TEST_ROW_TOLERANCE:=2}"
: "${BACKUP_KIND:=auto}"

# ---------------------------------------------------------------------------------------
# SQL helpers

# q SQL [DB]: runs SQL on the live server; tab-separated rows without headers.
q() { mariadb --defaults-file="$MY_CNF" --batch --skip-column-names --raw -e "$1" ${2:+--database="$2"}; }

# connect: checks the connection; sets SERVER_VERSION.
SERVER_VERSION=
connect() {
	client_cnf
	if ! SERVER_VERSION=$(q 'SELECT VERSION()' 2>&1); then
		die "cannot connect to $(where) as $MARIADB_USER (MARIADB_HOST, MARIADB_PORT, MARIADB_SOCKET, MARIADB_USER, MARIADB_PASSWORD_FILE): $SERVER_VERSION"
	fi
}

# major VERSION: 10.11 of 10.11.19-MariaDB-0+deb12u1.
major() { sed -n 's/^\([0-9]*\.[0-9]*\)\..*/\1/p' <<<"$1"; }

# tool_version PROGRAM: the MariaDB version a client program was built from.
tool_version() { "$1" --version 2>&1 | sed -n 's/.*\(server\|Distrib\|Ver\) \([0-9][0-9.]*-MariaDB\).*/\2/p' | head -n 1; }

# objects_sql DB: the number of views, triggers, routines and events of DB.
objects_sql() {
	printf '%s' "SELECT
		(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = $(lit "$1")),
		(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = $(lit "$1")),
		(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$1")),
		(SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$1"))"
}
objects_json() { jq -R -c 'split("\t") | map(tonumber) | {views: .[0], triggers: .[1], routines: .[2], events: .[3]}'; }

# tag NAME: a jq function reading the value of tag NAME=value of a snapshot.
# shellcheck disable=SC2016 # jq program, not shell
JQ_TAG='def tag($k): ((.tags // []) | map(select(startswith($k + "="))) | first // "" | ltrimstr($k + "="));'

# physical_snapshots REPO: the snapshots of this method (full|diff|incr), oldest first.
physical_snapshots() {
	snapshots_json "$1" "$STORE" | jq "$JQ_TAG"' map(select(tag("kind") | IN("full", "diff", "incr")))'
}

# ---------------------------------------------------------------------------------------
# backup

# choose_kind SNAPSHOTS_JSON: full, diff or incr for this run (see the header).
choose_kind() {
	local snaps=$1 kind=$BACKUP_KIND newest_full age today
	newest_full=$(jq -r "$JQ_TAG"' map(select(tag("kind") == "full")) | last | .time // empty' <<<"$snaps")
	case $kind in
	full | diff | incr | auto) ;;
	*) die "BACKUP_KIND: $kind is not one of auto, full, diff, incr" ;;
	esac
	if [[ -z $newest_full ]]; then
		[[ $kind == full || $kind == auto ]] || log "no full backup exists yet: taking a full one instead of $kind"
		echo full
		return
	fi
	if [[ $kind == auto ]]; then
		age=$(($(now) - $(date -d "$newest_full" +%s)))
		today=$(date +%F)
		if ((age > 7 * 86400)); then
			log "the newest full backup is $((age / 86400)) days old: taking a full one"
			kind='full'
		elif [[ $(LC_ALL=C date +%a) == "$BACKUP_FULL_WEEKDAY" && $(date -d "$newest_full" +%F) != "$today" ]]; then
			kind='full'
		else
			kind='diff'
		fi
	fi
	echo "$kind"
}

# table_counts DB: [{name, rows}] of the base tables of DB on the live server.
table_counts() {
	local db=$1 names sql='' name
	names=$(qq "SELECT table_name FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_type = 'BASE TABLE' ORDER BY table_name")
	[[ -n $names ]] || { echo '[]'; return; }
	while IFS= read -r name; do
		sql+="SELECT COUNT(*) FROM $(ident "$db").$(ident "$name");"$'\n'
	done <<<"$names"
	paste <(printf '%s\n' "$names") <(qq "$sql") | jq -R 'split("\t") | {name: .[0], rows: (.[1] | tonumber)}' | jq -s -c .
}

do_backup() {
	need mariadb mariadb-backup restic jq sha256sum
	backup_lock "$STORE"
	local start db snaps kind chain='' parent='' parent_lsn='' label canary out stage tool
	local from_lsn to_lsn last_lsn tables users roles objects migrations='null' size id has_migrations mversion
	start=$(now)
	connect
	db=$MARIADB_DATABASE
	[[ -r $MARIADB_DATADIR && -d $MARIADB_DATADIR ]] ||
		die "MARIADB_DATADIR $MARIADB_DATADIR is not a readable directory: mariadb-backup reads the server's data directory, mount it here"
	tool=$(tool_version mariadb-backup)
	[[ $(major "$tool") == "$(major "$SERVER_VERSION")" ]] ||
		die "mariadb-backup $tool cannot back up MariaDB $SERVER_VERSION: install the mariadb-backup of the server's version"
	[[ -n $(q "SELECT 1 FROM information_schema.schemata WHERE schema_name = $(lit "$db")") ]] ||
		die "database $db does not exist on $(where) (MARIADB_DATABASE)"

	restic_ensure primary
	snaps=$(physical_snapshots primary)
	kind=$(choose_kind "$snaps")
	if [[ $kind != full ]]; then
		chain=$(jq -r "$JQ_TAG"' map(select(tag("kind") == "full")) | last | tag("chain")' <<<"$snaps")
		if [[ $kind == diff ]]; then
			parent=$(jq -r --arg c "$chain" "$JQ_TAG"' map(select(tag("chain") == $c and tag("kind") == "full")) | last | [tag("label"), tag("lsn")] | @tsv' <<<"$snaps")
		else
			parent=$(jq -r --arg c "$chain" "$JQ_TAG"' map(select(tag("chain") == $c)) | last | [tag("label"), tag("lsn")] | @tsv' <<<"$snaps")
		fi
		parent_lsn=${parent#*$'\t'} parent=${parent%%$'\t'*}
		[[ $parent_lsn =~ ^[0-9]+$ ]] || die "the parent backup $parent has no LSN tag; take a full backup (BACKUP_KIND=full)"
		# A backup on top of a broken chain (a link forgotten or lost) could never be
		# restored: start a new chain instead, so that the next restore test passes again.
		if ! out=$(chain_check "$snaps" "$parent"); then
			log "warning: chain $chain is broken in the primary repository ($out): taking a full backup instead of a $kind one"
			kind=full chain='' parent='' parent_lsn=''
		fi
	fi
	label="$(date -u +%Y%m%dT%H%M%SZ)-$kind-$(printf '%04x' $((RANDOM % 65536)))"
	[[ $kind != full ]] || chain=$label
	stage=$(stage_dir "$STORE")

	canary="$(date -u +%Y%m%dT%H%M%SZ)-$$-$RANDOM$RANDOM"
	if ! out=$(q "CREATE TABLE IF NOT EXISTS $CANARY_TABLE (id VARCHAR(64) PRIMARY KEY, taken_at DATETIME NOT NULL);
		INSERT INTO $CANARY_TABLE (id, taken_at) VALUES ($(lit "$canary"), UTC_TIMESTAMP());
		DELETE FROM $CANARY_TABLE WHERE taken_at < UTC_TIMESTAMP() - INTERVAL 400 DAY" "$db" 2>&1); then
		die "cannot write the canary row into $db.$CANARY_TABLE: $out"
	fi

	local -a opts=(--defaults-file="$MY_CNF" --backup --datadir="$MARIADB_DATADIR" --target-dir="$stage/data"
		--parallel="$MARIADB_BACKUP_PARALLEL")
	[[ $kind == full ]] || opts+=(--incremental-lsn="$parent_lsn")
	log "taking a $kind backup of $(where) ($MARIADB_DATADIR)${parent:+ on top of $parent}"
	if ! mariadb-backup "${opts[@]}" >"$stage/.backup.log" 2>&1; then
		die "mariadb-backup --backup failed: $(grep -v '^\[0[0-9]\] .* Copying\|Streaming\|Done:' "$stage/.backup.log" | tail -n 4 | tr '\n' ' ')"
	fi
	rm -f "$stage/.backup.log"
	from_lsn=$(sed -n 's/^from_lsn = //p' "$stage/data/xtrabackup_checkpoints")
	to_lsn=$(sed -n 's/^to_lsn = //p' "$stage/data/xtrabackup_checkpoints")
	last_lsn=$(sed -n 's/^last_lsn = //p' "$stage/data/xtrabackup_checkpoints")
	[[ $to_lsn =~ ^[0-9]+$ ]] || die "mariadb-backup wrote no to_lsn into xtrabackup_checkpoints"

	# Counted just after the backup, whose consistent point is its end: exact without writes
	# in between, hence row_counts_exact false and RESTORE_TEST_ROW_TOLERANCE.
	tables=$(table_counts "$db")
	users=$(qq "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE is_role <> 'Y' AND $(system_user_filter) ORDER BY 1" | jq -R . | jq -s -c 'map(select(. != ""))')
	roles=$(qq "SELECT user FROM mysql.user WHERE is_role = 'Y' AND $(system_user_filter) ORDER BY 1" | jq -R . | jq -s -c 'map(select(. != ""))')
	objects=$(qq "$(objects_sql "$db")" | objects_json)
	# Each query into a variable first: a failure inside [[ ]] or a jq argument would be lost.
	has_migrations=$(qq "SELECT 1 FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_name = $(lit "$MIGRATIONS_TABLE")")
	if [[ -n $has_migrations ]]; then
		mversion=$(qq "SELECT COALESCE(MAX(version), '') FROM $(ident "$MIGRATIONS_TABLE")" "$db")
		migrations=$(jq -n --arg t "$MIGRATIONS_TABLE" --arg v "$mversion" '{table: $t, version: $v}')
	fi

	jq -n --arg project "$BACKUP_PROJECT" --arg started "$(iso_time "$start")" \
		--arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg host "$(if [[ -n $MARIADB_SOCKET ]]; then echo "$MARIADB_SOCKET"; else echo "$MARIADB_HOST:$MARIADB_PORT"; fi)" \
		--arg kind "$kind" --arg lbl "$label" --arg chain "$chain" --arg parent "$parent" \
		--argjson from "${from_lsn:-0}" --argjson to "$to_lsn" --argjson last "${last_lsn:-0}" \
		--arg tool "$tool" --arg server "$SERVER_VERSION" --arg major "$(major "$SERVER_VERSION")" --arg db "$db" \
		--arg canary "$canary" --arg ctable "$CANARY_TABLE" --argjson tables "$tables" \
		--argjson users "$users" --argjson roles "$roles" --argjson objects "$objects" --argjson migrations "$migrations" \
		--argjson files "$(manifest_files "$stage")" \
		'{format: 1, project: $project, store: "mariadb", method: "mariadb-backup", kind: $kind,
		  "label": $lbl, chain: $chain, parent: (if $parent == "" then null else $parent end),
		  lsn: {from: $from, to: $to, last: $last},
		  started_at: $started, finished_at: $finished, host: $host,
		  tool_versions: {"mariadb-backup": $tool, server: $server}, server_major: $major,
		  database: $db, backup_dir: "data",
		  files: $files, size_bytes: ([$files[].size] | add // 0),
		  tables: $tables, row_counts_exact: false, rows_total: ([$tables[].rows] | add // 0),
		  objects: $objects, canary: {table: $ctable, id: $canary},
		  users: $users, roles: $roles, migrations: $migrations}' >"$stage/manifest.json"
	copy_restore_plan "$stage"
	size=$(files_size "$stage")
	local -a tags=("chain=$chain" "label=$label" "lsn=$to_lsn" "size=$size")
	[[ -z $parent ]] || tags+=("parent=$parent")
	# Stored here, then the whole chain is copied off-site: a restore from there needs every
	# link, and this also copies one that an earlier run failed to (restic copies each
	# snapshot once).
	id=$(BACKUP_OFFSITE_REPOSITORY='' store_snapshot "$STORE" "$kind" "$stage" "${tags[@]}")
	if offsite_configured; then
		restic_ensure offsite
		log "copying snapshot ${id:0:8} and the rest of chain $chain off-site"
		RESTIC_FROM_PASSWORD_FILE=$RESTIC_PASSWORD_FILE restic_on offsite copy --from-repo "$BACKUP_RESTIC_REPOSITORY" \
			--host "$BACKUP_PROJECT" --tag "store=$STORE,chain=$chain" >/dev/null
	fi
	metric_backup_success "$STORE" "$kind" "$start" "$size"
	log "mariadb $kind backup ${id:0:8} ($label, chain $chain, LSN ${from_lsn:-0}..$to_lsn): $(jq 'length' <<<"$tables") tables, $(jq '[.[].rows] | add // 0' <<<"$tables") rows in $db, $size bytes, $(($(now) - start))s"
}

# ---------------------------------------------------------------------------------------
# Chains

# chain_check SNAPSHOTS_JSON LABEL: fails, printing the reason, when a backup that LABEL builds
# on (its parent, the parent's parent, ... up to the full one) is missing.
chain_check() {
	jq -r --arg want "$2" "$JQ_TAG"'
		(map({key: tag("label"), value: .}) | from_entries) as $by
		| def up($l): if $by[$l] == null then "backup \($l) is missing"
			elif ($by[$l] | tag("kind")) == "full" then empty
			else up($by[$l] | tag("parent")) end;
		[up($want)] | if length == 0 then empty else (.[0] | halt_error(1)) end' <<<"$1" 2>&1 >/dev/null
}

# chain_of REPO SNAPSHOT: the snapshots a restore of SNAPSHOT (an id or its prefix) needs,
# the full one first, as "id<TAB>label<TAB>kind<TAB>path" lines.
chain_of() {
	local repo=$1 want=$2 snaps out
	snaps=$(physical_snapshots "$repo")
	if ! out=$(jq -r --arg want "$want" "$JQ_TAG"'
		(map({key: tag("label"), value: .}) | from_entries) as $by
		| (map(select(.id | startswith($want))) | last) as $s
		| if $s == null then error("snapshot \($want) is not a mariadb-backup snapshot of this repository") else . end
		| [$s | recurse(if tag("kind") == "full" then empty
			else ($by[tag("parent")] // error("its parent \(tag("parent")) (of \(tag("label"))) is missing")) end)]
		| reverse | .[] | [.id, tag("label"), tag("kind"), .paths[0]] | @tsv' <<<"$snaps" 2>&1); then
		die "the backup chain in the $repo repository is broken: ${out#jq: error (at <stdin>:*): }"
	fi
	printf '%s\n' "$out"
}

# fetch_chain REPO SNAPSHOT WORK: fetches and verifies the chain of SNAPSHOT into WORK/0..n
# (each with data/ and manifest.json) and checks that the LSNs join up; prints n.
fetch_chain() {
	local repo=$1 want=$2 work=$3 i=0 id label kind path prev_to='' from chain
	chain=$(chain_of "$repo" "$want")
	while IFS=$'\t' read -r id label kind path; do
		log "fetching $kind backup $label (${id:0:8}) from the $repo repository"
		fetch_snapshot "$repo" "$id" "$work/$i" "$path"
		verify_files "$work/$i" "$work/$i/manifest.json"
		from=$(jq -r '.lsn.from' "$work/$i/manifest.json")
		if ((i > 0)) && [[ $from != "$prev_to" ]]; then
			die "backup $label starts at LSN $from but its parent ends at $prev_to: the chain does not join up"
		fi
		prev_to=$(jq -r '.lsn.to' "$work/$i/manifest.json")
		i=$((i + 1))
	done <<<"$chain"
	((i > 0)) || die "no backups to restore"
	echo $((i - 1))
}

# prepare WORK N DIR: restores the fetched chain WORK/0..N into DIR, ready for mariadbd.
prepare() {
	local work=$1 n=$2 dir=$3 i
	if [[ -d $dir ]]; then
		# An empty directory that stays (a mount point, say): the files go into it.
		find "$work/0/data" -mindepth 1 -maxdepth 1 -exec mv -t "$dir" {} +
	else
		mv "$work/0/data" "$dir"
	fi
	if ! mariadb-backup --prepare --target-dir="$dir" >"$work/prepare.log" 2>&1; then
		die "mariadb-backup --prepare of the full backup failed: $(tail -n 4 "$work/prepare.log" | tr '\n' ' ')"
	fi
	for ((i = 1; i <= n; i++)); do
		if ! mariadb-backup --prepare --target-dir="$dir" --incremental-dir="$work/$i/data" >"$work/prepare.log" 2>&1; then
			die "applying backup $(jq -r '.label' "$work/$i/manifest.json") failed: $(tail -n 4 "$work/prepare.log" | tr '\n' ' ')"
		fi
		rm -rf "$work/$i/data"
	done
}

# ---------------------------------------------------------------------------------------
# Scratch server and probes

# scratch_start WORK DATADIR [MARIADBD OPTIONS...]: starts a private mariadbd on DATADIR, a
# free port and a socket of its own; SCRATCH_SOCK is set; stopped at exit.
SCRATCH_SOCK=
scratch_start() {
	local work=$1 datadir=$2 mariadbd port sockdir pid i
	shift 2
	mariadbd=$(prog mariadbd)
	sockdir=$work
	# A unix socket path must stay below 108 bytes.
	if ((${#work} > 80)); then
		sockdir=$(mktemp -d /tmp/mariadb-scratch.XXXXXX)
		on_exit "rm -rf '$sockdir'"
	fi
	SCRATCH_SOCK=$sockdir/mysqld.sock
	port=$(free_port)
	local -a opts=(--datadir="$datadir" --socket="$SCRATCH_SOCK" --port="$port" --bind-address=127.0.0.1
		--pid-file="$work/mysqld.pid" --log-error="$work/mysqld.log" --event-scheduler=OFF --skip-slave-start
		--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 --max-allowed-packet=1G)
	((EUID != 0)) || opts+=(--user=root)
	"$mariadbd" "$@" "${opts[@]}" >>"$work/mysqld.log" 2>&1 &
	pid=$!
	on_exit "scratch_stop $pid"
	for ((i = 0; i < 240; i++)); do
		mariadb-admin --no-defaults --socket="$SCRATCH_SOCK" -uroot ping >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || die "the scratch mariadbd exited: $(tail -n 5 "$work/mysqld.log" | tr '\n' ' ')"
		sleep 0.25
	done
	die "the scratch mariadbd did not come up within 60s: $(tail -n 5 "$work/mysqld.log" | tr '\n' ' ')"
}

# sq SQL [DB]: runs SQL on the scratch server.
sq() { mariadb --no-defaults --socket="$SCRATCH_SOCK" -uroot --batch --skip-column-names --raw -e "$1" ${2:+--database="$2"}; }

# probe DB MANIFEST: checks the restored server against the manifest (tables and row counts
# of DB, objects, canary row, accounts, migrations version); prints "tables=N rows=M ...".
probe() {
	local db=$1 manifest=$2 exact want got missing name bad=() total=0 n=0 sql='' extra=''
	exact=$(jq -r '.row_counts_exact' "$manifest")
	missing=$(comm -23 <(jq -r '.tables[].name' "$manifest" | LC_ALL=C sort) \
		<(sq "SELECT table_name FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_type = 'BASE TABLE'" | LC_ALL=C sort))
	[[ -z $missing ]] || die "tables of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
	while IFS= read -r name; do
		sql+="SELECT COUNT(*) FROM $(ident "$db").$(ident "$name");"$'\n'
	done < <(jq -r '.tables[].name' "$manifest")
	if [[ -n $sql ]]; then
		while IFS=$'\t' read -r name want got; do
			n=$((n + 1)) total=$((total + got))
			if [[ $exact == true ]]; then
				[[ $got == "$want" ]] || bad+=("$name has $got rows, the manifest says $want")
			elif ! awk -v g="$got" -v w="$want" -v t="$RESTORE_TEST_ROW_TOLERANCE" \
				'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d * 100 <= t * w) }'; then
				bad+=("$name has $got rows, the manifest says $want (tolerance ${RESTORE_TEST_ROW_TOLERANCE}%)")
			fi
		done < <(paste <(jq -r '.tables[] | [.name, (.rows | tostring)] | @tsv' "$manifest") <(sq "$sql"))
	fi
	((${#bad[@]} == 0)) || die "${#bad[@]} table(s) differ from the manifest: $(printf '%s; ' "${bad[@]:0:5}")"
	got=$(sq "$(objects_sql "$db")" | objects_json)
	want=$(jq -c '.objects' "$manifest")
	[[ $got == "$want" ]] || die "views, triggers, routines and events after the restore are $got, the manifest says $want"
	want=$(jq -r '.canary.id' "$manifest")
	got=$(sq "SELECT COUNT(*) FROM $(ident "$db").$(ident "$(jq -r '.canary.table' "$manifest")") WHERE id = $(lit "$want")" 2>&1) || true
	[[ $got == 1 ]] || die "the canary row $want is not in $(jq -r '.canary.table' "$manifest") after the restore ($got)"
	missing=$(comm -23 <(jq -r '.users[]' "$manifest" | LC_ALL=C sort) \
		<(sq "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE is_role <> 'Y'" | LC_ALL=C sort))
	[[ -z $missing ]] || die "accounts of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
	missing=$(comm -23 <(jq -r '.roles[]' "$manifest" | LC_ALL=C sort) \
		<(sq "SELECT user FROM mysql.user WHERE is_role = 'Y'" | LC_ALL=C sort))
	[[ -z $missing ]] || die "roles of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
	if [[ $(jq -r '.migrations // empty' "$manifest") ]]; then
		want=$(jq -r '.migrations.version' "$manifest")
		got=$(sq "SELECT COALESCE(MAX(version), '') FROM $(ident "$(jq -r '.migrations.table' "$manifest")")" "$db" 2>&1) || true
		[[ $got == "$want" ]] || die "the migrations version after the restore is '$got', the manifest says '$want'"
		extra=" migrations=${want:-none}"
	fi
	printf 'tables=%s rows=%s users=%s canary=ok%s\n' "$n" "$total" "$(jq '.users | length' "$manifest")" "$extra"
}

# ---------------------------------------------------------------------------------------
# restore-test: the probe runs as a child process (its own exit hooks stop the scratch
# server), so that any failure in it is recorded before this script fails.

do_restore_test() {
	need restic jq mariadb mariadb-admin mariadb-backup
	run_restore_test "$STORE" mariadb-backup.sh
}

do_restore_test_probe() {
	local result=$1 repo id work n manifest major mine tool out
	repo=$(restore_repo)
	id=$(physical_snapshots "$repo" | jq -r 'last | .id // empty')
	[[ -n $id ]] || die "no mariadb-backup backup in the $repo repository"
	work=$(temp_dir)
	n=$(fetch_chain "$repo" "$id" "$work")
	manifest=$work/$n/manifest.json
	major=$(jq -r '.server_major' "$manifest")
	mine=$(major "$(tool_version "$(prog mariadbd)")")
	[[ $major == "$mine" ]] || die "the backup is from MariaDB $major, the scratch mariadbd here is $mine (the same major version is needed; set MARIADB_BINDIR)"
	tool=$(tool_version mariadb-backup)
	[[ $(major "$tool") == "$major" ]] || die "the backup is from MariaDB $major, mariadb-backup here is $tool: it cannot prepare it"
	prepare "$work" "$n" "$work/datadir"
	# The grant tables are read as data (accounts are probed), not enforced: the backup's
	# root password is not needed to look inside.
	scratch_start "$work" "$work/datadir" --defaults-file="$work/datadir/backup-my.cnf" --skip-grant-tables
	out=$(probe "$(jq -r '.database' "$manifest")" "$manifest")
	printf 'snapshot=%s chain=%s backups=%s %s\n' "${id:0:8}" "$(jq -r '.chain' "$manifest")" $((n + 1)) "$out" >"$result"
}

# ---------------------------------------------------------------------------------------
# restore: the disaster path

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/mariadb-backup.sh restore [--target-dir DIR] [--snapshot ID | --time TIME] [--force]

Fetches the newest mariadb-backup backup (or snapshot ID as ops/backup/list.sh mariadb shows
it, or the newest taken at or before TIME, e.g. "2026-05-01 03:00") with the full and
incremental backups it builds on, checks every file against its manifest and prepares a
complete data directory in DIR (default: a new directory below BACKUP_DIR/restored).
DIR must be empty; --force empties it first. Then put it in place of the data directory:
  1. docker compose stop backend db
  2. move the old data directory aside (keep it until the service works again), e.g.
     mv /var/lib/docker/volumes/<project>_db-data/_data{,.broken}
  3. mariadb-backup --copy-back --target-dir=DIR --datadir=<the data directory>
     (or move DIR there), then chown -R 999:999 <the data directory> (mysql in the image)
  4. docker compose start db backend, and run the smoke test
EOF
}

do_restore() {
	local target='' snapshot='' at='' force=0 repo work n t id ts
	while (($# > 0)); do
		case $1 in
		--target-dir) target=${2:?--target-dir needs a directory}; shift 2 ;;
		--snapshot) snapshot=${2:?--snapshot needs an id}; shift 2 ;;
		--time) at=${2:?--time needs a time}; shift 2 ;;
		--force) force=1; shift ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "unknown option $1" ;;
		esac
	done
	need restic jq mariadb-backup
	[[ -n $target ]] || target=$BACKUP_DIR/restored/mariadb-$(date -u +%Y%m%dT%H%M%SZ)
	target=$(abs "$target")
	if [[ -d $target && -d $MARIADB_DATADIR && $(cd "$target" && pwd -P) == "$(cd "$MARIADB_DATADIR" && pwd -P)" ]]; then
		die "$target is the server's data directory (MARIADB_DATADIR): prepare into a new directory, then swap it in (see --help)"
	fi
	if [[ -d $target && -n $(ls -A "$target") ]]; then
		((force)) || die "$target is not empty; pass --force to empty it first, or choose another --target-dir"
		log "--force: emptying $target"
		find "$target" -mindepth 1 -delete
	fi
	repo=$(restore_repo)
	if [[ -z $snapshot ]]; then
		if [[ -n $at ]]; then
			t=$(date -d "$at" +%s) || die "--time: cannot read '$at' as a time"
			while IFS=$'\t' read -r id ts; do
				(($(date -d "$ts" +%s) <= t)) && snapshot=$id
			done < <(physical_snapshots "$repo" | jq -r '.[] | [.id, .time] | @tsv')
			[[ -n $snapshot ]] || die "no mariadb-backup backup at or before $at in the $repo repository"
		else
			snapshot=$(physical_snapshots "$repo" | jq -r 'last | .id // empty')
			[[ -n $snapshot ]] || die "no mariadb-backup backup in the $repo repository"
		fi
	fi
	# The work folder on the target's file system: --prepare --incremental-dir renames files
	# from it into the target, which fails across file systems (/tmp on tmpfs, say).
	mkdir -p "$(dirname "$target")"
	work=$(TMPDIR=$(dirname "$target") temp_dir)
	n=$(fetch_chain "$repo" "$snapshot" "$work")
	rmdir "$target" 2>/dev/null || true
	prepare "$work" "$n" "$target"
	log "prepared $(jq -r '.kind + " backup " + .label + " (" + .finished_at + ")"' "$work/$n/manifest.json") in $target; now put it in place (ops/backup/mariadb-backup.sh restore --help, docs/restore-plan.md)"
	printf '%s\n' "$target"
}

do_list() {
	need restic jq
	physical_snapshots "$(restore_repo)" |
		jq -r "$JQ_TAG"' .[] | [(.time | sub("\\.[0-9]+"; "")), tag("kind"), tag("size"), .short_id, tag("label"), "chain=" + tag("chain")] | @tsv'
}

# prune: grandfather-father-son over chains. The fulls are kept by the GFS rules; the
# differential and incremental backups live as long as the full of their chain.
do_prune() {
	need restic jq
	backup_lock "$STORE"
	local repo newest snaps orphans
	local -a repos=(primary)
	offsite_configured && repos+=(offsite)
	for repo in "${repos[@]}"; do
		restic_ensure "$repo"
		snaps=$(physical_snapshots "$repo")
		newest=$(jq -r 'last | .time // empty' <<<"$snaps")
		[[ -z $newest ]] || newest=$(date -d "$newest" +%s)
		prune_guard "$STORE" "$newest"
		log "pruning mariadb in the $repo repository: keep the chains of $BACKUP_RETENTION_DAILY daily, $BACKUP_RETENTION_WEEKLY weekly, $BACKUP_RETENTION_MONTHLY monthly full backups"
		restic_on "$repo" forget --host "$BACKUP_PROJECT" --tag "store=$STORE,kind=full" --group-by host \
			--keep-daily "$BACKUP_RETENTION_DAILY" --keep-weekly "$BACKUP_RETENTION_WEEKLY" \
			--keep-monthly "$BACKUP_RETENTION_MONTHLY" >&2
		snaps=$(physical_snapshots "$repo")
		orphans=$(jq -r "$JQ_TAG"' (map(select(tag("kind") == "full") | tag("chain"))) as $kept
			| .[] | select(tag("kind") != "full" and (tag("chain") | IN($kept[]) | not)) | .id' <<<"$snaps")
		if [[ -n $orphans ]]; then
			log "forgetting $(wc -l <<<"$orphans") differential/incremental backups whose full backup is gone"
			# shellcheck disable=SC2086 # one id per word
			restic_on "$repo" forget $orphans >&2
		fi
		restic_on "$repo" prune >&2
	done
}

action=${1:-}
(($# > 0)) && shift
case $action in
backup) do_backup ;;
restore-test) do_restore_test ;;
restore-test-probe) do_restore_test_probe "$@" ;;
restore) do_restore "$@" ;;
list) do_list ;;
prune) do_prune ;;
*) die "usage: $0 backup|restore-test|restore|list|prune (got '${action}')" ;;
esac
