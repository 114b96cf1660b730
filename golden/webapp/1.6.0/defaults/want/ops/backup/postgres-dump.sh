#!/usr/bin/env bash
# PostgreSQL logical backups of PGDATABASE: `pg_dump -Fc` taken in an exported snapshot, in
# which the rows of every table are counted too (so manifest.json's row counts are exact),
# plus `pg_dumpall --globals-only` (roles), stored with restic and copied off-site. The
# restore test restores the newest backup into a scratch cluster of the same major version
# and probes it against the manifest.
#
# Usage: ops/backup/postgres-dump.sh backup|restore-test|list|prune
#        ops/backup/postgres-dump.sh restore [--target-db NAME] [--snapshot ID] [--force] ...
#        (`restore --help` lists the options)
#
# Settings (environment, defaults in ops/backup/backup.env): PGHOST PGPORT PGUSER PGDATABASE
# and PGPASSWORD_FILE (a superuser, so that pg_dumpall can read the roles' passwords);
# PG_BINDIR: the binaries of the scratch cluster (default /usr/lib/postgresql/<server major>/bin);
# RESTORE_TEST_USER: runs the scratch cluster when this script runs as root (default postgres).
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

STORE=postgres
KIND=logical
CANARY_TABLE=opsready_backup_canary

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
# Relations an application could have created: a database with any is not empty.
RELATIONS_SQL="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"

usage() {
	cat <<'EOF'
Usage: ops/backup/postgres-dump.sh ACTION
  backup          dump PGDATABASE and the roles, store them (restic, off-site copy), write metrics
  restore-test    restore the newest backup into a scratch cluster and probe it
  restore [OPTS]  restore a backup into a database of the live server (see restore --help)
  list            the backups, newest last: time, kind, size in bytes, snapshot id
  prune           apply the retention (BACKUP_RETENTION_*), refused when backups are stale
EOF
}

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/postgres-dump.sh restore [OPTIONS]
Restores a logical backup into a database of the server PGHOST:PGPORT (as PGUSER): the
disaster path. Stop the application first. See docs/restore-plan.md.

  --target-db NAME   the database to restore into (default: PGDATABASE); created when missing
  --snapshot ID      the restic snapshot to restore (default: the newest; see `list`)
  --from REPO        primary or offsite (default: RESTORE_TEST_FROM, auto = off-site when set)
  --force            restore into a database that is not empty: pg_restore --clean --if-exists
                     drops and recreates the backup's objects (other objects are kept)
  --globals          apply the backed-up roles (pg_dumpall --globals-only) even when they exist
  --no-globals       never apply them (default: applied when a role of the backup is missing)
  -h, --help         this help
EOF
}

# q ARGS...: psql without psqlrc, quiet, unaligned, tuples only, stopping at the first error.
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# pg_env: checks and exports the libpq settings; the password comes from PGPASSWORD_FILE.
pg_env() {
	local var
	for var in PGHOST PGPORT PGUSER PGDATABASE; do
		[[ -n ${!var:-} ]] || die "$var is not set (see ops/backup/backup.env)"
	done
	local file
	file=$(secret_path PGPASSWORD_FILE secrets/db_password)
	PGPASSWORD=$(read_secret "$file")
	export PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD
	export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} PGAPPNAME=${PGAPPNAME:-opsready-backup}
}

# pg_tool NAME: NAME from PG_BINDIR when it has it, else from PATH.
pg_tool() {
	if [[ -n ${PG_BINDIR:-} && -x $PG_BINDIR/$1 ]]; then
		printf '%s\n' "$PG_BINDIR/$1"
	else
		need "$1"
		command -v "$1"
	fi
}

# tool_version CMD: the version number CMD --version prints ("15.4").
tool_version() { "$1" --version | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+(\.[0-9]+)*$/) { print $i; exit } }'; }

# scratch_bindir MAJOR: the directory holding initdb, pg_ctl and postgres of that major version.
scratch_bindir() {
	local major=$1 dir got
	dir=${PG_BINDIR:-/usr/lib/postgresql/$major/bin}
	if [[ ! -x $dir/initdb ]] && [[ -z ${PG_BINDIR:-} ]] && command -v pg_config >/dev/null 2>&1; then
		dir=$(pg_config --bindir)
	fi
	[[ -x $dir/initdb && -x $dir/pg_ctl ]] ||
		die "no PostgreSQL $major server binaries (initdb, pg_ctl) in $dir: install postgresql-$major or set PG_BINDIR"
	got=$(tool_version "$dir/postgres")
	[[ ${got%%.*} == "$major" ]] ||
		die "$dir/postgres is version $got but the backup is of PostgreSQL $major: set PG_BINDIR to the bin directory of PostgreSQL $major"
	printf '%s\n' "$dir"
}

# as_user CMD...: CMD as RESTORE_TEST_USER when running as root (PostgreSQL refuses root).
as_user() {
	if ((EUID == 0)); then
		(cd / && setpriv --reuid="$(id -u "$RESTORE_TEST_USER")" --regid="$(id -g "$RESTORE_TEST_USER")" --init-groups -- "$@")
	else
		(cd / && "$@")
	fi
}

# probe MANIFEST ROLES PSQL_ARGS...: checks the database PSQL_ARGS connect to against the
# manifest: every table with exactly its row count, the canary row, the migrations version
# and, when ROLES is "roles", the roles (else missing roles are only reported). Prints
# "tables=N rows=M"; dies naming each problem.
probe() {
	local manifest=$1 check_roles=$2 got problems n rows canary roles missing want have
	shift 2
	got=$(q "$@" -c "$COUNT_SQL") || die "could not count the rows of the restored database"
	problems=$(jq -r --argjson got "$got" '
		($got | map({key: .name, value: .rows}) | from_entries) as $g
		| .tables[] as $t
		| if ($g | has($t.name) | not) then "table \($t.name) is missing"
		  elif $g[$t.name] != $t.rows then "table \($t.name) has \($g[$t.name]) rows, the manifest says \($t.rows)"
		  else empty end' "$manifest")
	canary=$(jq -r '.canary.id // empty' "$manifest")
	if [[ -n $canary ]]; then
		# stderr stays out of the value (a warning is not an answer) and is quoted on failure.
		local err
		err=$(mktemp "${TMPDIR:-/tmp}/backup-canary.XXXXXX")
		n=$(q "$@" -v id="$canary" 2>"$err" <<SQL
SELECT count(*) FROM public.$CANARY_TABLE WHERE id = :'id';
SQL
		) || n="error: $(tail -n 1 "$err")"
		rm -f "$err"
		[[ $n == 1 ]] || problems+=${problems:+$'\n'}"the canary row $canary is missing from $CANARY_TABLE ($n)"
	fi
	roles=$(jq -c '.roles // []' "$manifest")
	missing=$(q "$@" -v roles="$roles" <<'SQL'
SELECT string_agg(r, ', ') FROM json_array_elements_text((:'roles')::json) AS r WHERE r NOT IN (SELECT rolname FROM pg_roles);
SQL
	) || die "could not list the roles of the restored cluster"
	if [[ -n $missing && $check_roles == roles ]]; then
		problems+=${problems:+$'\n'}"roles of the backup are missing: $missing"
	elif [[ -n $missing ]]; then
		log "warning: roles of the backup are missing on the server: $missing"
	fi
	want=$(jq -r '.migrations.version // empty' "$manifest")
	if [[ -n $want ]]; then
		have=$(q "$@" -c "$MIGRATIONS_SQL") || have="error"
		[[ $have == "$want" ]] || problems+=${problems:+$'\n'}"the migrations version is '$have', the manifest says '$want'"
	fi
	if [[ -n $problems ]]; then
		die "the restored database does not match the backup's manifest: $(head -n 10 <<<"$problems" | paste -sd ';' | sed 's/;/; /g')"
	fi
	n=$(jq '.tables | length' "$manifest")
	rows=$(jq --argjson got "$got" '[.tables[].name] as $names | [$got[] | select(.name as $x | $names | index($x)) | .rows] | add // 0' "$manifest")
	printf 'tables=%s rows=%s\n' "$n" "$rows"
}

# ---------------------------------------------------------------------------------------

do_backup() {
	need psql jq restic flock
	pg_env
	local pg_dump pg_dumpall start stage num server_version major dump_version canary snap tx_pid
	local tables migrations super dumpfile roles files size id encoding owner dbsize estimate dumpsum
	local started finished host dumpall_version restic_version
	pg_dump=$(pg_tool pg_dump)
	pg_dumpall=$(pg_tool pg_dumpall)
	backup_lock "$STORE"
	start=$(now)
	stage=$(stage_dir "$STORE")

	num=$(q -c 'SHOW server_version_num') ||
		die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as $PGUSER (database $PGDATABASE)"
	server_version=$(q -c 'SHOW server_version')
	server_version=${server_version%% *}
	major=$((num / 10000))
	dump_version=$(tool_version "$pg_dump")
	((${dump_version%%.*} >= major)) ||
		die "$pg_dump is version $dump_version, older than the server ($server_version): install the PostgreSQL $major client or set PG_BINDIR"

	canary="$(date -u +%Y%m%dT%H%M%SZ)-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
	q -v id="$canary" <<SQL || die "could not write the canary row into $CANARY_TABLE"
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.$CANARY_TABLE (id text PRIMARY KEY, taken_at timestamp NOT NULL DEFAULT now());
INSERT INTO public.$CANARY_TABLE (id, taken_at) VALUES (:'id', now());
SQL

	# A transaction kept open while the rows are counted and pg_dump runs: both see the
	# snapshot it exports, so the counts in the manifest are those of the dump.
	coproc SNAPSHOT_TX { q 2>&1; }
	tx_pid=$SNAPSHOT_TX_PID
	on_exit "kill $tx_pid 2>/dev/null"
	printf '%s\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;' 'SELECT pg_export_snapshot();' >&"${SNAPSHOT_TX[1]}"
	IFS= read -r -t 60 snap <&"${SNAPSHOT_TX[0]}" || die "could not open a snapshot transaction on PostgreSQL"
	[[ $snap =~ ^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$ ]] || die "pg_export_snapshot failed: $snap"
	# The rows are counted while pg_dump runs (both in the snapshot): the count is a pass over
	# every table, done by the server beside pg_dump's compression instead of before it.
	local counts count_pid
	counts=$(temp_dir)
	q >"$counts/tables.json" 2>"$counts/err" <<SQL &
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SET TRANSACTION SNAPSHOT '$snap';
$COUNT_SQL;
COMMIT;
SQL
	count_pid=$!
	on_exit "kill $count_pid 2>/dev/null"
	migrations=$(q <<SQL
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SET TRANSACTION SNAPSHOT '$snap';
$MIGRATIONS_SQL;
COMMIT;
SQL
	) || die "could not read schema_migrations of $PGDATABASE"
	encoding=$(q -c 'SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()')
	owner=$(q -c 'SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()')
	dumpfile="${PGDATABASE//[^A-Za-z0-9_.-]/_}.dump"
	# Room for the dump in the staging directory: the last backup's size, or on the first
	# backup half the database (pg_dump -Fc compresses), plus the margin.
	dbsize=$(q -c 'SELECT pg_database_size(current_database())')
	estimate=$(last_backup_size "$STORE")
	((estimate > 0)) || estimate=$((dbsize / 2))
	need_space "$stage" "$(with_margin "$estimate")" "the dump of $PGDATABASE (staging)"
	# A file, not a pipe: pg_dump writes the data offsets into a seekable archive's TOC, which
	# pg_restore --jobs needs.
	"$pg_dump" --format=custom --snapshot="$snap" --file="$stage/$dumpfile" 2>"$stage/.pg_dump.err" ||
		die "pg_dump of $PGDATABASE failed: $(tail -n 3 "$stage/.pg_dump.err" | paste -sd ' ')"
	cat "$stage/.pg_dump.err" >&2
	rm -f "$stage/.pg_dump.err"
	wait "$count_pid" || die "could not count the rows of the tables of $PGDATABASE: $(tail -n 2 "$counts/err" | paste -sd ' ')"
	tables=$(<"$counts/tables.json")
	[[ $tables == \[* ]] || die "counting the rows of $PGDATABASE returned no list: $tables"
	dumpsum=$(sha256sum <"$stage/$dumpfile" | cut -d' ' -f1)
	printf '%s\n' 'COMMIT;' '\q' >&"${SNAPSHOT_TX[1]}"
	wait "$tx_pid" || true

	super=$(q -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')
	local -a globals_opts=(--globals-only --database="$PGDATABASE" --file="$stage/globals.sql")
	if [[ $super != t ]]; then
		log "warning: $PGUSER is not a superuser: the roles are backed up without their passwords"
		globals_opts+=(--no-role-passwords)
	fi
	"$pg_dumpall" "${globals_opts[@]}" || die "pg_dumpall --globals-only failed"
	roles=$(sed -n 's/^CREATE ROLE \(.*\);$/\1/p' "$stage/globals.sql" |
		jq -R 'if startswith("\"") then .[1:-1] | gsub("\"\""; "\"") else . end' | jq -s .)

	files=$(jq -n --arg dump "$dumpfile" --arg sum "$dumpsum" --argjson size "$(stat -c %s "$stage/$dumpfile")" \
		--arg gsum "$(sha256sum <"$stage/globals.sql" | cut -d' ' -f1)" --argjson gsize "$(stat -c %s "$stage/globals.sql")" \
		'[{name: $dump, size: $size, sha256: $sum}, {name: "globals.sql", size: $gsize, sha256: $gsum}] | sort_by(.name)')
	size=$(jq '[.[].size] | add // 0' <<<"$files")
	started=$(iso_time "$start")
	finished=$(iso_time "$(now)")
	host=$(hostname)
	dumpall_version=$(tool_version "$pg_dumpall")
	restic_version=$(restic version | awk '{print $2}')
	jq -n --arg project "$BACKUP_PROJECT" --arg store "$STORE" --arg started "$started" \
		--arg finished "$finished" --arg host "$host" --arg pg_dump "$dump_version" \
		--arg pg_dumpall "$dumpall_version" --arg server "$server_version" \
		--arg restic "$restic_version" --arg major "$major" --argjson dbsize "$dbsize" \
		--arg database "$PGDATABASE" --arg owner "$owner" --arg encoding "$encoding" \
		--arg dump "$dumpfile" --argjson files "$files" --argjson size "$size" --argjson tables "$tables" \
		--arg canary_table "$CANARY_TABLE" --arg canary "$canary" --argjson roles "$roles" \
		--arg migrations "$migrations" '{
			format: 1, project: $project, store: $store, method: "pg_dump", kind: "logical",
			started_at: $started, finished_at: $finished, host: $host,
			tool_versions: {pg_dump: $pg_dump, pg_dumpall: $pg_dumpall, server: $server, restic: $restic},
			server_major: $major, database: $database, owner: $owner, encoding: $encoding,
			database_size_bytes: $dbsize,
			dump: $dump, globals: "globals.sql", files: $files, size_bytes: $size,
			tables: $tables, row_counts_exact: true,
			canary: {table: $canary_table, id: $canary}, roles: $roles,
			migrations: (if $migrations == "" then null else {table: "schema_migrations", version: $migrations} end)
		}' >"$stage/manifest.json"
	copy_restore_plan "$stage"

	# pg_dump -Fc compresses already: restic's compression would spend CPU for nothing.
	export RESTIC_COMPRESSION=off
	id=$(store_snapshot "$STORE" "$KIND" "$stage" "size=$size")
	metric_backup_success "$STORE" "$KIND" "$start" "$size"
	log "backup of $PGDATABASE stored: snapshot=${id:0:8} tables=$(jq length <<<"$tables") rows=$(jq '[.[].rows] | add // 0' <<<"$tables") size=$size took=$(($(now) - start))s"
}

# ---------------------------------------------------------------------------------------


do_restore_test() {
	need psql jq restic flock setpriv
	run_restore_test "$STORE" postgres-dump.sh
}

do_restore_test_probe() {
	local result_file=$1 start
	start=$(now)
	need psql jq restic flock setpriv
	: "${RESTORE_TEST_USER:=postgres}"
	if ((EUID == 0)); then
		id -u "$RESTORE_TEST_USER" >/dev/null 2>&1 ||
			die "RESTORE_TEST_USER $RESTORE_TEST_USER does not exist: the scratch cluster cannot run as root"
	fi
	local repo id work manifest major bindir cluster port db dump result pg_restore encoding snap size dbsize
	repo=$(restore_repo)
	snap=$(snapshots_json "$repo" "$STORE" "kind=$KIND" | jq -c 'last // empty')
	[[ -n $snap ]] || die "no $STORE $KIND backup in the $repo repository"
	id=$(jq -r .id <<<"$snap")
	# What is known so far goes with a failure too.
	printf 'snapshot=%s\n' "${id:0:8}" >"$result_file"
	[[ $repo != offsite ]] || check_offsite_current "$STORE" "kind=$KIND"
	work=$(temp_dir)
	size=$(jq -r '[.tags[]? | select(startswith("size=")) | ltrimstr("size=")] | first // "0"' <<<"$snap")
	need_space "$work" "$(with_margin "$size")" "fetching the backup for the restore test"
	fetch_snapshot "$repo" "$id" "$work/backup" "$(jq -r '.paths[0]' <<<"$snap")"
	manifest=$work/backup/manifest.json
	verify_files "$work/backup" "$manifest"
	# The scratch cluster holds the database (older manifests: about 4 times the dump).
	dbsize=$(jq -r '.database_size_bytes // ((.size_bytes // 0) * 4)' "$manifest")
	need_space "$work" "$(with_margin "$dbsize")" "the scratch PostgreSQL cluster of the restore test"
	major=$(jq -r '.server_major // empty' "$manifest")
	[[ -n $major ]] || die "the manifest of snapshot ${id:0:8} has no server_major"
	bindir=$(scratch_bindir "$major")
	pg_restore=$bindir/pg_restore
	[[ -x $pg_restore ]] || pg_restore=$(pg_tool pg_restore)

	# The scratch cluster: its own directory, owned by the user it runs as, reachable only
	# through a Unix socket in that directory.
	cluster=$(temp_dir)
	((EUID != 0)) || chown "$RESTORE_TEST_USER:" "$cluster"
	chmod 0700 "$cluster"
	port=$(free_port)
	((${#cluster} < 90)) || die "the scratch directory $cluster is too long for a Unix socket path: set TMPDIR to a shorter one"
	as_user "$bindir/initdb" -D "$cluster/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$work/initdb.log" 2>&1 || die "initdb of the scratch cluster failed: $(tail -n 5 "$work/initdb.log")"
	as_user "$bindir/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 120 -s \
		-o "-c port=$port -c listen_addresses='' -c unix_socket_directories='$cluster' -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
		start || die "the scratch PostgreSQL $major did not start: $(tail -n 5 "$cluster/server.log" 2>/dev/null)"
	on_exit "as_user '$bindir/pg_ctl' -D '$cluster/data' -m immediate -s stop"
	local -a conn=(-h "$cluster" -p "$port" -U postgres)

	psql -X -q "${conn[@]}" -d postgres -f "$work/backup/$(jq -r '.globals // "globals.sql"' "$manifest")" \
		>/dev/null 2>"$work/globals.err" || die "could not apply the roles (globals.sql) to the scratch cluster: $(tail -n 3 "$work/globals.err")"
	db=$(jq -r .database "$manifest")
	encoding=$(jq -r '.encoding // "UTF8"' "$manifest")
	if [[ $db != postgres ]]; then
		q "${conn[@]}" -d postgres -v db="$db" -v enc="$encoding" <<'SQL' || die "could not create the database $db in the scratch cluster"
CREATE DATABASE :"db" TEMPLATE template0 ENCODING :'enc' LC_COLLATE 'C' LC_CTYPE 'C';
SQL
	fi
	dump=$(jq -r '.dump // empty' "$manifest")
	[[ -n $dump && -f $work/backup/$dump ]] || die "the backup has no dump file ($dump)"
	"$pg_restore" "${conn[@]}" -d "$db" --exit-on-error --jobs=2 "$work/backup/$dump" 2>"$work/restore.err" ||
		die "pg_restore of $dump into the scratch cluster failed: $(tail -n 5 "$work/restore.err" | paste -sd ' ')"

	result=$(probe "$manifest" roles "${conn[@]}" -d "$db")
	printf '%s\n' "snapshot=${id:0:8} $result" >"$result_file"
	log "restore test passed: snapshot=${id:0:8} from the $repo repository, PostgreSQL $major, $result, took $(($(now) - start))s"
}

# ---------------------------------------------------------------------------------------

do_restore() {
	local target="" snapshot="" from="" force=0 globals=auto
	while (($# > 0)); do
		case $1 in
		--target-db) target=${2:?--target-db needs a database name}; shift ;;
		--target-db=*) target=${1#*=} ;;
		--snapshot) snapshot=${2:?--snapshot needs a snapshot id}; shift ;;
		--snapshot=*) snapshot=${1#*=} ;;
		--from) from=${2:?--from needs primary or offsite}; shift ;;
		--from=*) from=${1#*=} ;;
		--force) force=1 ;;
		--globals) globals=yes ;;
		--no-globals) globals=no ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "restore: unknown option $1" ;;
		esac
		shift
	done
	need psql pg_restore jq restic flock
	pg_env
	target=${target:-$PGDATABASE}
	local repo work manifest maint d exists relations missing dump owner result pg_restore
	pg_restore=$(pg_tool pg_restore)
	[[ -n $from ]] || from=$(restore_repo)
	case $from in
	primary | offsite) repo=$from ;;
	*) die "--from: $from is not primary or offsite" ;;
	esac
	backup_lock "$STORE"

	# The target first: refusing to overwrite it needs no download.
	maint=
	for d in postgres template1 "$PGDATABASE"; do
		if q -d "$d" -c 'SELECT 1' >/dev/null 2>&1; then
			maint=$d
			break
		fi
	done
	[[ -n $maint ]] || die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as $PGUSER"
	exists=$(q -d "$maint" -v db="$target" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'db';
SQL
	)
	local -a opts=(--exit-on-error --single-transaction)
	if [[ $exists != 0 ]]; then
		relations=$(q -d "$target" -c "$RELATIONS_SQL")
		if ((relations > 0)); then
			((force)) || die "the database $target is not empty ($relations tables, views or sequences): restore into a new one with --target-db NAME, or pass --force to drop and recreate the backup's objects in it"
			log "the database $target is not empty: --force, replacing the backup's objects (pg_restore --clean --if-exists)"
			opts+=(--clean --if-exists)
		fi
	fi

	if [[ -z $snapshot ]]; then
		snapshot=$(latest_snapshot "$repo" "$STORE" "kind=$KIND")
		[[ -n $snapshot ]] || die "no $STORE $KIND backup in the $repo repository"
	fi
	work=$(temp_dir)
	log "fetching snapshot ${snapshot:0:8} from the $repo repository"
	fetch_snapshot "$repo" "$snapshot" "$work/backup"
	manifest=$work/backup/manifest.json
	verify_files "$work/backup" "$manifest"
	[[ $(jq -r .store "$manifest") == "$STORE" ]] || die "snapshot ${snapshot:0:8} is not a $STORE backup"

	missing=$(q -d "$maint" -v roles="$(jq -c '.roles // []' "$manifest")" <<'SQL'
SELECT string_agg(r, ', ') FROM json_array_elements_text((:'roles')::json) AS r WHERE r NOT IN (SELECT rolname FROM pg_roles);
SQL
	)
	if [[ $globals == yes || ($globals == auto && -n $missing) ]]; then
		log "applying the roles of the backup (globals.sql)${missing:+; missing: $missing}"
		psql -X -q -d "$maint" -f "$work/backup/$(jq -r '.globals // "globals.sql"' "$manifest")" >/dev/null 2>"$work/globals.err" || true
		grep -v 'already exists' "$work/globals.err" >&2 || true
	elif [[ -n $missing ]]; then
		log "warning: roles of the backup are missing and --no-globals was given: $missing"
	fi

	if [[ $exists == 0 ]]; then
		owner=$(jq -r '.owner // empty' "$manifest")
		[[ -n $owner ]] && [[ $(q -d "$maint" -v r="$owner" <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'r';") == 1 ]] || owner=$PGUSER
		log "creating the database $target (owner $owner)"
		q -d "$maint" -v db="$target" -v owner="$owner" <<'SQL' || die "could not create the database $target"
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;
SQL
	fi

	dump=$(jq -r '.dump' "$manifest")
	log "restoring $dump (taken $(jq -r .finished_at "$manifest")) into the database $target"
	"$pg_restore" -d "$target" "${opts[@]}" "$work/backup/$dump" ||
		die "pg_restore into $target failed (nothing was changed: it runs in one transaction)"
	q -d "$target" -c 'ANALYZE' || log "warning: ANALYZE of $target failed"
	result=$(probe "$manifest" no-roles -d "$target")
	log "restored snapshot ${snapshot:0:8} into the database $target: $result"
}

# ---------------------------------------------------------------------------------------


do_prune() {
	need restic jq flock
	backup_lock "$STORE"
	restic_prune "$STORE" "kind=$KIND"
}

case ${1:-} in
backup) do_backup ;;
restore-test) do_restore_test ;;
restore-test-probe) shift; do_restore_test_probe "$@" ;;
restore) shift; do_restore "$@" ;;
list) list_snapshots "$STORE" "kind=$KIND" ;;
prune) do_prune ;;
-h | --help | help) usage ;;
*) usage >&2; die "unknown action '${1:-}'" ;;
esac
