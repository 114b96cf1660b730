#!/usr/bin/env bash
# capture.sh BINDIR: re-captures the /metrics text of the exporters that compose.monitoring.yaml
# pins, into this folder, for TestMetricsExist (internal/e2e/monitoring/metrics_exist_test.go).
#
# BINDIR holds the exporters built at exactly the pinned versions (not part of `make test`):
#   mysqld_exporter 0.17.2    git archive v0.17.2 of github.com/prometheus/mysqld_exporter, go build
#                             (the module proxy here does not serve it)
#   postgres_exporter 0.17.1  git archive v0.17.1 of github.com/prometheus-community/postgres_exporter,
#                             go build ./cmd/postgres_exporter (the module proxy here does not serve it)
#   redis_exporter 1.74.0     go build github.com/oliver006/redis_exporter@v1.74.0
#   node_exporter 1.9.1       go build github.com/prometheus/node_exporter@v1.9.1
#   blackbox_exporter 0.27.0  go build github.com/prometheus/blackbox_exporter@v0.27.0
#   prometheus 3.5.0          go build github.com/prometheus/prometheus/cmd/prometheus@v0.305.0
#   alertmanager 0.28.1       the one `make tools` installs (/usr/local/bin)
# (each in a scratch module: `go mod init x && go get PKG@VER && go build -o BINDIR/NAME PKG`).
#
# Servers: Redis (127.0.0.1:6379), the local PostgreSQL (127.0.0.1:5432, user postgres) for the
# backend stub, and instances this script starts in temporary folders and stops at the end:
# two MariaDB (a primary with a binary log and a replica of it) and two PostgreSQL 15 run as
# the postgres OS user (a primary and a streaming standby seeded with pg_basebackup through a
# replication slot), so that the replication collectors have something to report on both
# sides, as db-exporter and db-replica-exporter see them. Every exporter runs with the
# collector flags the generated compose.monitoring.yaml passes; each file's first lines record
# the version and those flags, and the test compares them with the compose file, so a changed
# flag or version fails until this is run again.
#
# capture.sh BINDIR PART...: only those captures (mysqld, postgres, redis, node, blackbox,
# cadvisor, backend, prometheus), such as after a flag change of one exporter; BINDIR then
# needs only their exporters.
set -euo pipefail

bin=${1:?usage: capture.sh BINDIR [PART...]}
bin=$(cd "$bin" && pwd)
shift
parts=("$@")
((${#parts[@]})) || parts=(mysqld postgres redis node blackbox cadvisor backend prometheus)
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pgtmp=
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n $pgtmp ]]; then
		for d in standby primary; do
			if [[ -f $pgtmp/$d/postmaster.pid ]]; then
				runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgtmp/$d" -m immediate -w stop >/dev/null 2>&1 || true
			fi
		done
		rm -rf "$pgtmp"
	fi
	psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS mex_capture' -c 'DROP ROLE IF EXISTS mex_app' >/dev/null 2>&1 || true
	redis-cli -p 6379 -n 0 DEL mex:capture >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL
	local i
	for i in $(seq 1 100); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "capture: $1 never answered" >&2
	return 1
}

# save NAME VERSION FLAGS URL: the scrape, with a header the test reads.
save() {
	local name=$1 version=$2 flags=$3 url=$4
	{
		echo "# mex-exporter: $name"
		echo "# mex-version: $version"
		echo "# mex-flags: $flags"
		echo "# mex-url: ${url#http://127.0.0.1:*/}"
		curl -fsS "$url"
	} >"$out/$name-$version.txt.new"
	mv "$out/$name-$version.txt.new" "$out/$name-$version.txt"
	echo "captured $name-$version.txt ($(grep -vc '^#' "$out/$name-$version.txt") samples)"
}

# --- MariaDB: primary and replica -------------------------------------------------------------
start_mariadb() { # DIR PORT [EXTRA...]
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=normal >"$dir/install.log" 2>&1
	mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" --bind-address=127.0.0.1 \
		--user=root --skip-name-resolve --pid-file="$dir/pid" --log-error="$dir/error.log" "$@" &
	pids+=($!)
	local i
	for i in $(seq 1 100); do
		if mariadb --socket="$dir/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	echo "capture: mariadbd on $port did not start: $(tail -5 "$dir/error.log")" >&2
	return 1
}
capture_mysqld() {
	local p1 p2 i role port web name
	p1=$(free_port)
	p2=$(free_port)
	# DB_REPLICATION_OPTIONS of compose.prod.yaml: both servers keep a binary log (the replica
	# too, so that it can be promoted), which the binlog_size collector reads on each.
	local repl=(--log-bin=mariadb-bin --relay-log=mariadb-relay-bin --binlog-format=ROW --gtid-strict-mode=ON
		--log-slave-updates=ON --sync-binlog=1 --binlog-expire-logs-seconds=604800)
	start_mariadb "$tmp/primary" "$p1" --server-id=1 "${repl[@]}"
	start_mariadb "$tmp/replica" "$p2" --server-id=2 "${repl[@]}" --read-only
	# What the mariadb image creates for MARIADB_DATABASE/MARIADB_USER, then the grants of
	# compose.monitoring.yaml's db-exporter-grant (SLAVE MONITOR for the replica status,
	# BINLOG MONITOR for SHOW BINARY LOGS). They reach the replica through the binary log.
	mariadb --socket="$tmp/primary/sock" -uroot <<'SQL'
CREATE DATABASE app;
CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw';
GRANT ALL PRIVILEGES ON app.* TO 'app'@'%';
GRANT SLAVE MONITOR ON *.* TO 'app'@'%';
GRANT BINLOG MONITOR ON *.* TO 'app'@'%';
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pw';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);
INSERT INTO app.t VALUES (1, 'a'), (2, 'b');
SQL
	mariadb --socket="$tmp/replica/sock" -uroot -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$p1, MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_USE_GTID=slave_pos; START SLAVE;"
	for i in $(seq 1 300); do
		if [[ $(mariadb --socket="$tmp/replica/sock" -uroot -N -e "SELECT COUNT(*) FROM app.t" 2>/dev/null) == 2 ]]; then break; fi
		sleep 0.2
		if ((i == 300)); then
			echo "capture: the replica did not catch up:" >&2
			mariadb --socket="$tmp/replica/sock" -uroot -e 'SHOW SLAVE STATUS\G' >&2
			return 1
		fi
	done

	# The collector flags of compose.monitoring.yaml's db-exporter and db-replica-exporter (mariadb).
	local myflags=(--no-collect.info_schema.innodb_cmp --no-collect.info_schema.innodb_cmpmem --collect.binlog_size)
	for role in primary replica; do
		port=$p1
		[[ $role == primary ]] || port=$p2
		web=$(free_port)
		MYSQLD_EXPORTER_PASSWORD=app-pw "$bin/mysqld_exporter" --mysqld.address="127.0.0.1:$port" --mysqld.username=app \
			"${myflags[@]}" --web.listen-address="127.0.0.1:$web" >"$tmp/mysqld_exporter-$role.log" 2>&1 &
		pids+=($!)
		wait_http "http://127.0.0.1:$web/"
		name=mysqld_exporter
		[[ $role == primary ]] || name=mysqld_exporter-replica
		save "$name" 0.17.2 "${myflags[*]}" "http://127.0.0.1:$web/metrics"
		if grep -q 'level=ERROR' "$tmp/mysqld_exporter-$role.log"; then
			echo "capture: mysqld_exporter ($role) logged errors:" >&2
			cat "$tmp/mysqld_exporter-$role.log" >&2
			return 1
		fi
		grep -q '^mysql_binlog_size_bytes ' "$out/$name-0.17.2.txt" || { echo "capture: $name: no mysql_binlog_size_bytes" >&2; return 1; }
	done
	grep -q '^mysql_slave_status_slave_io_running{' "$out/mysqld_exporter-replica-0.17.2.txt" ||
		{ echo "capture: the replica reports no replica status" >&2; return 1; }
}

# --- PostgreSQL: primary and streaming standby --------------------------------------------------
# Own PostgreSQL 15 servers (the image is 17), run as the postgres OS user in a folder it owns.
pgbin=/usr/lib/postgresql/15/bin
pg() { (cd / && runuser -u postgres -- "$@"); }
pgsql() { # PORT SQL...: as the superuser, over the socket
	local port=$1
	shift
	pg "$pgbin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$pgtmp" -p "$port" -U postgres -d app "$@"
}
start_pg() { # DIR PORT
	pg "$pgbin/pg_ctl" -D "$1" -l "$1.log" -w -t 300 \
		-o "-c port=$2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pgtmp" start >/dev/null ||
		{ echo "capture: PostgreSQL on $2 did not start: $(tail -5 "$1.log")" >&2; return 1; }
}
capture_postgres() {
	local p1 p2 i web role port name
	pgtmp=$(mktemp -d /tmp/mexpg.XXXXXX)
	chown postgres: "$pgtmp"
	p1=$(free_port)
	p2=$(free_port)
	pg "$pgbin/initdb" -D "$pgtmp/primary" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$pgtmp/initdb.log"
	start_pg "$pgtmp/primary" "$p1"
	pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgtmp" -p "$p1" -U postgres -d postgres -c 'CREATE DATABASE app'
	# The exporter's role: in pg_monitor, which lets it read pg_stat_replication's and
	# pg_stat_wal_receiver's columns (the compose file's app user is the image's superuser);
	# the replication role and slot as ops/db/replica-start.sh makes them.
	pgsql "$p1" <<'SQL'
CREATE ROLE mex_exporter LOGIN PASSWORD 'exporter-pw' IN ROLE pg_monitor;
CREATE ROLE mex_repl LOGIN REPLICATION PASSWORD 'repl-pw';
SELECT FROM pg_create_physical_replication_slot('replica_db_replica');
CREATE TABLE t (id int PRIMARY KEY);
INSERT INTO t SELECT generate_series(1, 100);
DELETE FROM t WHERE id <= 50;
SQL
	PGPASSWORD=repl-pw pg "$pgbin/pg_basebackup" --pgdata="$pgtmp/standby" --host=127.0.0.1 --port="$p1" \
		--username=mex_repl --wal-method=stream --slot=replica_db_replica --write-recovery-conf --checkpoint=fast --no-password
	start_pg "$pgtmp/standby" "$p2"
	for i in $(seq 1 600); do
		[[ $(pgsql "$p1" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == 1 ]] && break
		sleep 0.2
		if ((i == 600)); then echo "capture: the standby never streamed: $(tail -5 "$pgtmp/standby.log")" >&2; return 1; fi
	done
	# One write after it streams: until the primary sends new WAL, the standby's
	# latest_end_lsn stays NULL and postgres_exporter leaves its WAL receiver out.
	pgsql "$p1" -c 'INSERT INTO t VALUES (1000)'
	for i in $(seq 1 600); do
		[[ $(pgsql "$p2" -c "SELECT count(*) FROM t WHERE id = 1000") == 1 &&
			$(pgsql "$p2" -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE latest_end_lsn IS NOT NULL") == 1 ]] && break
		sleep 0.2
		if ((i == 600)); then echo "capture: the standby never received the write" >&2; return 1; fi
	done

	# The collector flags of compose.monitoring.yaml's db-exporter and db-replica-exporter.
	local pgflags=(--collector.stat_wal_receiver)
	for role in primary replica; do
		port=$p1
		[[ $role == primary ]] || port=$p2
		web=$(free_port)
		DATA_SOURCE_URI="127.0.0.1:$port/app?sslmode=disable" DATA_SOURCE_USER=mex_exporter DATA_SOURCE_PASS=exporter-pw \
			"$bin/postgres_exporter" "${pgflags[@]}" --web.listen-address="127.0.0.1:$web" >"$tmp/postgres_exporter-$role.log" 2>&1 &
		pids+=($!)
		wait_http "http://127.0.0.1:$web/"
		sleep 1 # the first scrape after start may miss the stats collectors' tables
		name=postgres_exporter
		[[ $role == primary ]] || name=postgres_exporter-replica
		save "$name" 0.17.1 "${pgflags[*]}" "http://127.0.0.1:$web/metrics"
		if grep -q 'level=ERROR' "$tmp/postgres_exporter-$role.log"; then
			echo "capture: postgres_exporter ($role) logged errors:" >&2
			cat "$tmp/postgres_exporter-$role.log" >&2
			return 1
		fi
	done
	# What the replication rules read, on the side that has it.
	local want
	for want in 'postgres_exporter pg_stat_replication_pg_wal_lsn_diff' 'postgres_exporter pg_replication_slots_pg_wal_lsn_diff' \
		'postgres_exporter-replica pg_stat_wal_receiver_received_tli' 'postgres_exporter-replica pg_replication_is_replica'; do
		grep -q "^${want#* }[{ ]" "$out/${want%% *}-0.17.1.txt" || { echo "capture: ${want%% *}: no ${want#* }" >&2; return 1; }
	done
	pg "$pgbin/pg_ctl" -D "$pgtmp/standby" -w stop >/dev/null
	pg "$pgbin/pg_ctl" -D "$pgtmp/primary" -w stop >/dev/null
}

# --- Redis ------------------------------------------------------------------------------------
capture_redis() {
	redis-cli -p 6379 -n 0 SET mex:capture 1 >/dev/null
	web=$(free_port)
	"$bin/redis_exporter" --redis.addr=redis://127.0.0.1:6379 --web.listen-address="127.0.0.1:$web" >"$tmp/redis_exporter.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$web/health"
	save redis_exporter 1.74.0 "" "http://127.0.0.1:$web/metrics"
}

# --- node_exporter ----------------------------------------------------------------------------
# Real host paths (the container sees the host's through /host/*). The textfile directory is
# empty: the backup metrics are read from the generated scripts by the test.
capture_node() {
	mkdir -p "$tmp/textfile"
	web=$(free_port)
	"$bin/node_exporter" --path.procfs=/proc --path.sysfs=/sys --path.rootfs=/ \
		--collector.textfile.directory="$tmp/textfile" --web.listen-address="127.0.0.1:$web" >"$tmp/node_exporter.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$web/"
	save node_exporter 1.9.1 "" "http://127.0.0.1:$web/metrics"
}

# --- blackbox_exporter: its own metrics, and probes of a local HTTPS and a plain HTTP site ------
# The http_2xx module as generated for tls=none, and for tls=letsencrypt (fail_if_not_ssl) with
# TLS verification off, so that a self-signed local site yields the TLS series
# (probe_ssl_earliest_cert_expiry) a real certificate gives.
capture_blackbox() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 30 -subj /CN=localhost >/dev/null 2>&1
	site=$(free_port)
	mkdir -p "$tmp/www"
	echo ok >"$tmp/www/healthz"
	(cd "$tmp/www" && exec openssl s_server -quiet -accept "127.0.0.1:$site" -cert "$tmp/cert.pem" -key "$tmp/key.pem" -WWW >/dev/null 2>&1) &
	pids+=($!)
	plain=$(free_port)
	python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$plain" >/dev/null 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$plain/healthz"
	cat >"$tmp/blackbox.yml" <<'YAML'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      method: GET
      valid_status_codes: []
      follow_redirects: true
      preferred_ip_protocol: ip4
  http_2xx_tls:
    prober: http
    timeout: 5s
    http:
      method: GET
      valid_status_codes: []
      follow_redirects: true
      preferred_ip_protocol: ip4
      fail_if_not_ssl: true
      tls_config:
        insecure_skip_verify: true
YAML
	web=$(free_port)
	"$bin/blackbox_exporter" --config.file="$tmp/blackbox.yml" --web.listen-address="127.0.0.1:$web" >"$tmp/blackbox.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$web/-/healthy"
	save blackbox_exporter-probe 0.27.0 "" "http://127.0.0.1:$web/probe?module=http_2xx_tls&target=https%3A%2F%2F127.0.0.1%3A$site%2Fhealthz"
	save blackbox_exporter-probe-http 0.27.0 "" "http://127.0.0.1:$web/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A$plain%2Fhealthz"
	grep -q '^probe_success 1' "$out/blackbox_exporter-probe-0.27.0.txt" "$out/blackbox_exporter-probe-http-0.27.0.txt" ||
		{ echo "capture: a blackbox probe failed" >&2; exit 1; }
	save blackbox_exporter 0.27.0 "" "http://127.0.0.1:$web/metrics"
}

# --- cAdvisor: not a live scrape ----------------------------------------------------------------
# cAdvisor's cmd module (the binary) is not served by the module proxy here. Its library module
# (github.com/google/cadvisor/lib from v0.60) is: its own expected Prometheus output (every metric
# kind, a fake container) stands in.
capture_cadvisor() {
	cad=$(cd "$tmp" && go mod download -json github.com/google/cadvisor/lib@v0.60.5 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	{
		echo "# mex-exporter: cadvisor"
		echo "# mex-version: 0.60.5"
		echo "# mex-flags: --docker_only=true --store_container_labels=false --whitelisted_container_labels=com.docker.compose.project,com.docker.compose.service --disable_metrics=percpu,sched,tcp,udp,advtcp,process,hugetlb,referenced_memory,cpu_topology,resctrl,memory_numa,disk"
		echo "# mex-url: none: github.com/google/cadvisor/lib@v0.60.5 metrics/testdata/prometheus_metrics"
		cat "$cad/metrics/testdata/prometheus_metrics"
		# The fake container has no memory spec (Spec.HasMemory), which every Docker container has:
		# the series metrics/prometheus.go emits then, with the labels of the other spec series.
		grep -q 'NewDesc("container_spec_memory_limit_bytes"' "$cad/metrics/prometheus.go"
		labels=$(sed -n 's/^container_start_time_seconds\({[^}]*}\).*/\1/p' "$cad/metrics/testdata/prometheus_metrics")
		for m in container_spec_memory_limit_bytes container_spec_memory_reservation_limit_bytes container_spec_memory_swap_limit_bytes; do
			echo "# TYPE $m gauge"
			echo "$m$labels 0"
		done
	} >"$out/cadvisor-0.60.5.txt"
	echo "copied cadvisor-0.60.5.txt"
}

# --- The Go backend stub ------------------------------------------------------------------------
# Generated with the default answers and run against a database of the local PostgreSQL, as
# the project's app user (its owner, not a superuser); a few requests so that the request
# counter and histogram have series. (The Python and Node stubs expose the same names and
# labels: the backend contract test asserts them on each.)
capture_backend() {
	psql -h 127.0.0.1 -U postgres -d postgres -qv ON_ERROR_STOP=1 \
		-c "CREATE ROLE mex_app LOGIN PASSWORD 'app-pw'" -c 'CREATE DATABASE mex_capture OWNER mex_app' >/dev/null
	repo=$(cd "$out/../../../../.." && pwd)
	(cd "$repo" && go run ./cmd/opsready new --defaults --no-git --backend go --frontend none --db postgres --cache none "$tmp/proj" >/dev/null)
	(cd "$tmp/proj/backend" && go build -o "$tmp/backend-bin" .)
	web=$(free_port)
	# From its folder: the migrations are read from ./migrations.
	(cd "$tmp/proj/backend" && PORT=$web DB_HOST=127.0.0.1 DB_PORT=5432 DB_NAME=mex_capture DB_USER=mex_app DB_PASSWORD=app-pw \
		MIGRATE_ON_START=true exec "$tmp/backend-bin" >"$tmp/backend.log" 2>&1) &
	pids+=($!)
	wait_http "http://127.0.0.1:$web/readyz"
	curl -fsS -o /dev/null "http://127.0.0.1:$web/api/items"
	curl -sS -o /dev/null "http://127.0.0.1:$web/api/items/999999" || true
	curl -fsS -o /dev/null -H 'Content-Type: application/json' -d '{"name":"mex"}' "http://127.0.0.1:$web/api/items"
	save backend-go 1.3.1 "" "http://127.0.0.1:$web/metrics"
}

# --- Alertmanager and Prometheus ----------------------------------------------------------------
capture_prometheus() {
	am=$(free_port)
	cat >"$tmp/alertmanager.yml" <<'YAML'
route:
  receiver: webhook
receivers:
  - name: webhook
    webhook_configs:
      - url: http://127.0.0.1:9/
YAML
	/usr/local/bin/alertmanager --config.file="$tmp/alertmanager.yml" --storage.path="$tmp/am" \
		--cluster.listen-address= --web.listen-address="127.0.0.1:$am" >"$tmp/alertmanager.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$am/-/ready"
	save alertmanager 0.28.1 "" "http://127.0.0.1:$am/metrics"

	prom=$(free_port)
	mkdir -p "$tmp/prom/rules"
	cat >"$tmp/prom/rules/r.yml" <<'YAML'
groups:
  - name: g
    rules:
      - alert: Always
        expr: vector(1)
YAML
	cat >"$tmp/prom/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$am"]
rule_files: [rules/*.yml]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$prom"]
YAML
	"$bin/prometheus" --config.file="$tmp/prom/prometheus.yml" --storage.tsdb.path="$tmp/prom/data" \
		--web.listen-address="127.0.0.1:$prom" >"$tmp/prometheus.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$prom/-/ready"
	# Until the Alertmanager is discovered and an alert was sent (the per-Alertmanager series).
	for i in $(seq 1 150); do
		if curl -fsS "http://127.0.0.1:$prom/metrics" | grep -q '^prometheus_notifications_sent_total{'; then break; fi
		sleep 0.2
		if ((i == 150)); then echo "capture: Prometheus never sent an alert to Alertmanager" >&2; exit 1; fi
	done
	save prometheus 3.5.0 "" "http://127.0.0.1:$prom/metrics"
}

for part in "${parts[@]}"; do
	declare -F "capture_$part" >/dev/null || { echo "capture: no part $part (mysqld, postgres, redis, node, blackbox, cadvisor, backend, prometheus)" >&2; exit 2; }
done
for part in "${parts[@]}"; do "capture_$part"; done
