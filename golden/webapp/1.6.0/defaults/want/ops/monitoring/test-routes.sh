#!/usr/bin/env bash
# Checks the Alertmanager configuration and its routing: `amtool check-config` on
# monitoring/alertmanager/alertmanager.yml, then one `amtool config routes test` per line of
# monitoring/alertmanager/route-tests.txt (expected receiver, then the alert's labels).
# Prints one PASS or FAIL line per case and exits 1 when any failed.
#
# Usage:
#   ops/monitoring/test-routes.sh            (or `make alerts-test`)
#
# Environment:
#   AMTOOL   the amtool command, v0.28 or newer (default: amtool). It may hold arguments, e.g.
#            AMTOOL="docker run --rm -v $PWD:$PWD -w $PWD --entrypoint amtool prom/alertmanager:<tag>"
#            (paths are passed relative to the repository root, the working directory).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
config=monitoring/alertmanager/alertmanager.yml
cases=monitoring/alertmanager/route-tests.txt

read -r -a amtool <<<"${AMTOOL:-amtool}"
if ! command -v "${amtool[0]}" >/dev/null 2>&1; then
  echo "${amtool[0]} is not installed: install amtool v0.28 or newer, or set AMTOOL" >&2
  exit 2
fi

if ! "${amtool[@]}" check-config "$config"; then
  echo "FAIL $config (an amtool older than v0.26 does not know url_file and bot_token_file)" >&2
  exit 1
fi

failed=0 total=0
while read -r want labels; do
  case "$want" in '' | '#'*) continue ;; esac
  total=$((total + 1))
  # shellcheck disable=SC2086 # the labels are separate words
  if got=$("${amtool[@]}" config routes test --config.file="$config" --verify.receivers="$want" $labels 2>&1); then
    echo "PASS $labels -> $want"
  else
    echo "FAIL $labels -> $want, got: $got"
    failed=$((failed + 1))
  fi
done <"$cases"

if [ "$total" -eq 0 ]; then
  echo "FAIL no route tests in $cases" >&2
  exit 1
fi
echo "$((total - failed)) of $total route tests passed"
[ "$failed" -eq 0 ]
