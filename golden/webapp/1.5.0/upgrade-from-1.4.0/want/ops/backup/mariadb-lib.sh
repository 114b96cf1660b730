#!/usr/bin/env bash
# Shared by mariadb-dump.sh and mariadb-backup.sh (sourced after lib.sh, not run): SQL quoting,
# the private client option file, queries that fail with the server's message, and the
# programs of the scratch server.

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	echo "mariadb-lib.sh is sourced by the MariaDB backup scripts, not run" >&2
	exit 2
fi

# cnf_value TEXT: TEXT quoted for an option file.
cnf_value() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

# client_cnf: writes an option file with the connection settings and the password into
# MY_CNF (private, removed at exit), so that the password never shows on a command line.
# Only this file is read (--defaults-file): settings come from the environment alone.
MY_CNF=
client_cnf() {
	local pw dir
	pw=$(read_secret "$(secret_path MARIADB_PASSWORD_FILE secrets/db_root_password)")
	dir=$(temp_dir)
	MY_CNF=$dir/client.cnf
	{
		echo '[client]'
		echo "user=$(cnf_value "$MARIADB_USER")"
		echo "password=$(cnf_value "$pw")"
		if [[ -n $MARIADB_SOCKET ]]; then
			echo "socket=$(cnf_value "$(abs "$MARIADB_SOCKET")")"
		else
			echo "host=$(cnf_value "$MARIADB_HOST")"
			echo "port=$MARIADB_PORT"
			echo 'protocol=TCP'
		fi
	} >"$MY_CNF"
	chmod 0600 "$MY_CNF"
}

where() {
	if [[ -n $MARIADB_SOCKET ]]; then echo "MariaDB at $MARIADB_SOCKET"; else echo "MariaDB at $MARIADB_HOST:$MARIADB_PORT"; fi
}

# ident NAME: NAME as a quoted identifier. lit TEXT: TEXT as a string literal.
ident() { printf '%s%s%s' '`' "${1//\`/\`\`}" '`'; }

lit() {
	local s=${1//\\/\\\\}
	s=${s//\'/\\\'}
	printf "'%s'" "$s"
}

# qq SQL [DB]: q, failing with the server's message.
qq() {
	local out
	out=$(q "$@" 2>&1) || die "query failed on $(where): ${1:0:60}...: $out"
	printf '%s\n' "$out"
}

# sql_failure OUTPUT: what the mariadb client printed when a statement failed, as one line:
# its ERROR line (code, line number, message) and the statement, which the client prints
# between two lines of dashes (cut to 300 characters: a dump line can be a megabyte).
sql_failure() {
	local out=$1 err stmt
	err=$(grep -m 1 '^ERROR ' <<<"$out" || true)
	[[ -n $err ]] || err=$(grep -v '^-*$' <<<"$out" | tail -n 3 | tr '\n' ' ')
	stmt=$(awk '/^--------------$/ { n++; next } n == 1 { printf "%s ", $0 }' <<<"$out" | cut -c 1-300)
	printf '%s%s\n' "${err:-the mariadb client failed without a message}" "${stmt:+ in: ${stmt% }}"
}

# load_sql WHAT ARGS...: runs the mariadb client with ARGS on stdin, failing with the
# statement that failed and the server's message.
load_sql() {
	local what=$1 out
	shift
	if ! out=$(mariadb "$@" 2>&1); then
		die "$what failed: $(sql_failure "$out")"
	fi
	[[ -z $out ]] || log "$what: $(head -c 500 <<<"$out" | tr '\n' ' ')"
}

# system_user_filter: a SQL condition that leaves out the server's own accounts.
system_user_filter() {
	local u cond="user <> ''"
	for u in $MARIADB_SYSTEM_USERS; do cond+=" AND user <> $(lit "$u")"; done
	printf '%s\n' "$cond"
}

# prog NAME: the path of a server program (often in /usr/sbin, outside a user's PATH).
prog() {
	local d
	for d in ${MARIADB_BINDIR:+"$MARIADB_BINDIR"} $(tr ':' ' ' <<<"$PATH") /usr/sbin /usr/bin /usr/libexec /usr/local/mysql/bin; do
		if [[ -x $d/$1 ]]; then
			printf '%s\n' "$d/$1"
			return 0
		fi
	done
	die "$1 is not installed (the scratch server of the restore test needs it; set MARIADB_BINDIR)"
}

scratch_stop() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 240; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.25
	done
	log "warning: the scratch mariadbd $pid did not stop within 60s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}
