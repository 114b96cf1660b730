#!/usr/bin/env bash
# The database roles the services log in with, and exactly their privileges
# (docs/database-roles.md). Run by the one-shot db-roles service before migrate on every `up`;
# idempotent: a second run changes nothing. It also brings a database made by opsready 1.5 or
# older, where every service logged in as the superuser, to these roles: the objects of the
# application's schema that the superuser owns move to the migration role.
#
#   DB_APP_USER      (app_rw)       the application: SELECT, INSERT, UPDATE, DELETE on the tables
#                                   of DB_SCHEMA, sequences; no DDL, no role, no other database
#   DB_MIGRATE_USER  (app_migrate)  migrations: owns DB_SCHEMA and its objects (DDL there only)
#   DB_MONITOR_USER  (app_monitor)  postgres_exporter: pg_monitor
# The superuser (DB_ADMIN_USER, the image's POSTGRES_USER) runs this script, the backups
# (pg_dumpall reads the roles' passwords, which only a superuser can), replication set-up,
# failover and restores; no service logs in with it.
#
# Settings (environment): DB_HOST DB_PORT DB_NAME DB_SCHEMA DB_ADMIN_USER
# DB_ADMIN_PASSWORD_FILE, DB_{APP,MIGRATE,MONITOR}_USER and their *_PASSWORD_FILE (the secret
# files: changing one and running this again sets the new password), DB_WAIT_SECONDS (how long
# to wait for the server), PG_BINDIR (where psql is, when not on PATH).
# Exit 0: every role is as described. Anything else: nothing was changed (one transaction).
set -euo pipefail

: "${DB_HOST:=db}"
: "${DB_PORT:=5432}"
: "${DB_NAME:=app}"
: "${DB_SCHEMA:=public}"
: "${DB_ADMIN_USER:=app}"
: "${DB_ADMIN_PASSWORD_FILE:=/run/secrets/db_password}"
: "${DB_APP_USER:=app_rw}"
: "${DB_APP_PASSWORD_FILE:=/run/secrets/db_rw_password}"
: "${DB_MIGRATE_USER:=app_migrate}"
: "${DB_MIGRATE_PASSWORD_FILE:=/run/secrets/db_migrate_password}"
: "${DB_MONITOR_USER:=app_monitor}"
: "${DB_MONITOR_PASSWORD_FILE:=/run/secrets/db_monitor_password}"
: "${DB_WAIT_SECONDS:=60}"
: "${PG_BINDIR:=}"

log() { printf 'roles: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

psql_bin=psql
[[ -z $PG_BINDIR ]] || psql_bin=$PG_BINDIR/psql
command -v "$psql_bin" >/dev/null || die "psql not found (PATH, or PG_BINDIR=$PG_BINDIR)"

# read_password VAR: the one-line content of the file named by VAR (a trailing newline is
# not part of it), refused when missing, empty or more than one line.
read_password() {
	local var=$1 file pw
	file=${!var}
	[[ -r $file ]] || die "$var: cannot read $file"
	pw=$(<"$file") || die "$var: cannot read $file"
	[[ -n $pw ]] || die "$var: $file is empty"
	[[ $pw != *$'\n'* ]] || die "$var: $file holds more than one line"
	printf '%s' "$pw"
}

# Role, database and schema names are spliced into SQL as quoted identifiers; plain names only,
# so that what the logs say is what the server has.
for var in DB_ADMIN_USER DB_APP_USER DB_MIGRATE_USER DB_MONITOR_USER DB_NAME DB_SCHEMA; do
	[[ ${!var} =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "$var: '${!var}' is not a lower-case name of letters, digits and _"
done
[[ $DB_PORT =~ ^[0-9]+$ ]] || die "DB_PORT: '$DB_PORT' is not a port number"
[[ $DB_WAIT_SECONDS =~ ^[0-9]+$ ]] || die "DB_WAIT_SECONDS: '$DB_WAIT_SECONDS' is not a number of seconds"
declare -A seen=()
for var in DB_ADMIN_USER DB_APP_USER DB_MIGRATE_USER DB_MONITOR_USER; do
	[[ -z ${seen[${!var}]:-} ]] || die "$var: ${!var} is also ${seen[${!var}]}: every role needs its own name"
	seen[${!var}]=$var
done

admin_pw=$(read_password DB_ADMIN_PASSWORD_FILE)
app_pw=$(read_password DB_APP_PASSWORD_FILE)
migrate_pw=$(read_password DB_MIGRATE_PASSWORD_FILE)
monitor_pw=$(read_password DB_MONITOR_PASSWORD_FILE)

# sql_literal VALUE: VALUE as a standard SQL string literal.
sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }

# as USER PASSWORD DB ARGS...: psql as USER, no password prompt, errors stop it.
as() {
	local user=$1 pw=$2 db=$3
	shift 3
	PGPASSWORD=$pw PGCONNECT_TIMEOUT=5 "$psql_bin" -X -q -A -t -v ON_ERROR_STOP=1 -w \
		-h "$DB_HOST" -p "$DB_PORT" -U "$user" -d "$db" "$@"
}

# The server may still be starting (a plain host, or a restart between healthcheck and now).
deadline=$((SECONDS + DB_WAIT_SECONDS))
until out=$(as "$DB_ADMIN_USER" "$admin_pw" postgres -c 'SELECT 1' 2>&1); do
	case $out in
	*"password authentication failed"* | *"does not exist"* | *"no pg_hba.conf entry"*)
		die "cannot log in to $DB_HOST:$DB_PORT as $DB_ADMIN_USER (DB_ADMIN_USER, DB_ADMIN_PASSWORD_FILE): $out" ;;
	esac
	((SECONDS < deadline)) || die "no answer from $DB_HOST:$DB_PORT within ${DB_WAIT_SECONDS}s: $out"
	sleep 1
done

super=$(as "$DB_ADMIN_USER" "$admin_pw" postgres -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
[[ $super == t ]] || die "$DB_ADMIN_USER is not a superuser on $DB_HOST:$DB_PORT (DB_ADMIN_USER must be the server's superuser)"
exists=$(as "$DB_ADMIN_USER" "$admin_pw" postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB_NAME'")
[[ $exists == 1 ]] || die "database $DB_NAME does not exist on $DB_HOST:$DB_PORT (DB_NAME)"

# password_sql ROLE PASSWORD: ALTER ROLE ... PASSWORD unless ROLE already logs in with it, so
# that a run without a rotated secret leaves the stored verifier alone.
password_sql() {
	local role=$1 pw=$2
	if as "$role" "$pw" "$DB_NAME" -c 'SELECT 1' >/dev/null 2>&1; then
		log "$role: password unchanged"
		return
	fi
	log "$role: password set from its secret file"
	printf 'ALTER ROLE "%s" PASSWORD %s;\n' "$role" "$(sql_literal "$pw")"
}

passwords=$(
	password_sql "$DB_APP_USER" "$app_pw"
	password_sql "$DB_MIGRATE_USER" "$migrate_pw"
	password_sql "$DB_MONITOR_USER" "$monitor_pw"
)

# One transaction in the application's database (roles and database privileges are the
# server's, and can be changed from any database): it applies whole or not at all. Passwords
# stay out of the server's log.
sql=$(
	cat <<SQL
BEGIN;
SET LOCAL log_statement = 'none';
SET LOCAL client_min_messages = warning;

-- The roles, with exactly these attributes and no memberships (pg_monitor for the exporter):
-- a role granted pg_execute_server_program or pg_read_all_data by hand loses it here.
DO \$roles\$
DECLARE
	r text;
	m record;
BEGIN
	FOREACH r IN ARRAY ARRAY['$DB_APP_USER', '$DB_MIGRATE_USER', '$DB_MONITOR_USER'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I LOGIN', r);
			RAISE WARNING 'roles: %: created', r;
		END IF;
		EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT -1 VALID UNTIL ''infinity''', r);
		FOR m IN SELECT g.rolname FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid
			WHERE a.member = (SELECT oid FROM pg_roles WHERE rolname = r)
			AND NOT (r = '$DB_MONITOR_USER' AND g.rolname = 'pg_monitor') LOOP
			EXECUTE format('REVOKE %I FROM %I', m.rolname, r);
			RAISE WARNING 'roles: %: membership in % revoked', r, m.rolname;
		END LOOP;
	END LOOP;
END
\$roles\$;
GRANT pg_monitor TO "$DB_MONITOR_USER";

-- Databases: only the roles named here connect to $DB_NAME, and PUBLIC to no other database
-- of the server (the superuser is not affected), so the application cannot read them.
REVOKE ALL ON DATABASE "$DB_NAME" FROM PUBLIC, "$DB_APP_USER", "$DB_MIGRATE_USER", "$DB_MONITOR_USER";
GRANT CONNECT, TEMPORARY ON DATABASE "$DB_NAME" TO "$DB_APP_USER", "$DB_MIGRATE_USER";
GRANT CONNECT ON DATABASE "$DB_NAME" TO "$DB_MONITOR_USER";
DO \$dbs\$
DECLARE
	d text;
BEGIN
	FOR d IN SELECT datname FROM pg_database WHERE datallowconn AND datname <> '$DB_NAME' LOOP
		EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC, %I, %I, %I', d,
			'$DB_APP_USER', '$DB_MIGRATE_USER', '$DB_MONITOR_USER');
	END LOOP;
END
\$dbs\$;
$passwords

-- The schema belongs to the migration role; what the superuser (or the application role,
-- before 1.6) created in it moves to that role too, except what an extension owns.
CREATE SCHEMA IF NOT EXISTS "$DB_SCHEMA";
ALTER SCHEMA "$DB_SCHEMA" OWNER TO "$DB_MIGRATE_USER";
DO \$own\$
DECLARE
	o record;
	n int := 0;
	old oid[] := ARRAY(SELECT oid FROM pg_roles WHERE rolname IN ('$DB_ADMIN_USER', '$DB_APP_USER'));
	s oid := '"$DB_SCHEMA"'::regnamespace;
BEGIN
	-- Relations. A sequence owned by a column (serial, identity) follows its table.
	FOR o IN SELECT c.oid, c.relkind FROM pg_class c
		WHERE c.relnamespace = s AND c.relowner = ANY (old) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
		AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
	LOOP
		EXECUTE format('ALTER %s %s OWNER TO %I',
			CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
				WHEN 'S' THEN 'SEQUENCE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END,
			o.oid::regclass, '$DB_MIGRATE_USER');
		n := n + 1;
	END LOOP;
	-- Functions, procedures, aggregates.
	FOR o IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = s AND p.proowner = ANY (old)
		AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	LOOP
		EXECUTE format('ALTER ROUTINE %s OWNER TO %I', o.oid::regprocedure, '$DB_MIGRATE_USER');
		n := n + 1;
	END LOOP;
	-- Domains, enums, ranges (composite types went with the relations above).
	FOR o IN SELECT t.oid FROM pg_type t WHERE t.typnamespace = s AND t.typowner = ANY (old) AND t.typtype IN ('d', 'e', 'r')
		AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
	LOOP
		EXECUTE format('ALTER TYPE %s OWNER TO %I', o.oid::regtype, '$DB_MIGRATE_USER');
		n := n + 1;
	END LOOP;
	IF n > 0 THEN
		RAISE WARNING 'roles: %: took over % objects of schema % from %', '$DB_MIGRATE_USER', n, '$DB_SCHEMA', '$DB_ADMIN_USER';
	END IF;
	-- Large objects are the application's data: it creates and unlinks them.
	n := 0;
	FOR o IN SELECT oid FROM pg_largeobject_metadata WHERE lomowner = (SELECT oid FROM pg_roles WHERE rolname = '$DB_ADMIN_USER') LOOP
		EXECUTE format('ALTER LARGE OBJECT %s OWNER TO %I', o.oid, '$DB_APP_USER');
		n := n + 1;
	END LOOP;
	IF n > 0 THEN
		RAISE WARNING 'roles: %: took over % large objects from %', '$DB_APP_USER', n, '$DB_ADMIN_USER';
	END IF;
END
\$own\$;

-- The application: data, not structure, of this schema only. Revoked first so that a
-- privilege granted by hand (TRUNCATE, REFERENCES, TRIGGER) does not survive a run.
REVOKE ALL ON SCHEMA "$DB_SCHEMA" FROM PUBLIC, "$DB_APP_USER", "$DB_MONITOR_USER";
GRANT USAGE ON SCHEMA "$DB_SCHEMA" TO "$DB_APP_USER";
REVOKE ALL ON ALL TABLES IN SCHEMA "$DB_SCHEMA" FROM PUBLIC, "$DB_APP_USER", "$DB_MONITOR_USER";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "$DB_SCHEMA" TO "$DB_APP_USER";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA "$DB_SCHEMA" FROM PUBLIC, "$DB_APP_USER", "$DB_MONITOR_USER";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "$DB_SCHEMA" TO "$DB_APP_USER";
-- What migrations create later gets the same grants.
ALTER DEFAULT PRIVILEGES FOR ROLE "$DB_MIGRATE_USER" IN SCHEMA "$DB_SCHEMA"
	GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "$DB_APP_USER";
ALTER DEFAULT PRIVILEGES FOR ROLE "$DB_MIGRATE_USER" IN SCHEMA "$DB_SCHEMA"
	GRANT USAGE, SELECT ON SEQUENCES TO "$DB_APP_USER";
COMMIT;
SQL
)

out=$(printf '%s\n' "$sql" | as "$DB_ADMIN_USER" "$admin_pw" "$DB_NAME" 2>&1) || {
	# psql stops at the first error; the open transaction is rolled back when it exits.
	printf '%s\n' "$out" | grep -v 'WARNING:  roles: ' >&2 || true
	die "the roles were not changed on $DB_HOST:$DB_PORT/$DB_NAME (the error above)"
}
printf '%s\n' "$out" | sed -n 's/^.*WARNING:  roles: /roles: /p' >&2
log "$DB_APP_USER, $DB_MIGRATE_USER, $DB_MONITOR_USER on $DB_HOST:$DB_PORT/$DB_NAME: as docs/database-roles.md says"
