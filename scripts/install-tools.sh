#!/usr/bin/env bash
# Installs what opsready's tests use on a Debian machine: the programs that consume the
# generated files (shellcheck, logrotate, nginx, ...), the runtimes of the backend stubs, and
# PostgreSQL, MariaDB and Redis, started where they are not already running. Idempotent.
set -euo pipefail

# Programs: installed from the named package when the command is missing.
commands=(
  shellcheck:shellcheck logrotate:logrotate nginx:nginx git:git make:make
  node:nodejs npm:npm /usr/bin/python3:python3
  psql:postgresql-client pg_ctlcluster:postgresql mariadb:mariadb-client mariadbd:mariadb-server
  redis-server:redis-server redis-cli:redis-tools
  promtool:prometheus prometheus:prometheus
  prometheus-blackbox-exporter:prometheus-blackbox-exporter
  restic:restic pgbackrest:pgbackrest mariadb-backup:mariadb-backup jq:jq flock:util-linux
  sysbench:sysbench
)
# Libraries for the Python backend stub's tests (Debian's python3; PyPI is not used).
libraries=(
  python3-fastapi python3-uvicorn python3-psycopg python3-pymysql python3-redis
  python3-prometheus-client python3-httpx python3-pytest python3-psycopg-pool
)

missing=()
for pair in "${commands[@]}"; do
  cmd=${pair%%:*}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${pair#*:}")
done
for p in "${libraries[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do listening "$1" && return 0; sleep 0.5; done
  echo "$2 did not start on 127.0.0.1:$1" >&2
  return 1
}

if ! listening 5432; then
  echo "starting PostgreSQL"
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi
if ! listening 3306; then
  echo "starting MariaDB"
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 MariaDB
fi
if ! listening 6379; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi
# Alertmanager and amtool 0.28, the version the generated compose file pins: Debian's 0.25
# rejects the *_file credential fields (bot_token_file, url_file) the generated config uses.
# Built through the Go module proxy; the version is stamped so the check above can read it.
am_version=0.28.1
if [[ "$(amtool --version 2>&1)" != *"version $am_version "* ||
  "$(alertmanager --version 2>&1)" != *"version $am_version "* ]]; then
  echo "installing amtool and alertmanager $am_version (go install)"
  GOBIN=/usr/local/bin go install -ldflags="-X github.com/prometheus/common/version.Version=$am_version" \
    "github.com/prometheus/alertmanager/cmd/amtool@v$am_version" \
    "github.com/prometheus/alertmanager/cmd/alertmanager@v$am_version"
fi

# k6 for the generated load tests (not in Debian).
k6_version=1.8.1
if [[ "$(k6 version 2>&1)" != *"v$k6_version"* ]]; then
  echo "installing k6 $k6_version (go install, about 2 minutes)"
  GOBIN=/usr/local/bin go install "go.k6.io/k6@v$k6_version"
fi

# actionlint for the generated GitHub workflows (it runs shellcheck on their run: blocks).
if [[ "$(actionlint -version 2>&1)" != *"1.7.12"* ]]; then
  echo "installing actionlint 1.7.12 (go install)"
  GOBIN=/usr/local/bin go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
fi

echo "tools ready"
