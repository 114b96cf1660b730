#!/usr/bin/env bash
# The database's least-privilege accounts, created or repaired on every run (the one-shot
# db-roles service runs it after db is healthy; on a plain host it runs with the settings
# below in the environment). Each account '<name>'@'%' is brought to exactly its set:
#   DB_APP_USER      (app_rw)      SELECT, INSERT, UPDATE, DELETE, EXECUTE on DB_NAME.*: the
#                                  application; no DDL, no FILE, no GRANT
#   DB_MIGRATE_USER  (app_migrate) ALL PRIVILEGES on DB_NAME.* (DDL and DML there, no GRANT
#                                  OPTION): the migrations
#   DB_MONITOR_USER  (app_monitor) BINLOG MONITOR, SLAVE MONITOR on *.*,
#                                  MAX_USER_CONNECTIONS 3: mysqld_exporter 0.17's default
#                                  collectors and binlog_size (SHOW REPLICA STATUS needs SLAVE
#                                  MONITOR, SHOW BINARY LOGS BINLOG MONITOR; none reads
#                                  performance_schema). No PROCESS: it shows every session's
#                                  queries, and only the InnoDB compression collectors, which
#                                  the generated compose turns off, need it.
#   DB_BACKUP_USER   (app_backup)  SELECT on mysql.* (the accounts and grants it backs up) and
#                                  SELECT, SHOW VIEW, TRIGGER, EVENT, EXECUTE, INSERT, CREATE,
#                                  DELETE on DB_NAME.*: ops/backup/mariadb-dump.sh (the objects
#                                  it dumps and counts, EXECUTE for a view that calls a function,
#                                  the canary row); with DB_BACKUP_METHOD=physical also RELOAD,
#                                  PROCESS and BINLOG MONITOR on *.* for mariadb-backup (BACKUP
#                                  STAGE, its checks, SHOW MASTER STATUS). Neither method needs
#                                  LOCK TABLES (a single-transaction dump, BACKUP STAGE).
# Every run creates a missing account, sets the password of the secret file when the account
# has another one (so rotating a secret and running this again applies it), grants what is
# missing and then revokes what the account must not have (grants on other objects, roles,
# proxies, GRANT OPTION), so that the application never loses a privilege it needs while this
# runs. A second run changes nothing. The password reaches the server only as its
# mysql_native_password hash (IDENTIFIED BY PASSWORD), never in plain text, also not in the
# binary log, through which every statement reaches the replica.
#
# DB_LEGACY_USER (app, empty: skip) is the one account of webapp 1.x: it is locked (ACCOUNT
# LOCK: no login) and loses every privilege, except that while views, triggers, routines or
# events of DB_NAME name it as their DEFINER, it keeps (or gets back) ALL PRIVILEGES on
# DB_NAME.*, its grant of 1.x: they run with it (a trigger whose definer lacks privileges fails
# every INSERT into its table). A migration that re-creates them as DB_MIGRATE_USER lets the
# next run revoke that too.
#
# Settings (environment): DB_HOST (db), DB_PORT (3306), DB_NAME (app), DB_ADMIN_USER (root),
# DB_ADMIN_PASSWORD_FILE, DB_<ACCOUNT>_USER and DB_<ACCOUNT>_PASSWORD_FILE (/run/secrets/...),
# DB_LEGACY_USER, DB_BACKUP_METHOD (logical or physical, the project's db_backup_method;
# default logical), DB_WAIT_SECONDS (60: how long to wait for the server to answer).
# It refuses, before changing anything, a missing, unreadable or empty password file, an
# administrator who cannot log in, a database that does not exist and a read-only server (a
# replica: its accounts come from the primary).
set -euo pipefail
# Errors inside $(...) stop the script too.
shopt -s inherit_errexit

: "${DB_HOST:=db}"
: "${DB_PORT:=3306}"
: "${DB_NAME:=app}"
: "${DB_ADMIN_USER:=root}"
: "${DB_ADMIN_PASSWORD_FILE:=/run/secrets/db_root_password}"
: "${DB_APP_USER:=app_rw}"
: "${DB_APP_PASSWORD_FILE:=/run/secrets/db_rw_password}"
: "${DB_MIGRATE_USER:=app_migrate}"
: "${DB_MIGRATE_PASSWORD_FILE:=/run/secrets/db_migrate_password}"
: "${DB_MONITOR_USER:=app_monitor}"
: "${DB_MONITOR_PASSWORD_FILE:=/run/secrets/db_monitor_password}"
: "${DB_BACKUP_USER:=app_backup}"
: "${DB_BACKUP_PASSWORD_FILE:=/run/secrets/db_backup_password}"
# Set but empty means: no legacy account to retire.
: "${DB_LEGACY_USER=app}"
: "${DB_WAIT_SECONDS:=60}"
: "${DB_BACKUP_METHOD:=logical}"

log() { printf 'roles: %s\n' "$*" >&2; }
die() {
	printf 'roles: error: %s\n' "$*" >&2
	exit 1
}

# ident NAME: NAME as a quoted identifier. lit TEXT: TEXT as a string literal (the session
# runs without NO_BACKSLASH_ESCAPES, see SESSION_SQL_MODE).
ident() { printf '%s%s%s' '`' "${1//\`/\`\`}" '`'; }
lit() {
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf "'%s'" "$s"
}
# acct NAME: the account 'NAME'@'%'.
acct() { printf "%s@'%%'" "$(lit "$1")"; }

# cnf_value TEXT: TEXT quoted for an option file.
cnf_value() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# read_password VAR: the content of the file VAR names, without trailing newlines (as the
# image's entrypoint and the backends read a secret).
read_password() {
	local var=$1 file=${!1} v
	[[ -n $file ]] || die "$var is empty: it must name the password file"
	[[ -e $file ]] || die "$var: $file does not exist"
	[[ -f $file && -r $file ]] || die "$var: $file is not a readable file"
	v=$(<"$file") || die "$var: cannot read $file"
	[[ -n $v ]] || die "$var: $file is empty"
	[[ $v != *$'\n'* ]] || die "$var: $file holds more than one line"
	printf '%s' "$v"
}

# native_hash PASSWORD: what mysql_native_password stores, *HEX(SHA1(SHA1(PASSWORD))), of
# the password's bytes, computed here so that the password never travels.
native_hash() {
	local h esc='' i
	h=$(printf '%s' "$1" | sha1sum)
	h=${h%% *}
	for ((i = 0; i < 40; i += 2)); do esc+="\\x${h:i:2}"; done
	# shellcheck disable=SC2059 # the format is the digest's bytes as \xHH escapes
	h=$(printf "$esc" | sha1sum)
	h=${h%% *}
	printf '*%s' "${h^^}"
}

# ---------------------------------------------------------------------------------------
# Settings, checked before anything connects.

[[ $DB_PORT =~ ^[0-9]+$ ]] || die "DB_PORT: $DB_PORT is not a port number"
[[ $DB_WAIT_SECONDS =~ ^[0-9]+$ ]] || die "DB_WAIT_SECONDS: $DB_WAIT_SECONDS is not a number of seconds"
[[ -n $DB_NAME ]] || die "DB_NAME is empty"
[[ $DB_BACKUP_METHOD == logical || $DB_BACKUP_METHOD == physical ]] ||
	die "DB_BACKUP_METHOD: $DB_BACKUP_METHOD is not logical or physical"
[[ -n $DB_ADMIN_USER ]] || die "DB_ADMIN_USER is empty"

# The accounts: KIND -> user, the variable of its password file.
KINDS=(APP MIGRATE MONITOR BACKUP)
declare -A USER_OF=() HASH_OF=() SEEN=()
ADMIN_PASSWORD=$(read_password DB_ADMIN_PASSWORD_FILE)
for kind in "${KINDS[@]}"; do
	var=DB_${kind}_USER
	user=${!var}
	[[ -n $user ]] || die "$var is empty"
	[[ -z ${SEEN[$user]:-} ]] || die "$var: $user is also ${SEEN[$user]}"
	[[ $user != "$DB_ADMIN_USER" && $user != "$DB_LEGACY_USER" ]] || die "$var: $user is the administrator or the legacy account"
	SEEN[$user]=$var
	USER_OF[$kind]=$user
	pw=$(read_password "DB_${kind}_PASSWORD_FILE")
	HASH_OF[$kind]=$(native_hash "$pw")
done
unset pw

# ---------------------------------------------------------------------------------------
# The connection: an option file of its own (the password never on a command line), utf8mb4,
# and a known sql_mode, so that lit's backslash escapes mean what they say.

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roles.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CNF=$WORK/client.cnf
(
	umask 077
	{
		echo '[client]'
		echo "user=$(cnf_value "$DB_ADMIN_USER")"
		echo "password=$(cnf_value "$ADMIN_PASSWORD")"
		echo "host=$(cnf_value "$DB_HOST")"
		echo "port=$DB_PORT"
		echo 'protocol=TCP'
		echo 'connect-timeout=5'
		echo 'default-character-set=utf8mb4'
	} >"$CNF"
)
unset ADMIN_PASSWORD
SESSION_SQL_MODE="SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';"

# q SQL: runs SQL (from stdin: statements may hold a password hash) and prints the rows,
# tab-separated, without headers; the client's message on stderr.
q() { mariadb --defaults-file="$CNF" --batch --skip-column-names --raw <<<"$SESSION_SQL_MODE"$'\n'"$1"; }

# qq SQL WHAT: q, failing with WHAT and the server's message.
qq() {
	local out
	out=$(q "$1" 2>&1) || die "$2: $out"
	[[ -z $out ]] || printf '%s\n' "$out"
}

# Wait for the server: refused connections and a server still starting are retried, any
# other error (a wrong password, say) ends the run at once.
where="MariaDB at $DB_HOST:$DB_PORT"
deadline=$((SECONDS + DB_WAIT_SECONDS))
while ! out=$(q 'SELECT @@read_only' 2>&1); do
	case $out in
	*'ERROR 2002 '* | *'ERROR 2003 '* | *'ERROR 2005 '* | *'ERROR 2006 '* | *'ERROR 2013 '* | *'ERROR 1040 '* | *'ERROR 1053 '*) ;;
	*) die "cannot log in to $where as $DB_ADMIN_USER (DB_ADMIN_USER, DB_ADMIN_PASSWORD_FILE): $out" ;;
	esac
	((SECONDS < deadline)) || die "$where does not answer after ${DB_WAIT_SECONDS}s (DB_HOST, DB_PORT, DB_WAIT_SECONDS): $out"
	sleep 1
done
[[ $out == 0 ]] || die "$where is read-only (a replica?): run this against the primary, whose binary log brings the accounts to the replica"
[[ $(qq "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $(lit "$DB_NAME")" 'check DB_NAME') == 1 ]] ||
	die "database $DB_NAME does not exist on $where (DB_NAME)"

# ---------------------------------------------------------------------------------------
# Grants. A desired set is a list of "OBJECT|PRIV, PRIV" lines; OBJECT as SHOW GRANTS prints it.

DB_OBJ="$(ident "$DB_NAME").*"
declare -A WANT=(
	[APP]="$DB_OBJ|SELECT, INSERT, UPDATE, DELETE, EXECUTE"
	[MIGRATE]="$DB_OBJ|ALL PRIVILEGES"
	[MONITOR]="*.*|BINLOG MONITOR, SLAVE MONITOR"
	[BACKUP]="\`mysql\`.*|SELECT
$DB_OBJ|SELECT, INSERT, DELETE, CREATE, EXECUTE, SHOW VIEW, EVENT, TRIGGER"
)
[[ $DB_BACKUP_METHOD == logical ]] || WANT[BACKUP]+=$'\n''*.*|RELOAD, PROCESS, BINLOG MONITOR'

# norm_privs "PRIV, PRIV": the privileges one per line, sorted, under the names this server
# version prints (the aliases of MariaDB 10.5 and later folded).
norm_privs() {
	local p
	local -a out=()
	IFS=, read -ra ps <<<"$1"
	for p in "${ps[@]}"; do
		p=${p# }
		case $p in
		'REPLICA MONITOR') p='SLAVE MONITOR' ;;
		'REPLICATION CLIENT') p='BINLOG MONITOR' ;;
		USAGE | '') continue ;;
		esac
		out+=("$p")
	done
	((${#out[@]})) || return 0
	printf '%s\n' "${out[@]}" | LC_ALL=C sort -u
}

# reconcile USER WANT: brings the grants of USER to WANT; prints what it changed, as
# "granted ..." / "revoked ..." lines.
reconcile() {
	local user=$1 want=$2 a tq line head rest privs obj s p
	local -a grants=() revokes=() done=()
	local -A want_of=() have_of=()
	a=$(acct "$user")
	tq=" TO $(ident "$user")@\`%\`"
	while IFS='|' read -r obj privs; do
		[[ -n $obj ]] && want_of[$obj]=$privs
	done <<<"$want"
	while IFS= read -r line; do
		[[ -n $line ]] || continue
		if [[ $line == 'SET DEFAULT ROLE '* ]]; then
			revokes+=("SET DEFAULT ROLE NONE FOR $a")
			continue
		fi
		[[ $line == 'GRANT '*"$tq"* ]] || die "$user: cannot read the grant \"${line:0:80}\""
		head=${line#GRANT }
		rest=${head##*"$tq"}
		head=${head%"$tq"*}
		if [[ $head != *' ON '* ]]; then
			# A role granted to the account.
			revokes+=("REVOKE $head FROM $a")
			continue
		fi
		privs=${head%% ON *}
		obj=${head#* ON }
		if [[ $rest =~ WITH.*GRANT\ OPTION ]]; then
			revokes+=("REVOKE GRANT OPTION ON $obj FROM $a")
		fi
		if [[ -n ${want_of[$obj]+x} ]]; then
			have_of[$obj]=$privs
		elif [[ $privs != USAGE ]]; then
			revokes+=("REVOKE $privs ON $obj FROM $a")
		fi
	done < <(qq "SHOW GRANTS FOR $a" "$user: SHOW GRANTS")
	for obj in "${!want_of[@]}"; do
		local want_n have_n missing extra
		want_n=$(norm_privs "${want_of[$obj]}")
		have_n=$(norm_privs "${have_of[$obj]:-}")
		[[ $want_n != "$have_n" ]] || continue
		if [[ $have_n == 'ALL PRIVILEGES' ]]; then
			# ALL cannot be narrowed by a GRANT: it goes first, then the set.
			s="REVOKE ALL PRIVILEGES ON $obj FROM $a"
			qq "$s" "$user: $s" >/dev/null
			done+=("revoked ALL PRIVILEGES ON $obj")
			have_n=''
		fi
		missing=$(comm -23 <(printf '%s\n' "$want_n") <(printf '%s\n' "$have_n") | grep . | paste -sd, | sed 's/,/, /g' || true)
		extra=$(comm -13 <(printf '%s\n' "$want_n") <(printf '%s\n' "$have_n") | grep . | paste -sd, | sed 's/,/, /g' || true)
		[[ -z $missing ]] || grants+=("GRANT $missing ON $obj TO $a")
		[[ -z $extra || $want_n == 'ALL PRIVILEGES' ]] || revokes+=("REVOKE $extra ON $obj FROM $a")
	done
	# Grants before revokes: the account never lacks a privilege of its set meanwhile.
	for s in "${grants[@]}" "${revokes[@]}"; do
		qq "$s" "$user: $s" >/dev/null
		p=${s% FROM *}
		p=${p% TO *}
		p=${p/#GRANT /granted }
		p=${p/#REVOKE /revoked }
		p=${p/#SET DEFAULT ROLE NONE FOR*/default role removed}
		done+=("$p")
	done
	((${#done[@]} == 0)) || printf '%s\n' "${done[@]}"
}

# account USER HASH: creates USER or sets its password when it differs; prints what it did.
account() {
	local user=$1 hash=$2 a row
	a=$(acct "$user")
	row=$(qq "SELECT is_role, plugin, authentication_string FROM mysql.user WHERE user = $(lit "$user") AND host = '%'" "$user: read the account")
	if [[ -z $row ]]; then
		qq "CREATE USER IF NOT EXISTS $a IDENTIFIED BY PASSWORD '$hash'" "$user: CREATE USER" >/dev/null
		echo created
		return 0
	fi
	[[ ${row%%$'\t'*} != Y ]] || die "$user is a role, not an account"
	if [[ ${row#*$'\t'} != "mysql_native_password"$'\t'"$hash" ]]; then
		qq "ALTER USER $a IDENTIFIED BY PASSWORD '$hash'" "$user: ALTER USER" >/dev/null
		echo 'password set'
	fi
}

for kind in "${KINDS[@]}"; do
	user=${USER_OF[$kind]}
	changes=$(account "$user" "${HASH_OF[$kind]}")
	if [[ $kind == MONITOR ]]; then
		# mysqld_exporter's README: a cap on its connections, so that a stuck exporter cannot
		# take the server's.
		if [[ $(qq "SELECT max_user_connections FROM mysql.user WHERE user = $(lit "$user") AND host = '%'" "$user: read the limits") != 3 ]]; then
			qq "ALTER USER $(acct "$user") WITH MAX_USER_CONNECTIONS 3" "$user: ALTER USER" >/dev/null
			changes+=${changes:+$'\n'}'MAX_USER_CONNECTIONS 3'
		fi
	fi
	fixed=$(reconcile "$user" "${WANT[$kind]}")
	changes+=${fixed:+${changes:+$'\n'}$fixed}
	if [[ -z $changes ]]; then
		log "$user: unchanged"
	else
		log "$user: $(paste -sd';' <<<"$changes" | sed 's/;/; /g')"
	fi
done

# The legacy account.
if [[ -n $DB_LEGACY_USER ]]; then
	user=$DB_LEGACY_USER
	row=$(qq "SELECT IF(JSON_VALUE(priv, '$.account_locked') IN ('1', 'true'), 'locked', 'open') FROM mysql.global_priv WHERE user = $(lit "$user") AND host = '%'" "$user: read the account")
	if [[ -z $row ]]; then
		log "$user: not present"
	else
		changes=''
		definer=$(lit "$user@%")
		objects=$(qq "SELECT
			(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = $(lit "$DB_NAME") AND definer = $definer)
			+ (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = $(lit "$DB_NAME") AND definer = $definer)
			+ (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = $(lit "$DB_NAME") AND definer = $definer)
			+ (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = $(lit "$DB_NAME") AND definer = $definer)" "$user: count its objects")
		want=''
		# Its objects run with its privileges: it keeps those of 1.x.
		((objects == 0)) || want="$DB_OBJ|ALL PRIVILEGES"
		if [[ $row != locked ]]; then
			qq "ALTER USER $(acct "$user") ACCOUNT LOCK" "$user: ACCOUNT LOCK" >/dev/null
			changes=locked
		fi
		fixed=$(reconcile "$user" "$want")
		changes+=${fixed:+${changes:+$'\n'}$fixed}
		keeps='no privileges'
		((objects == 0)) || keeps="keeps ALL PRIVILEGES ON $DB_OBJ as the DEFINER of $objects view(s), trigger(s), routine(s) or event(s) there (re-create them as $DB_MIGRATE_USER to drop them)"
		if [[ -z $changes ]]; then
			log "$user: unchanged (locked, $keeps)"
		else
			log "$user: $(paste -sd';' <<<"$changes" | sed 's/;/; /g'); $keeps"
		fi
	fi
fi
