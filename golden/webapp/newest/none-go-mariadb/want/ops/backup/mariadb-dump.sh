#!/usr/bin/env bash
# MariaDB, logical: mariadb-dump of MARIADB_DATABASE (one consistent InnoDB snapshot with
# routines, triggers and events) plus the server's accounts and grants, stored with restic
# (encrypted, off-site too). The dump streams straight into restic, into the primary and the
# off-site repository at once (a dump snapshot in each, linked to the backup's manifest
# snapshot by a set= tag; older backups hold the dump beside the manifest and restore as
# before). The row counts of the manifest are read from the dump itself as it streams (with
# its checksum), so they are exactly what a restore must hold, even with writes during the
# backup. A restore creates the accounts and
# roles (accounts.sql) before the dump, whose views, routines and triggers name them as
# DEFINER, and grants their privileges (grants.sql) after it, when the tables, columns and
# routines they name exist; grants on objects of other databases (grants-other.sql) are only
# applied by a restore onto a server that has them.
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
# The backup account needs SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, EXECUTE, RELOAD and
# PROCESS on *.* (SELECT on mysql.* for the accounts; EXECUTE because mariadb-dump reads the
# columns of a view, which calls the view's functions) and INSERT, CREATE, DELETE on the
# database (the canary row); root has them:
#   GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, EXECUTE, RELOAD, PROCESS ON *.* TO 'backup'@'%';
#   GRANT INSERT, CREATE, DELETE ON `app`.* TO 'backup'@'%';
# A restore needs an administrator (root).
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

# dump_users ACCOUNTS GRANTS OTHER: SQL that recreates the project's accounts and roles into
# ACCOUNTS (CREATE ... IF NOT EXISTS: existing accounts keep their passwords), their grants
# and default roles into GRANTS, except grants on tables, columns and routines of other
# databases than MARIADB_DATABASE, which go into OTHER (this backup does not hold those
# objects: a restore loads them where the objects exist, the restore test leaves them out),
# and the manifest's lists of them as JSON {users: [...], roles: [...]} on stdout. Two files, because they are loaded at two points of a restore: the
# accounts before the dump (they are the DEFINERs of its views, routines and triggers, which
# fail to run with a missing definer), the grants after it (a grant on a table, a column or a
# routine needs the object). The backup user needs SELECT on mysql.* for this.
dump_users() {
	local accounts=$1 grants_file=$2 other_file=$3 list user host acct create grants line default ok roles=() users=() sql gsql osql re gdb still
	list=$(qq "SELECT is_role, user, host FROM mysql.user WHERE $(system_user_filter) ORDER BY is_role DESC, user, host")
	sql='-- Accounts and roles, written by ops/backup/mariadb-dump.sh: loaded before the dump'$'\n'
	gsql='-- Grants and default roles, written by ops/backup/mariadb-dump.sh: loaded after the dump'$'\n'
	osql='-- Grants on objects of other databases, written by ops/backup/mariadb-dump.sh'$'\n'
	# A grant on one table, column or routine: ON [PROCEDURE|FUNCTION|PACKAGE [BODY]] `db`.`name`
	# shellcheck disable=SC2016 # a regular expression, not an expansion
	re=' ON (PROCEDURE |FUNCTION |PACKAGE BODY |PACKAGE )?`(([^`]|``)*)`\.`([^`]|``)*` TO '
	while IFS=$'\t' read -r line user host; do
		[[ -n $user ]] || continue
		if [[ $line == Y ]]; then
			acct=$(ident "$user")
		else
			acct="$(ident "$user")@$(ident "$host")"
		fi
		# An account dropped since the list was read (by the application, say) is left out.
		ok=1 create='' grants=''
		if [[ $line != Y ]]; then create=$(q "SHOW CREATE USER $acct" 2>&1) || ok=0; fi
		if ((ok)); then grants=$(q "SHOW GRANTS FOR $acct" 2>&1) || ok=0; fi
		if ((!ok)); then
			# Into a variable first: a failing query inside [[ ]] would not stop the script.
			still=$(qq "SELECT 1 FROM mysql.user WHERE user = $(lit "$user") AND host = $(lit "$host")")
			if [[ -z $still ]]; then
				log "warning: account $user@$host was dropped during the backup; left out"
				continue
			fi
			die "query failed on $(where): SHOW CREATE USER / SHOW GRANTS FOR $acct: $create $grants"
		fi
		if [[ $line == Y ]]; then
			roles+=("$user")
			sql+="CREATE ROLE IF NOT EXISTS $acct;"$'\n'
		else
			users+=("$user@$host")
			sql+="CREATE USER IF NOT EXISTS ${create#CREATE USER };"$'\n'
		fi
		while IFS= read -r line; do
			[[ -n $line ]] || continue
			# The global grant repeats the authentication (IDENTIFIED ...) and the limits that
			# CREATE USER holds: cut here, so that a restore never resets a password.
			if [[ $line == 'GRANT '*' ON *.* TO '"$acct"' '* ]]; then
				local cut="${line%%" TO $acct "*} TO $acct"
				[[ $line != *' WITH GRANT OPTION'* ]] || cut+=' WITH GRANT OPTION'
				line=$cut
			fi
			if [[ $line =~ $re ]]; then
				gdb=${BASH_REMATCH[2]//\`\`/\`}
				if [[ $gdb != "$MARIADB_DATABASE" ]]; then
					osql+="$line;"$'\n'
					continue
				fi
			fi
			gsql+="$line;"$'\n'
		done <<<"$grants"
		if [[ $acct == *@* ]]; then
			default=$(qq "SELECT default_role FROM mysql.user WHERE user = $(lit "$user") AND host = $(lit "$host")")
			[[ -z $default ]] || gsql+="SET DEFAULT ROLE $(ident "$default") FOR $acct;"$'\n'
		fi
	done <<<"$list"
	printf '%s' "$sql" >"$accounts"
	printf '%s' "$gsql" >"$grants_file"
	printf '%s' "$osql" >"$other_file"
	jq -n '{users: $ARGS.positional[0], roles: $ARGS.positional[1]}' --jsonargs \
		"$(printf '%s\n' "${users[@]}" | jq -R . | jq -s -c 'map(select(. != ""))')" \
		"$(printf '%s\n' "${roles[@]}" | jq -R . | jq -s -c 'map(select(. != ""))')"
}

# COUNT_ROWS: a perl program (perl-base is in every Debian and Ubuntu image) that passes a
# dump through unchanged, to stdout and to every further file (a FIFO) named after its first
# argument, and writes "table<TAB>rows" for every table it creates to the file named by its
# first argument, then "complete" when the dump ends with mariadb-dump's "-- Dump completed"
# line. It writes blocks of 1 MiB into pipes of 1 MiB: 4 KiB writes woke each reader for
# every 4 KiB, which cost the readers (restic) a third more CPU. Rows are the tuples of the
# INSERTs between LOCK TABLES `t` WRITE and UNLOCK
# TABLES (--add-locks; stored programs cannot hold LOCK TABLES, so an INSERT in a routine body
# is never counted): the "),(" between tuples outside string literals and quoted names, plus a
# line that ends in "),", since mariadb-dump escapes newlines in strings (no string spans
# lines) and writes one tuple per line. A line without "),(" anywhere, the usual case, is
# counted by its last characters alone; only the others are scanned string by string (the
# scan of every line cost twice the dump's own time). It runs beside the dump in the same
# pipe: the counts cost no second pass, and are exactly what the stored dump holds, even with
# writes during the backup. (perl counts about three times as fast as gawk and mawk here.)
# shellcheck disable=SC2016 # perl program, not shell
COUNT_ROWS='
my ($out, @more) = @ARGV; my (%rows, @order); my ($data, $ins, $last, $buf) = ("", 0, "", "");
my @outs = (\*STDOUT);
for my $p (@more) { open(my $f, ">", $p) or die "$p: $!\n"; push @outs, $f }
# F_SETPIPE_SZ (Linux); where refused, the pipes keep their size.
fcntl($_, 1031, 1048576) for \*STDIN, @outs;
sub flush_out {
	for my $f (@outs) {
		my $off = 0;
		while ($off < length $buf) {
			my $n = syswrite($f, $buf, length($buf) - $off, $off);
			die "writing the dump: $!\n" unless defined $n;
			$off += $n;
		}
	}
	$buf = "";
}
my $sep = qr/\G[^\x27)`]*+(?:(?:\x27[^\x27\\]*+(?:\\.[^\x27\\]*+)*+\x27|`[^`]*+`|\)(?![ \t]*,[ \t]*\())[^\x27)`]*+)*+\)[ \t]*,[ \t]*\(/s;
sub unq { my $t = shift; $t =~ s/``/`/g; return $t }
sub tuples {
	my $n = 0;
	$n++ while $_[0] =~ /$sep/g;
	$n++ if $_[0] =~ /\)[ \t]*,[ \t]*\n?\z/;
	$ins = 0 if $_[0] =~ /;[ \t]*\n?\z/;
	return $n;
}
while (my $l = <STDIN>) {
	$buf .= $l;
	flush_out() if length($buf) >= 1048576;
	if ($ins) {
		if (index($l, "),(") < 0) {
			my $e = substr($l, -3);
			if ($e eq "),\n") { $rows{$data}++; next }
			if ($e eq ");\n") { $ins = 0; next }
		}
		$rows{$data} += tuples($l);
		next;
	}
	$last = $l;
	if ($l =~ /^CREATE TABLE `((?:[^`]|``)*)`/) { my $t = unq($1); if (!exists $rows{$t}) { $rows{$t} = 0; push @order, $t } next }
	if ($l =~ /^LOCK TABLES `((?:[^`]|``)*)`/) { $data = unq($1); next }
	if ($l =~ /^UNLOCK TABLES;/) { $data = ""; next }
	if ($data ne "" && $l =~ /^(INSERT INTO `(?:[^`]|``)*`)/) { $ins = 1; $rows{$data} += 1 + tuples(substr($l, length($1))) }
}
flush_out();
close($_) or die "writing the dump: $!\n" for @outs;
open(my $fh, ">", $out) or die "$out: $!\n";
printf $fh "%s\t%d\n", $_, $rows{$_} for @order;
print $fh "complete\n" if $last =~ /^-- Dump completed/;
close($fh) or die "$out: $!\n";
'

# small_files_json DIR: the manifest's list ({name, size, sha256}) of the files of DIR.
small_files_json() {
	(
		cd "$1"
		find . -type f ! -name manifest.json ! -name restore-plan.md -printf '%P\0' | xargs -0r sha256sum -- |
			sed 's/^\([0-9a-f]*\)  /\1\t/'
	) | while IFS=$'\t' read -r sum name; do
		printf '%s\t%s\t%s\n' "$name" "$(stat -c %s "$1/$name")" "$sum"
	done | jq -R 'split("\t") | {name: .[0], size: (.[1] | tonumber), sha256: .[2]}' | jq -s -c .
}

# sha256_stream: the sha256 of stdin, first on its output line; openssl's is twice as fast as
# sha256sum (it uses the CPU's SHA instructions), sha256sum where openssl is missing.
sha256_stream() {
	if command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r
	else
		sha256sum
	fi
}

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
	need mariadb mariadb-dump restic jq sha256sum perl
	local ext
	case $MARIADB_DUMP_COMPRESS in
	none) ext='' ;;
	zstd) need zstd; ext=.zst ;;
	gzip) need gzip; ext=.gz ;;
	*) die "MARIADB_DUMP_COMPRESS: $MARIADB_DUMP_COMPRESS is not one of none, zstd, gzip" ;;
	esac
	backup_lock "$STORE"
	local start version db stage canary out schema dumpfile tables accounts objects migrations='null' size id work sum has_migrations mversion
	local -a st
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
	# The dump is streamed, not staged: one pass with one transaction for every InnoDB table
	# (no locks on them) counts the rows, takes the checksum and feeds restic backup --stdin
	# of the primary and, at the same time, of the off-site repository, so that the dump is
	# neither written to disk and read back nor copied between the repositories afterwards.
	# The two dump snapshots are tagged data-of=mariadb and set=CANARY; the backup's manifest
	# snapshot (store=mariadb, kind=logical), stored when everything else succeeded, carries
	# the same set= tag and names it in dump.snapshot_tags. A failed backup leaves at most dump
	# snapshots that no manifest names: restores never see them and prune removes them.
	local set="set=$canary" estimate sum_pid off_pid='' pbytes obytes
	estimate=$(last_backup_size "$STORE")
	((estimate > 0)) || estimate=$(qq "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = $(lit "$db")")
	stream_ready primary "$estimate"
	offsite_configured && stream_ready offsite "$estimate"
	# The errors go to the work directory, so that a failed repository cannot hide them.
	work=$(temp_dir)
	local -a fifos=("$work/sum.fifo") stdin=(backup --json --host "$BACKUP_PROJECT" --tag "data-of=$STORE" --tag "$set"
		--stdin --stdin-filename "$dumpfile")
	mkfifo "$work/sum.fifo"
	sha256_stream <"$work/sum.fifo" >"$work/sum" 2>"$work/sum.err" &
	sum_pid=$!
	on_exit "kill $sum_pid 2>/dev/null"
	if offsite_configured; then
		fifos+=("$work/offsite.fifo")
		mkfifo "$work/offsite.fifo"
		restic_on offsite "${stdin[@]}" <"$work/offsite.fifo" >"$work/offsite.json" &
		off_pid=$!
		on_exit "kill $off_pid 2>/dev/null"
		log "streaming the dump into the primary and the off-site repository"
	fi
	# st: the status of the dump, the count, the compressor, tee and restic. An uncompressed
	# dump is passed on by the count itself: without cat and tee, two hops of the stream
	# through pipes that cost an eighth of the backup's CPU.
	local -a dump=(mariadb-dump --defaults-file="$MY_CNF" --single-transaction --quick --add-locks --routines
		--triggers --events --hex-blob --default-character-set=utf8mb4 --skip-dump-date "$db")
	if [[ $MARIADB_DUMP_COMPRESS == none ]]; then
		: >"$work/compress.err"
		: >"$work/tee.err"
		if "${dump[@]}" 2>"$work/dump.err" |
			LC_ALL=C perl -e "$COUNT_ROWS" "$work/counts" "${fifos[@]}" 2>"$work/count.err" |
			restic_on primary "${stdin[@]}" >"$work/primary.json"; then
			st=(0 0 0 0 0)
		else
			st=("${PIPESTATUS[@]}")
			st=("${st[0]}" "${st[1]}" 0 0 "${st[2]}")
		fi
	elif "${dump[@]}" 2>"$work/dump.err" |
		LC_ALL=C perl -e "$COUNT_ROWS" "$work/counts" 2>"$work/count.err" |
		compressor "$MARIADB_DUMP_COMPRESS" 2>"$work/compress.err" |
		tee "${fifos[@]}" 2>"$work/tee.err" | restic_on primary "${stdin[@]}" >"$work/primary.json"; then
		st=(0 0 0 0 0)
	else
		st=("${PIPESTATUS[@]}")
	fi
	# A reader still waiting for its writer (perl or tee never ran) is released: opening a FIFO
	# read-write never blocks and counts as the writer, which then closes.
	local f rc_sum=0 rc_off=0
	for f in "${fifos[@]}"; do : <>"$f"; done
	wait "$sum_pid" || rc_sum=$?
	[[ -z $off_pid ]] || wait "$off_pid" || rc_off=$?
	# A failed reader first: the writers before it then die of SIGPIPE, which is not the cause.
	((st[4] == 0)) || die "storing the dump in the primary restic repository failed: $(last_error)"
	((rc_off == 0)) || die "storing the dump in the off-site restic repository failed: $(last_error)"
	if ((st[0] != 0)); then
		out=$(grep -v '^Warning' "$work/dump.err" | tail -n 3 | tr '\n' ' ')
		[[ $out != *'(1370)'* ]] || out+="(the backup account needs EXECUTE, see the header of ops/backup/mariadb-dump.sh)"
		die "mariadb-dump of $db failed (status ${st[0]}): ${out:-no message}"
	fi
	((st[1] == 0 && st[2] == 0 && st[3] == 0 && rc_sum == 0)) ||
		die "the dump of $db could not be counted, compressed, passed on or checksummed (status ${st[*]} $rc_sum): $(cat "$work/count.err" "$work/compress.err" "$work/tee.err" "$work/sum.err" | tr '\n' ' ')"
	grep -qx complete "$work/counts" ||
		die "the dump of $db is incomplete: it does not end with mariadb-dump's \"-- Dump completed\" line"
	sum=$(cut -d ' ' -f 1 "$work/sum")
	# Both repositories got the whole stream.
	pbytes=$(jq -r 'select(.message_type == "summary") | .total_bytes_processed' "$work/primary.json")
	[[ $pbytes =~ ^[0-9]+$ ]] || die "restic backup --stdin of the dump did not report a summary in the primary repository"
	if [[ -n $off_pid ]]; then
		obytes=$(jq -r 'select(.message_type == "summary") | .total_bytes_processed' "$work/offsite.json")
		[[ $obytes == "$pbytes" ]] ||
			die "the off-site repository stored ${obytes:-no} bytes of the dump, the primary $pbytes"
	fi
	tables=$(grep -v -x complete "$work/counts" | jq -R 'split("\t") | {name: .[0], rows: (.[1] | tonumber)}' | jq -s -c .)
	[[ $tables != '[]' ]] || log "warning: the dump of $db holds no tables"
	# The small files are written in the work directory and then copied to the staging
	# directory in one step, whose failure (a full disk) says why.
	local files=$work/files
	mkdir "$files"
	accounts=$(dump_users "$files/accounts.sql" "$files/grants.sql" "$files/grants-other.sql")
	objects=$(qq "SELECT
		(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$db")),
		(SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$db"))" |
		jq -R 'split("\t") | map(tonumber) | {views: .[0], triggers: .[1], routines: .[2], events: .[3]}')
	# Each query into a variable first: a failure inside [[ ]] or a jq argument would be lost.
	has_migrations=$(qq "SELECT 1 FROM information_schema.tables WHERE table_schema = $(lit "$db") AND table_name = $(lit "$MIGRATIONS_TABLE")")
	if [[ -n $has_migrations ]]; then
		mversion=$(qq "SELECT COALESCE(MAX(version), '') FROM $(ident "$MIGRATIONS_TABLE")" "$db")
		migrations=$(jq -n --arg t "$MIGRATIONS_TABLE" --arg v "$mversion" '{table: $t, version: $v}')
	fi

	jq -n --arg project "$BACKUP_PROJECT" --arg started "$(iso_time "$start")" \
		--arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg host "$(if [[ -n $MARIADB_SOCKET ]]; then echo "$MARIADB_SOCKET"; else echo "$MARIADB_HOST:$MARIADB_PORT"; fi)" \
		--arg dumpv "$(mariadb-dump --version | sed -n 's/.*Distrib \([^ ,]*\).*/\1/p')" \
		--arg server "$version" --arg major "$(major "$version")" --arg db "$db" \
		--arg charset "${schema%%$'\t'*}" --arg collation "${schema#*$'\t'}" \
		--arg dumpfile "$dumpfile" --arg compression "$MARIADB_DUMP_COMPRESS" \
		--arg canary "$canary" --arg ctable "$CANARY_TABLE" --arg set "$set" \
		--argjson tables "$tables" \
		--argjson accounts "$accounts" --argjson objects "$objects" --argjson migrations "$migrations" \
		--argjson files "$(small_files_json "$files")" --arg sum "$sum" --argjson dsize "$pbytes" \
		'($files + [{name: $dumpfile, size: $dsize, sha256: $sum}] | sort_by(.name)) as $files
		| {format: 2, project: $project, store: "mariadb", method: "mariadb-dump", kind: "logical",
		  started_at: $started, finished_at: $finished, host: $host,
		  tool_versions: {"mariadb-dump": $dumpv, server: $server}, server_major: $major,
		  database: $db, charset: $charset, collation: $collation,
		  dump: {file: $dumpfile, compression: $compression, snapshot_tags: ["data-of=mariadb", $set]},
		  accounts_file: "accounts.sql", grants_file: "grants.sql", other_grants_file: "grants-other.sql",
		  files: $files, size_bytes: ([$files[].size] | add // 0),
		  tables: $tables, row_counts_exact: true, rows_total: ([$tables[].rows] | add // 0),
		  objects: $objects, canary: {table: $ctable, id: $canary},
		  users: $accounts.users, roles: $accounts.roles, migrations: $migrations}' >"$files/manifest.json"
	copy_restore_plan "$files"
	cp -p "$files"/* "$stage/" 2>"$work/cp.err" ||
		die "writing the backup's files into the staging directory $stage failed: $(sed 's/^cp: //' "$work/cp.err" | head -n 1) ($(human "$(free_bytes "$stage")") free there; BACKUP_STAGING_DIR)"
	size=$((pbytes + $(files_size "$stage")))
	id=$(store_snapshot "$STORE" "$KIND" "$stage" "size=$size" "$set")
	metric_backup_success "$STORE" "$KIND" "$start" "$size"
	log "mariadb backup ${id:0:8}: database $db, $(jq '.tables | length' "$stage/manifest.json") tables, $(jq '.rows_total' "$stage/manifest.json") rows, $(jq '.users | length' "$stage/manifest.json") accounts, $size bytes, $(($(now) - start))s"
}

# ---------------------------------------------------------------------------------------
# Scratch server and probes

# load_accounts before|after|other DIR MANIFEST CLIENT_ARGS...: loads the accounts and roles
# of the backup in DIR (before: ahead of the dump, whose objects name them as DEFINER), their
# grants and default roles (after: a grant on a table, column or routine needs the object),
# or their grants on objects of other databases (other: each statement on its own, failures
# are warnings, since those objects are not part of this backup).
# A backup of webapp 1.3.0 and older has one users.sql with both: it is loaded after the
# dump (a missing DEFINER only draws a note when an object is created).
load_accounts() {
	local phase=$1 dir=$2 manifest=$3 file what
	shift 3
	if [[ $phase == other ]]; then
		file=$(jq -r '.other_grants_file // empty' "$manifest")
		[[ -n $file && $(grep -vc '^--' "$dir/$file") -gt 0 ]] || return 0
		local out
		out=$(mariadb "$@" --force <"$dir/$file" 2>&1) ||
			log "warning: $(grep -c '^ERROR ' <<<"$out") grant(s) on objects of other databases ($file) could not be restored: $(sql_failure "$out")"
		return 0
	fi
	if [[ -n $(jq -r '.grants_file // empty' "$manifest") ]]; then
		if [[ $phase == before ]]; then
			file=$(jq -r '.accounts_file' "$manifest") what='creating the accounts and roles'
		else
			file=$(jq -r '.grants_file' "$manifest") what='granting the privileges and default roles'
		fi
	else
		[[ $phase == after ]] || return 0
		file=$(jq -r '.users_file // "users.sql"' "$manifest") what='creating the accounts and grants'
	fi
	load_sql "$what of the backup ($file)" "$@" <"$dir/$file"
}

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
	fetch_stream "$repo" "$dir"
	manifest=$dir/manifest.json
	verify_files "$dir" "$manifest"
	major=$(jq -r '.server_major' "$manifest")
	mine=$(major "$("$(prog mariadbd)" --version | sed -n 's/.*Ver \([0-9][^ ]*\).*/\1/p')")
	[[ $major == "$mine" ]] || die "the backup is from MariaDB $major, the scratch mariadbd here is $mine (the same major version is needed; set MARIADB_BINDIR)"

	local -a install=(--no-defaults --datadir="$work/data" --auth-root-authentication-method=normal --skip-test-db)
	((EUID != 0)) || install+=(--user=root)
	out=$(mariadb-install-db "${install[@]}" 2>&1) || die "mariadb-install-db failed: $(tail -n 5 <<<"$out" | tr '\n' ' ')"
	scratch_start "$work" "$work/data" --no-defaults
	local -a scratch=(--no-defaults --socket="$SCRATCH_SOCK" -uroot)
	load_accounts before "$dir" "$manifest" "${scratch[@]}"
	db=$(jq -r '.database' "$manifest")
	sq "CREATE DATABASE $(ident "$db") CHARACTER SET $(jq -r '.charset' "$manifest") COLLATE $(jq -r '.collation' "$manifest")"
	if ! out=$(decompressor "$(jq -r '.dump.compression' "$manifest")" <"$dir/$(jq -r '.dump.file' "$manifest")" |
		mariadb "${scratch[@]}" --database="$db" 2>&1); then
		die "loading the dump failed: $(sql_failure "$out")"
	fi
	load_accounts after "$dir" "$manifest" "${scratch[@]}"
	out=$(probe "$db" "$manifest" sq)
	printf 'snapshot=%s %s\n' "${id:0:8}" "$out" >"$result"
}

# ---------------------------------------------------------------------------------------
# restore: the disaster path

# rename_db FROM TO: a filter for a dump of database FROM loaded into database TO. The server
# writes views with their columns qualified by the database (`app`.`orders`.`id`), which fails
# ("Unknown column") in a database of another name: outside the data (the INSERT lines) the
# qualifier `FROM`. becomes `TO`.
rename_db() {
	if [[ $1 == "$2" ]]; then
		cat
		return
	fi
	# shellcheck disable=SC2016 # perl program, not shell
	RENAME_FROM="$(ident "$1")." RENAME_TO="$(ident "$2")." LC_ALL=C perl -pe '
		BEGIN { $f = quotemeta($ENV{RENAME_FROM}); $t = $ENV{RENAME_TO} }
		s/$f/$t/g unless /^INSERT INTO `/'
}

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
	fetch_stream "$repo" "$dir"
	manifest=$dir/manifest.json
	verify_files "$dir" "$manifest"
	[[ -n $with_users ]] || with_users=$([[ $target == "$(jq -r '.database' "$manifest")" ]] && echo 1 || echo 0)
	if ((objects > 0)); then
		log "--force: dropping database $target ($objects objects)"
		q "DROP DATABASE $(ident "$target")"
	fi
	q "CREATE DATABASE IF NOT EXISTS $(ident "$target") CHARACTER SET $(jq -r '.charset' "$manifest") COLLATE $(jq -r '.collation' "$manifest")"
	if ((with_users)); then
		load_accounts before "$dir" "$manifest" --defaults-file="$MY_CNF"
	fi
	log "loading snapshot ${snapshot:0:8} ($(jq -r '.finished_at' "$manifest"), database $(jq -r '.database' "$manifest")) into $target"
	if ! out=$(decompressor "$(jq -r '.dump.compression' "$manifest")" <"$dir/$(jq -r '.dump.file' "$manifest")" |
		rename_db "$(jq -r '.database' "$manifest")" "$target" |
		mariadb --defaults-file="$MY_CNF" --database="$target" 2>&1); then
		die "loading the dump into $target failed: $(sql_failure "$out")"
	fi
	local grants_failed=''
	if ((with_users)); then
		# Every grant is tried (--force), so that one refused grant (a role that exists already
		# and that this account may not hand out) does not leave the others out; the failures
		# are reported at the end.
		if [[ -n $(jq -r '.grants_file // empty' "$manifest") ]]; then
			if ! out=$(mariadb --defaults-file="$MY_CNF" --force <"$dir/$(jq -r '.grants_file' "$manifest")" 2>&1); then
				grants_failed="$(grep -c '^ERROR ' <<<"$out") grant(s) of the backup ($(jq -r '.grants_file' "$manifest")) failed, the first: $(sql_failure "$out")"
				log "warning: $grants_failed"
			fi
		else
			load_accounts after "$dir" "$manifest" --defaults-file="$MY_CNF"
		fi
		load_accounts other "$dir" "$manifest" --defaults-file="$MY_CNF"
		log "accounts of the backup present: $(jq -r '.users | join(" ")' "$manifest")"
	fi
	out=$(probe "$target" "$manifest" q)
	log "restored snapshot ${snapshot:0:8} into $target on $(where): $out"
	[[ -z $grants_failed ]] || die "the data is restored, but $grants_failed; apply them as root (or an account with ADMIN OPTION on the roles)"
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
