#!/usr/bin/env bash
# Runs one k6 profile of ops/load and, while it runs, samples the CPU and memory of the
# containers of the compose project, for ops/load/quotas.py (`make quotas`).
#
# Usage: ops/load/run.sh smoke|load|stress      (or `make load PROFILE=...`)
#
# Environment:
#   BASE_URL       the entry point under test (default: BASE_URL in .env, else the published port
#                  of the development stack, else http://localhost:8080)
#   K6             the k6 program (default: k6 when installed, else docker run of K6_IMAGE)
#   K6_IMAGE       the pinned k6 image used without a local k6 (default grafana/k6:1.8.1)
#   COMPOSE        the compose command whose containers are sampled (default: docker compose;
#                  on the production host COMPOSE_FILE in .env names the production files)
#   SAMPLE_EVERY   seconds between two docker stats samples (default 5; 0 turns sampling off)
# The profiles' settings (SMOKE_*, LOAD_*, STRESS_*, SUMMARY_PATH; see README.md), the
# credentials (API_TOKEN, BASIC_AUTH_USER, BASIC_AUTH_PASSWORD) and k6's own K6_* options reach
# k6 as they are, in a container too.
#
# Writes ops/load/results/<profile>-summary.json (the profile's handleSummary) and
# ops/load/results/<profile>-docker-stats.jsonl (one `docker stats` JSON object per container
# and sample). Exits with k6's status: 99 when a threshold failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

profile=${1:-}
case $profile in
  smoke | load | stress) ;;
  *)
    printf 'run.sh: profile %s: want smoke, load or stress\n' "${profile:-(none)}" >&2
    exit 2
    ;;
esac
script=ops/load/$profile.js
if [ ! -f "$script" ]; then
  printf 'run.sh: %s does not exist\n' "$script" >&2
  exit 2
fi

env_value() {
  local line
  [ -f .env ] || return 0
  line=$(grep -E "^[[:space:]]*$1=" .env | tail -n 1) || return 0
  line=${line#*=}
  line=${line%\"}
  line=${line#\"}
  printf '%s' "$line"
}

k6_image=${K6_IMAGE:-grafana/k6:1.8.1}
every=${SAMPLE_EVERY:-5}
if ! [[ $every =~ ^[0-9]+$ ]]; then
  printf 'run.sh: SAMPLE_EVERY=%s: want a whole number of seconds\n' "$every" >&2
  exit 2
fi
read -r -a compose <<<"${COMPOSE:-docker compose}"

# BASE_URL: the environment, else .env, else the development stack's published port
# (the frontend, which proxies /api, or the backend), else http://localhost:8080.
BASE_URL=${BASE_URL:-$(env_value BASE_URL)}
if [ -z "$BASE_URL" ] && command -v docker >/dev/null 2>&1; then
  for service in frontend backend; do
    if port=$("${compose[@]}" port "$service" 8080 2>/dev/null) && [ -n "$port" ]; then
      BASE_URL=http://$port
      break
    fi
  done
fi
BASE_URL=${BASE_URL:-http://localhost:8080}
export BASE_URL
printf 'k6 profile %s against %s\n' "$profile" "$BASE_URL"

results=ops/load/results
mkdir -p "$results"
summary=${SUMMARY_PATH:-$results/$profile-summary.json}
samples=$results/$profile-docker-stats.jsonl
rm -f "$summary" "$samples"

sampler=
stop_sampler() {
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=
  fi
}
trap stop_sampler EXIT

ids=()
if [ "$every" -gt 0 ] && command -v docker >/dev/null 2>&1; then
  mapfile -t ids < <("${compose[@]}" ps -q 2>/dev/null || true)
fi
if [ "${#ids[@]}" -gt 0 ]; then
  printf 'sampling %d containers every %ss into %s\n' "${#ids[@]}" "$every" "$samples"
  (
    while :; do
      docker stats --no-stream --format '{{json .}}' "${ids[@]}" >>"$samples" 2>/dev/null || true
      sleep "$every"
    done
  ) &
  sampler=$!
else
  printf 'no running containers of this compose project (or no docker): resources not sampled;\n' >&2
  printf 'export them from Prometheus instead (ops/load/README.md)\n' >&2
fi

# Variables forwarded to k6 in a container.
forward=(-e BASE_URL)
while IFS='=' read -r name _; do
  case $name in
    K6_* | SMOKE_* | LOAD_* | STRESS_* | SUMMARY_PATH | API_TOKEN | BASIC_AUTH_USER | BASIC_AUTH_PASSWORD)
      forward+=(-e "$name")
      ;;
  esac
done < <(env)

rc=0
if [ -n "${K6:-}" ]; then
  read -r -a k6 <<<"$K6"
  "${k6[@]}" run "$script" || rc=$?
elif command -v k6 >/dev/null 2>&1; then
  k6 run "$script" || rc=$?
elif command -v docker >/dev/null 2>&1; then
  # Host networking so that localhost is this host; the summary is written into the bind mount.
  docker run --rm -i --network host -u "$(id -u):$(id -g)" -v "$root:/work" -w /work \
    "${forward[@]}" "$k6_image" run "$script" || rc=$?
else
  printf 'run.sh: neither k6 nor docker is installed (https://grafana.com/docs/k6/latest/set-up/install-k6/)\n' >&2
  exit 2
fi
stop_sampler

if [ -f "$summary" ]; then
  printf 'summary: %s\n' "$summary"
else
  printf 'run.sh: k6 wrote no %s\n' "$summary" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
[ ! -s "$samples" ] || printf 'resource samples: %s (%s lines)\n' "$samples" "$(wc -l <"$samples")"
exit "$rc"
