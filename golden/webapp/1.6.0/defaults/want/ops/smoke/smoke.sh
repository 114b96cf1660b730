#!/usr/bin/env bash
# Smoke test of defaults through its public entry point: every health endpoint, readiness,
# one write-then-read round trip of the items API and, when their URLs are given, the
# monitoring services. Prints one PASS, FAIL or SKIP line per check and exits 1 when any
# check failed (2 on a bad setting).
#
# Usage:
#   ops/smoke/smoke.sh                                  BASE_URL from the environment, .env or http://localhost:8080
#   BASE_URL='https://defaults.example.com' ops/smoke/smoke.sh    production, through Traefik
#   make smoke                                          development stack (ports found with `docker compose port`)
#
# Environment:
#   BASE_URL       entry point: Traefik in production; in development the frontend port
#   BACKEND_URL    where /readyz is checked (default BASE_URL: Traefik routes /readyz to the backend);
#                  when it differs from BASE_URL, the backend's own /healthz is checked there too
#   SMOKE_TIMEOUT  seconds allowed per request (default 10)
#   SMOKE_RETRIES  retries per request on refused connections, timeouts, 408, 429 and 5xx (default 5)
#   PROMETHEUS_URL, ALERTMANAGER_URL, GRAFANA_URL
#                  the monitoring services (compose.monitoring.yaml), which Traefik does not
#                  publish: each is checked only when set, e.g. through an SSH tunnel
#                  (PROMETHEUS_URL=http://localhost:9090 ALERTMANAGER_URL=http://localhost:9093
#                  GRAFANA_URL=http://localhost:3000); Prometheus and Alertmanager at /-/ready,
#                  Grafana at /api/health
# BASE_URL and the monitoring URLs may also be set in the project's .env.
#
# Each run creates one item named smoke-<timestamp>-<pid>.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# env_value KEY prints the value of KEY=VALUE in the project's .env (quotes removed).
env_value() {
  local line
  [ -f "$root/.env" ] || return 0
  line=$(grep -E "^[[:space:]]*$1=" "$root/.env" | tail -n 1) || return 0
  line=${line#*=}
  line=${line%\"}
  line=${line#\"}
  line=${line%\'}
  line=${line#\'}
  printf '%s' "$line"
}

base_url=${BASE_URL:-$(env_value BASE_URL)}
base_url=${base_url:-http://localhost:8080}
base_url=${base_url%/}
backend_url=${BACKEND_URL:-$base_url}
backend_url=${backend_url%/}
timeout=${SMOKE_TIMEOUT:-10}
retries=${SMOKE_RETRIES:-5}
prometheus_url=${PROMETHEUS_URL:-$(env_value PROMETHEUS_URL)}
alertmanager_url=${ALERTMANAGER_URL:-$(env_value ALERTMANAGER_URL)}
grafana_url=${GRAFANA_URL:-$(env_value GRAFANA_URL)}

if ! [[ $timeout =~ ^[1-9][0-9]*$ ]]; then
  printf 'smoke.sh: SMOKE_TIMEOUT=%s: want a whole number of seconds (at least 1)\n' "$timeout" >&2
  exit 2
fi
if ! [[ $retries =~ ^[0-9]+$ ]]; then
  printf 'smoke.sh: SMOKE_RETRIES=%s: want a whole number (0 or more)\n' "$retries" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checks=0
failures=0
unanswered=0
status=000

pass() {
  checks=$((checks + 1))
  printf 'PASS %s\n' "$1"
}

fail() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  printf 'FAIL %s: %s\n' "$1" "$2"
}

skip() {
  printf 'SKIP %s: %s\n' "$1" "$2"
}

# request METHOD URL [JSON] sends one request; the status goes to $status (000 when no
# response arrived, with curl's message in $tmp/err) and the body to $tmp/body.
request() {
  local args=(--silent --show-error --output "$tmp/body" --write-out '%{http_code}'
    --connect-timeout 5 --max-time "$timeout"
    --retry "$retries" --retry-delay 1 --retry-connrefused
    --request "$1" --header 'Accept: application/json')
  if [ $# -ge 3 ]; then
    args+=(--header 'Content-Type: application/json' --data "$3")
  fi
  : >"$tmp/body"
  if ! status=$(curl "${args[@]}" "$2" 2>"$tmp/err"); then
    status=000
  fi
}

# describe_failure prints why the last request did not give the expected answer.
describe_failure() {
  if [ "$status" = 000 ]; then
    printf 'no response (%s)' "$(tr -d '\r' <"$tmp/err" | head -n 1)"
  else
    printf 'status %s, body: %s' "$status" "$(head -c 200 "$tmp/body" | tr -d '\r\n')"
  fi
}

# expect_monitoring NAME URL PATH BODY_REGEX VAR checks one monitoring endpoint when its URL
# (from the variable VAR) is set.
expect_monitoring() {
  local name=$1 url=$2 path=$3 regex=$4 var=$5
  if [ -z "$url" ]; then
    skip "$name GET $path" "$var is not set"
    return 0
  fi
  expect "$name GET $path" 200 "$regex" GET "${url%/}$path" || true
}

# expect NAME WANT_STATUS BODY_REGEX METHOD URL [JSON] runs one check.
expect() {
  local name=$1 want=$2 regex=$3
  shift 3
  request "$@"
  if [ "$status" = 000 ]; then
    unanswered=$((unanswered + 1))
  fi
  if [ "$status" = "$want" ] && grep -Eqi -- "$regex" "$tmp/body"; then
    pass "$name"
    return 0
  fi
  fail "$name" "want $want matching /$regex/, got $(describe_failure)"
  return 1
}

printf 'smoke test of %s (readiness at %s)\n' "$base_url" "$backend_url"

# Through the proxy, /healthz is the frontend's (nginx); the backend's own /healthz is checked at BACKEND_URL.
expect "GET /healthz" 200 '.' GET "$base_url/healthz" || true
expect "GET / (frontend)" 200 '<html' GET "$base_url/" || true
if [ "$backend_url" != "$base_url" ]; then
  expect "GET /healthz (backend)" 200 '.' GET "$backend_url/healthz" || true
fi
expect "GET /readyz" 200 '"status"[[:space:]]*:[[:space:]]*"ok"' GET "$backend_url/readyz" || true
expect "GET /api/items" 200 '^[[:space:]]*\[' GET "$base_url/api/items" || true

name="smoke-$(date +%s)-$$"
if expect "POST /api/items" 201 "\"name\"[[:space:]]*:[[:space:]]*\"$name\"" \
  POST "$base_url/api/items" "{\"name\":\"$name\"}"; then
  id=$(tr -d '\r\n' <"$tmp/body" | sed -n 's/.*"id"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
  if [ -n "$id" ]; then
    expect "GET /api/items/$id" 200 "\"name\"[[:space:]]*:[[:space:]]*\"$name\"" \
      GET "$base_url/api/items/$id" || true
  else
    fail "GET /api/items/<id>" "the POST response has no numeric id: $(head -c 200 "$tmp/body")"
  fi
else
  fail "GET /api/items/<id>" "skipped: the item was not created"
fi

expect_monitoring "Prometheus" "$prometheus_url" /-/ready '.' PROMETHEUS_URL
expect_monitoring "Alertmanager" "$alertmanager_url" /-/ready '.' ALERTMANAGER_URL
expect_monitoring "Grafana" "$grafana_url" /api/health '"database"[[:space:]]*:[[:space:]]*"ok"' GRAFANA_URL

if [ "$failures" -gt 0 ]; then
  printf 'FAILED: %d of %d checks against %s\n' "$failures" "$checks" "$base_url"
  if [ "$unanswered" -gt 0 ]; then
    printf 'hint: %d request(s) got no response at all: is the stack running (make ps) and is BASE_URL right?\n' "$unanswered"
  fi
  exit 1
fi
printf 'OK: %d checks passed against %s\n' "$checks" "$base_url"
