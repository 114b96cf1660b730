#!/usr/bin/env bash
# MariaDB, logical: mariadb-dump of MARIADB_DATABASE (one consistent InnoDB snapshot with
# routines, triggers and events) plus the server's accounts and grants, stored with restic
# (encrypted, copied off-site). The row counts of the manifest are read from the dump itself,
# so they are exactly what a restore must hold, even with writes during the backup.
#
# Usage: ops/backup/mariadb-dump.sh backup|restore-test|restore|list|prune [OPTIONS]
#   restore --help prints the options of the disaster path.
#
# Settings (environment, defaults in ops/backup/backup.env): MARIADB_HOST, MARIADB_PORT,
# MARIADB_SOCKET (a local socket instead of host and port), MARIADB_USER,
# MARIADB_PASSWORD_FILE, MARIADB_DATABASE; MARIADB_DUMP_COMPRESS none|zstd|gzip (default none:
# restic compresses and deduplicates, a compressed dump defeats the deduplication);
# MARIADB_SYSTEM_USERS (accounts that belong to the server, not to the project, and are not
# backed up); MARIADB_BINDIR (where mariadbd and mariadb-install-db of the scratch server are,
# default: PATH, /usr/sbin, /usr/bin); RESTORE_TEST_ROW_TOLERANCE (percent a table's row count
# may differ when the manifest's counts are not exact, default 0); MIGRATIONS_TABLE.
#
# The backup account needs SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, RELOAD and PROCESS
# on *.* (SELECT on mysql.* for the accounts) and INSERT, CREATE, DELETE on the database (the
# canary row); root has them. A restore needs an administrator (root).
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=ops/backup/mariadb-lib.sh
. "$(dirname "$0")/mariadb-lib.sh"
# Errors inside $(...) stop the script too.
shopt -s inherit_errexit

STORE=mariadb
KIND=logical
CANARY_TABLE=opsready_backup_canary
: "${MARIADB_HOST:=127.0.0.1}"
: "${MARIADB_PORT:=3306}"
: "${MARIADB_SOCKET:=}"
: "${MARIADB_USER:=root}"
: "${MARIADB_DATABASE:=app}"
: "${MARIADB_PASSWORD_FILE:=secrets/db_root_password}"
: "${MARIADB_DUMP_COMPRESS:=none}"
: "${MARIADB_SYSTEM_USERS:=root mariadb.sys mysql healthcheck debian-sys-maint PUBLIC}"
: "${MARIADB_BINDIR:=}"
: "${MIGRATIONS_TABLE:=schema_migrations}"
: "${RESTORE_TEST_ROW_TOLERANCE:=0}"

# ---------------------------------------------------------------------------------------
# SQL helpers

# q SQL [DB]: runs SQL on the live server; tab-separated rows without headers.
q() { mariadb --defaults-file="$MY_CNF" --batch --skip-column-names --raw -e "$1" ${2:+--database="$2"}; }

# connect: checks the connection; sets SERVER_VERSION.
SERVER_VERSION=
connect() {
	client_cnf
	if ! SERVER_VERSION=$(q 'SELECT VERSION()' 2>&1); then
		die "cannot connect to $(where) as $MARIADB_USER (MARIADB_HOST, MARIADB_PORT, MARIADB_USER, MARIADB_PASSWORD_FILE): $SERVER_VERSION"
	fi
}

# major VERSION: 10.11 of 10.11.19-MariaDB-0+deb12u1.
major() { sed -n 's/^\([0-9]*\.[0-9]*\)\..*/\1/p' <<<"$1"; }

# dump_users FILE: SQL that recreates the project's accounts and roles with their grants
# (CREATE ... IF NOT EXISTS: existing accounts keep their passwords), and the manifest's
# lists of them as JSON {users: [...], roles: [...]} on stdout. The backup user needs
# SELECT on mysql.* for this.
dump_users() {
	local file=$1 list user host acct grants line default roles=() users=() sql
	list=$(qq "SELECT is_role, user, host FROM mysql.user WHERE $(system_user_filter) ORDER BY is_role DESC, user, host")
	sql='-- Accounts and grants, written by ops/backup/mariadb-dump.sh'$'\n'
	while IFS=$'\t' read -r line user host; do
		[[ -n $user ]] || continue
		if [[ $line == Y ]]; then
			roles+=("$user")
			sql+="CREATE ROLE IF NOT EXISTS $(ident "$user");"$'\n'
		else
			users+=("$user@$host")
			acct="$(ident "$user")@$(ident "$host")"
			line=$(qq "SHOW CREATE USER $acct")
			sql+="CREATE USER IF NOT EXISTS ${line#CREATE USER };"$'\n'
		fi
	done <<<"$list"
	while IFS=$'\t' read -r line user host; do
		[[ -n $user ]] || continue
		if [[ $line == Y ]]; then
			acct=$(ident "$user")
		else
			acct="$(ident "$user")@$(ident "$host")"
		fi
		grants=$(qq "SHOW GRANTS FOR $acct")
		while IFS= read -r line; do
			# The global grant repeats the authentication (IDENTIFIED ...) and the limits that
			# CREATE USER holds: cut here, so that a restore never resets a password.
			if [[ $line == 'GRANT '*' ON *.* TO '"$acct"' '* ]]; then
				local cut="${line%%" TO $acct "*} TO $acct"
				[[ $line != *' WITH GRANT OPTION'* ]] || cut+=' WITH GRANT OPTION'
				line=$cut
			fi
			sql+="$line;"$'\n'
		done <<<"$grants"
		if [[ $acct == *@* ]]; then
			default=$(qq "SELECT default_role FROM mysql.user WHERE user = $(lit "$user") AND host = $(lit "$host")")
			[[ -z $default ]] || sql+="SET DEFAULT ROLE $(ident "$default") FOR $acct;"$'\n'
		fi
	done <<<"$list"
	printf '%s' "$sql" >"$file"
	jq -n '{users: $ARGS.positional[0], roles: $ARGS.positional[1]}' --jsonargs \
		"$(printf '%s\n' "${users[@]}" | jq -R . | jq -s -c 'map(select(. != ""))')" \
		"$(printf '%s\n' "${roles[@]}" | jq -R . | jq -s -c 'map(select(. != ""))')"
}

# COUNT_ROWS: an awk program that passes a dump through unchanged and writes "table<TAB>rows"
# for every table it creates to the file named by the variable out. Rows are the tuples of
# the INSERTs between LOCK TABLES `t` WRITE and UNLOCK TABLES (--add-locks; stored programs
# cannot hold LOCK TABLES, so an INSERT in a routine body is never counted): string literals
# and quoted names are removed (mariadb-dump escapes newlines in strings, so no string spans
# lines), then the "),(" between tuples are counted.
# shellcheck disable=SC2016 # awk program, not shell
COUNT_ROWS='
function unquote(s) { s = substr(s, 2, length(s) - 2); gsub(/``/, "`", s); return s }
function tuples(s,   n) {
	gsub(/\\./, "", s); gsub(/'"'"'[^'"'"']*'"'"'/, "", s); gsub(/`[^`]*`/, "", s)
	n = gsub(/\)[ \t]*,[ \t]*\(/, "", s)
	if (s ~ /\)[ \t]*,[ \t]*$/) n++
	if (s ~ /;[ \t]*$/) ins = 0
	return n
}
{ print }
ins { rows[data] += tuples($0); next }
/^CREATE TABLE `/ && match($0, /^CREATE TABLE `([^`]|``)*`/) {
	t = unquote(substr($0, 14, RLENGTH - 13)); if (!(t in rows)) { rows[t] = 0; order[++n] = t }
	next
}
/^LOCK TABLES `/ && match($0, /^LOCK TABLES `([^`]|``)*`/) { data = unquote(substr($0, 13, RLENGTH - 12)); next }
/^UNLOCK TABLES;/ { data = ""; next }
data != "" && /^INSERT INTO `/ && match($0, /^INSERT INTO `([^`]|``)*`/) {
	ins = 1
	rows[data] += 1 + tuples(substr($0, RLENGTH + 1))
}
END { for (i = 1; i <= n; i++) printf "%s\t%d\n", order[i], rows[order[i]] > out }
'

compressor() {
	case $1 in
	none) cat ;;
	zstd) zstd -q -T0 -3 ;;
	gzip) gzip -6 ;;
	esac
}
decompressor() {
	case $1 in
	none) cat ;;
	zstd) zstd -q -d -c ;;
	gzip) gzip -d -c ;;
	*) die "unknown compression $1 in the manifest" ;;
	esac
}

# ---------------------------------------------------------------------------------------
# backup

do_backup() {
	need mariadb mariadb-dump restic jq sha256sum awk
	local ext
	case $MARIADB_DUMP_COMPRESS in
	none) ext='' ;;
	zstd) need zstd; ext=.zst ;;
	gzip) need gzip; ext=.gz ;;
	*) die "MARIADB_DUMP_COMPRESS: $MARIADB_DUMP_COMPRESS is not one of none, zstd, gzip" ;;
	esac
	backup_lock "$STORE"
	local start version db stage canary out schema dumpfile tables accounts objects migrations='null' size id
	start=$(now)
	connect
	version=$SERVER_VERSION
	db=$MARIADB_DATABASE
	schema=$(q "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = $(lit "$db")")
	[[ -n $schema ]] || die "database $db does not exist on $(where) (MARIADB_DATABASE)"
	stage=$(stage_dir "$STORE")

	canary="$(date -u +%Y%m%dT%H%M%SZ)-$$-$RANDOM$RANDOM"
	if ! out=$(q "CREATE TABLE IF NOT EXISTS $CANARY_TABLE (id VARCHAR(64) PRIMARY KEY, taken_at DATETIME NOT NULL);
		INSERT INTO $CANARY_TABLE (id, taken_at) VALUES ($(lit "$canary"), UTC_TIMESTAMP());
		DELETE FROM $CANARY_TABLE WHERE taken_at < UTC_TIMESTAMP() - INTERVAL 400 DAY" "$db" 2>&1); then
		die "cannot write the canary row into $db.$CANARY_TABLE: $out"
	fi

	dumpfile=dump.sql$ext
	# One transaction for every InnoDB table (no locks on them); the awk filter counts the
	# rows on the way to the file.
	if ! mariadb-dump --defaults-file="$MY_CNF" --single-transaction --quick --add-locks --routines --triggers \
		--events --hex-blob --default-character-set=utf8mb4 --skip-dump-date "$db" 2>"$stage/.dump.err" |
		LC_ALL=C awk -v out="$stage/.counts" "$COUNT_ROWS" | compressor "$MARIADB_DUMP_COMPRESS" >"$stage/$dumpfile"; then
		die "mariadb-dump of $db failed: $(tail -n 5 "$stage/.dump.err" | tr '\n' ' ')"
	fi
	tables=$(jq -R 'split("\t") | {name: .[0], rows: (.[1] | tonumber)}' "$stage/.counts" | jq -s -c .)
	rm -f "$stage/.counts" "$stage/.dump.err"
	[[ $tables != '[]' ]] || log "warning: the dump of $db holds no tables"
	accounts=$(dump_users "$stage/users.sql")
	objects=$(qq "SELECT
		(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$db"))" |
		jq -R 'split("\t") | map(tonumber) | {views: .[0], triggers: .[1], routines: .[2], events: .[3]}')
	if [[ -n $(qq "SELECT 1 FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_name = $(lit "$MIGRATIONS_TABLE")") ]]; then
		migrations=$(jq -n --arg t "$MIGRATIONS_TABLE" --arg v "$(qq "SELECT COALESCE(MAX(version), '') FROM $(ident "$MIGRATIONS_TABLE")" "$db")" '{table: $t, version: $v}')
	fi

	jq -n --arg project "$BACKUP_PROJECT" --arg started "$(iso_time "$start")" \
		--arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg host "$(if [[ -n $MARIADB_SOCKET ]]; then echo "$MARIADB_SOCKET"; else echo "$MARIADB_HOST:$MARIADB_PORT"; fi)" \
		--arg dumpv "$(mariadb-dump --version | sed -n 's/.*Distrib \([^ ,]*\).*/\1/p')" \
		--arg server "$version" --arg major "$(major "$version")" --arg db "$db" \
		--arg charset "${schema%%$'\t'*}" --arg collation "${schema#*$'\t'}" \
		--arg dumpfile "$dumpfile" --arg compression "$MARIADB_DUMP_COMPRESS" \
		--arg canary "$canary" --arg ctable "$CANARY_TABLE" \
		--argjson tables "$tables" \
		--argjson accounts "$accounts" --argjson objects "$objects" --argjson migrations "$migrations" \
		--argjson files "$(manifest_files "$stage")" \
		'{format: 1, project: $project, store: "mariadb", method: "mariadb-dump", kind: "logical",
		  started_at: $started, finished_at: $finished, host: $host,
		  tool_versions: {"mariadb-dump": $dumpv, server: $server}, server_major: $major,
		  database: $db, charset: $charset, collation: $collation,
		  dump: {file: $dumpfile, compression: $compression}, users_file: "users.sql",
		  files: $files, size_bytes: ([$files[].size] | add // 0),
		  tables: $tables, row_counts_exact: true, rows_total: ([$tables[].rows] | add // 0),
		  objects: $objects, canary: {table: $ctable, id: $canary},
		  users: $accounts.users, roles: $accounts.roles, migrations: $migrations}' >"$stage/manifest.json"
	copy_restore_plan "$stage"
	size=$(files_size "$stage")
	id=$(store_snapshot "$STORE" "$KIND" "$stage" "size=$size")
	metric_backup_success "$STORE" "$KIND" "$start" "$size"
	log "mariadb backup ${id:0:8}: database $db, $(jq '.tables | length' "$stage/manifest.json") tables, $(jq '.rows_total' "$stage/manifest.json") rows, $(jq '.users | length' "$stage/manifest.json") accounts, $size bytes, $(($(now) - start))s"
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
		--pid-file="$work/mysqld.pid" --log-error="$work/mysqld.log" --event-scheduler=OFF
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

# probe DB MANIFEST: checks a restored database against its manifest (tables and row
# counts, objects, canary row, accounts, migrations version); prints "tables=N rows=M ...".
# QFN names the function that runs SQL there (sq or q).
probe() {
	local db=$1 manifest=$2 qfn=${3:-sq} exact want got missing extra name bad=() total=0 n=0 sql
	exact=$(jq -r '.row_counts_exact' "$manifest")
	missing=$(comm -23 <(jq -r '.tables[].name' "$manifest" | LC_ALL=C sort) \
		<("$qfn" "SELECT table_name FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_type = 'BASE TABLE'" | LC_ALL=C sort))
	[[ -z $missing ]] || die "tables of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
	sql=''
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
		done < <(paste <(jq -r '.tables[] | [.name, (.rows | tostring)] | @tsv' "$manifest") <("$qfn" "$sql"))
	fi
	((${#bad[@]} == 0)) || die "${#bad[@]} table(s) differ from the manifest: $(printf '%s; ' "${bad[@]:0:5}")"
	if [[ $(jq -r '.objects // empty' "$manifest") ]]; then
		got=$("$qfn" "SELECT
			(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = $(lit "$db")),
			(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = $(lit "$db")),
			(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$db")),
			(SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$db"))" |
			jq -R -c 'split("\t") | map(tonumber) | {views: .[0], triggers: .[1], routines: .[2], events: .[3]}')
		want=$(jq -c '.objects' "$manifest")
		[[ $got == "$want" ]] || die "views, triggers, routines and events after the restore are $got, the manifest says $want"
	fi
	want=$(jq -r '.canary.id' "$manifest")
	got=$("$qfn" "SELECT COUNT(*) FROM $(ident "$db").$(ident "$(jq -r '.canary.table' "$manifest")") WHERE id = $(lit "$want")" 2>&1) || true
	[[ $got == 1 ]] || die "the canary row $want is not in $(jq -r '.canary.table' "$manifest") after the restore ($got)"
	if [[ $qfn == sq ]]; then
		missing=$(comm -23 <(jq -r '.users[]' "$manifest" | LC_ALL=C sort) \
			<("$qfn" "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE is_role <> 'Y'" | LC_ALL=C sort))
		[[ -z $missing ]] || die "accounts of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
		missing=$(comm -23 <(jq -r '.roles[]' "$manifest" | LC_ALL=C sort) \
			<("$qfn" "SELECT user FROM mysql.user WHERE is_role = 'Y'" | LC_ALL=C sort))
		[[ -z $missing ]] || die "roles of the backup are missing after the restore: $(tr '\n' ' ' <<<"$missing")"
	fi
	extra=''
	if [[ $(jq -r '.migrations // empty' "$manifest") ]]; then
		want=$(jq -r '.migrations.version' "$manifest")
		got=$("$qfn" "SELECT COALESCE(MAX(version), '') FROM $(ident "$(jq -r '.migrations.table' "$manifest")")" "$db" 2>&1) || true
		[[ $got == "$want" ]] || die "the migrations version after the restore is '$got', the manifest says '$want'"
		extra=" migrations=${want:-none}"
	fi
	printf 'tables=%s rows=%s users=%s canary=ok%s\n' "$n" "$total" "$(jq '.users | length' "$manifest")" "$extra"
}

# ---------------------------------------------------------------------------------------
# restore-test: the probe runs as a child process (its own exit hooks stop the scratch
# server), so that any failure in it is recorded before this script fails.

do_restore_test() {
	need restic jq mariadb mariadb-admin mariadb-install-db
	run_restore_test "$STORE" mariadb-dump.sh
}

do_restore_test_probe() {
	local result=$1 repo snaps id path work dir manifest major mine db out
	repo=$(restore_repo)
	snaps=$(snapshots_json "$repo" "$STORE" "kind=$KIND") || die "cannot list the backups in the $repo repository"
	id=$(jq -r 'last | .id // empty' <<<"$snaps")
	path=$(jq -r 'last | .paths[0] // empty' <<<"$snaps")
	[[ -n $id ]] || die "no mariadb backup in the $repo repository"
	work=$(temp_dir)
	dir=$work/backup
	fetch_snapshot "$repo" "$id" "$dir" "$path"
	manifest=$dir/manifest.json
	verify_files "$dir" "$manifest"
	major=$(jq -r '.server_major' "$manifest")
	mine=$(major "$("$(prog mariadbd)" --version | sed -n 's/.*Ver \([0-9][^ ]*\).*/\1/p')")
	[[ $major == "$mine" ]] || die "the backup is from MariaDB $major, the scratch mariadbd here is $mine (the same major version is needed; set MARIADB_BINDIR)"

	local -a install=(--no-defaults --datadir="$work/data" --auth-root-authentication-method=normal --skip-test-db)
	((EUID != 0)) || install+=(--user=root)
	out=$(mariadb-install-db "${install[@]}" 2>&1) || die "mariadb-install-db failed: $(tail -n 5 <<<"$out" | tr '\n' ' ')"
	scratch_start "$work" "$work/data" --no-defaults
	if ! out=$(mariadb --no-defaults --socket="$SCRATCH_SOCK" -uroot <"$dir/users.sql" 2>&1); then
		die "loading the accounts and grants (users.sql) failed: $out"
	fi
	db=$(jq -r '.database' "$manifest")
	sq "CREATE DATABASE $(ident "$db") CHARACTER SET $(jq -r '.charset' "$manifest") COLLATE $(jq -r '.collation' "$manifest")"
	if ! out=$(decompressor "$(jq -r '.dump.compression' "$manifest")" <"$dir/$(jq -r '.dump.file' "$manifest")" |
		mariadb --no-defaults --socket="$SCRATCH_SOCK" -uroot --database="$db" 2>&1); then
		die "loading the dump failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
	fi
	out=$(probe "$db" "$manifest" sq)
	printf 'snapshot=%s %s\n' "${id:0:8}" "$out" >"$result"
}

# ---------------------------------------------------------------------------------------
# restore: the disaster path

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/mariadb-dump.sh restore [--target-db NAME] [--snapshot ID | --time TIME]
                                          [--users | --no-users] [--force]

Loads the newest mariadb backup (or snapshot ID as ops/backup/list.sh mariadb shows it, or
the newest taken at or before TIME, e.g. "2026-05-01 03:00") into database NAME (default
MARIADB_DATABASE) on the server of MARIADB_HOST/MARIADB_PORT, after checking every file
against the manifest, then checks tables, row counts and the canary row.
  --users      also create the accounts and grants of the backup (CREATE ... IF NOT EXISTS:
               existing accounts keep their passwords). The default when NAME is the
               database that was backed up.
  --no-users   do not.
  --force      the target database is not empty: drop it and restore into a new one.
Steps: stop the writers (docker compose stop backend), run this, start them again.
EOF
}

do_restore() {
	local target='' snapshot='' at='' with_users='' force=0 repo work dir manifest out t id objects
	while (($# > 0)); do
		case $1 in
		--target-db) target=${2:?--target-db needs a name}; shift 2 ;;
		--snapshot) snapshot=${2:?--snapshot needs an id}; shift 2 ;;
		--time) at=${2:?--time needs a time}; shift 2 ;;
		--users) with_users=1; shift ;;
		--no-users) with_users=0; shift ;;
		--force) force=1; shift ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "unknown option $1" ;;
		esac
	done
	need restic jq mariadb
	backup_lock "$STORE"
	target=${target:-$MARIADB_DATABASE}
	connect
	repo=$(restore_repo)
	if [[ -z $snapshot ]]; then
		if [[ -n $at ]]; then
			t=$(date -d "$at" +%s) || die "--time: cannot read '$at' as a time"
			while IFS=$'\t' read -r id out; do
				(($(date -d "$out" +%s) <= t)) && snapshot=$id
			done < <(snapshots_json "$repo" "$STORE" "kind=$KIND" | jq -r '.[] | [.id, .time] | @tsv')
			[[ -n $snapshot ]] || die "no mariadb backup at or before $at in the $repo repository"
		else
			snapshot=$(latest_snapshot "$repo" "$STORE" "kind=$KIND")
			[[ -n $snapshot ]] || die "no mariadb backup in the $repo repository"
		fi
	fi
	objects=$(q "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $(lit "$target"))
		+ (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$target"))
		+ (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$target"))")
	if ((objects > 0 && force != 1)); then
		die "database $target on $(where) is not empty ($objects tables, routines and events); pass --force to drop it and restore into a new one, or choose --target-db"
	fi
	work=$(temp_dir)
	dir=$work/backup
	fetch_snapshot "$repo" "$snapshot" "$dir"
	manifest=$dir/manifest.json
	verify_files "$dir" "$manifest"
	[[ -n $with_users ]] || with_users=$([[ $target == "$(jq -r '.database' "$manifest")" ]] && echo 1 || echo 0)
	if ((objects > 0)); then
		log "--force: dropping database $target ($objects objects)"
		q "DROP DATABASE $(ident "$target")"
	fi
	q "CREATE DATABASE IF NOT EXISTS $(ident "$target") CHARACTER SET $(jq -r '.charset' "$manifest") COLLATE $(jq -r '.collation' "$manifest")"
	if ((with_users)); then
		out=$(mariadb --defaults-file="$MY_CNF" <"$dir/users.sql" 2>&1) || die "creating the accounts and grants of the backup failed: $out"
		log "accounts of the backup present: $(jq -r '.users | join(" ")' "$manifest")"
	fi
	log "loading snapshot ${snapshot:0:8} ($(jq -r '.finished_at' "$manifest"), database $(jq -r '.database' "$manifest")) into $target"
	if ! out=$(decompressor "$(jq -r '.dump.compression' "$manifest")" <"$dir/$(jq -r '.dump.file' "$manifest")" |
		mariadb --defaults-file="$MY_CNF" --database="$target" 2>&1); then
		die "loading the dump into $target failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
	fi
	out=$(probe "$target" "$manifest" q)
	log "restored snapshot ${snapshot:0:8} into $target on $(where): $out"
}

action=${1:-}
(($# > 0)) && shift
case $action in
backup) do_backup ;;
restore-test) do_restore_test ;;
restore-test-probe) do_restore_test_probe "$@" ;;
restore) do_restore "$@" ;;
list) list_snapshots "$STORE" ;;
prune)
	need restic jq
	backup_lock "$STORE"
	restic_prune "$STORE"
	;;
*) die "usage: $0 backup|restore-test|restore|list|prune (got '${action}')" ;;
esac
