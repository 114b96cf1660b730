#!/usr/bin/env bash
# Reports the production-acceptance checklist of docs/production-acceptance.md: one line per
# item, MET, NOT MET or UNKNOWN (could not be verified from here), with the evidence checked.
# `make check` runs it last.
#
# Usage:
#   ops/acceptance/check.sh            report; exits 0 whatever the statuses
#   ops/acceptance/check.sh --strict   exits 1 unless every item is MET
#
# Environment: PROMTOOL, AMTOOL (the tools, default promtool and amtool; either may be a
# `docker run ...` command line), LOGROTATE (default logrotate).
set -euo pipefail

strict=0
case ${1:-} in
  "") ;;
  --strict) strict=1 ;;
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    printf 'check.sh: unknown argument %s (want --strict)\n' "$1" >&2
    exit 2
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

read -r -a promtool <<<"${PROMTOOL:-promtool}"
read -r -a amtool <<<"${AMTOOL:-amtool}"
logrotate=${LOGROTATE:-logrotate}
compose_files=(compose.yaml compose.prod.yaml compose.monitoring.yaml compose.backup.yaml)
checklist=docs/production-acceptance.md
capacity=docs/capacity.md

met=0
not_met=0
unknown=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# report STATUS TITLE EVIDENCE...: one item, its status and the evidence lines.
report() {
  local status=$1 title=$2 line
  shift 2
  case $status in
    MET) met=$((met + 1)) ;;
    "NOT MET") not_met=$((not_met + 1)) ;;
    *) unknown=$((unknown + 1)) ;;
  esac
  printf '%-8s %s\n' "$status" "$title"
  for line in "$@"; do
    printf '         - %s\n' "$line"
  done
}

have() { command -v "$1" >/dev/null 2>&1; }

# service_keys prints "service key" for each second-level key of each service of the compose
# files that exist (a service defined in several files appears once per file).
service_keys() {
  local f
  for f in "${compose_files[@]}"; do
    [ -f "$f" ] || continue
    awk '
      /^[^[:space:]#]/ { in_services = ($0 ~ /^services:/); next }
      in_services && /^  [A-Za-z0-9_.-]+:/ { svc = $1; sub(/:.*/, "", svc); print svc, "-"; next }
      in_services && /^    [A-Za-z_]+:/ { key = $1; sub(/:.*/, "", key); print svc, key }
    ' "$f"
  done
}

# services_without KEY prints the services none of whose blocks has KEY.
services_without() {
  service_keys | awk -v want="$1" '
    { seen[$1] = 1; if ($2 == want) has[$1] = 1 }
    END { for (s in seen) if (!(s in has)) print s }
  ' | sort
}

# secret_files prints the files under secrets/ that the compose files mount and the backup
# jobs read (their *_FILE settings in ops/backup/backup.env).
secret_files() {
  local f
  {
    for f in "${compose_files[@]}"; do
      [ -f "$f" ] || continue
      grep -oE 'file: *\./secrets/[A-Za-z0-9_.-]+' "$f" | sed 's#.*\./##' || true
    done
    if [ -f ops/backup/backup.env ]; then
      grep -oE '^[A-Z0-9_]+_FILE=secrets/[A-Za-z0-9_.-]+' ops/backup/backup.env | sed 's#^[^=]*=##' || true
    fi
  } | sort -u
}

# limits FILE prints "service cpus memory" for every service of FILE with resource limits, its
# own or those of the x- anchor it refers to (`resources: *resources`).
limits() {
  awk '
    /^[^[:space:]#]/ {
      in_services = ($0 ~ /^services:/); anchor = ""
      if (match($0, /&[A-Za-z0-9_-]+/)) anchor = substr($0, RSTART + 1, RLENGTH - 1)
      next
    }
    { v = $2; gsub(/"/, "", v) }
    !in_services && anchor != "" && $1 == "cpus:" { acpu[anchor] = v }
    !in_services && anchor != "" && $1 == "memory:" { amem[anchor] = v }
    in_services && /^  [A-Za-z0-9_.-]+:/ { svc = $1; sub(/:.*/, "", svc); next }
    in_services && $1 == "resources:" && v ~ /^\*/ { ref[svc] = substr(v, 2) }
    in_services && $1 == "cpus:" { cpu[svc] = v }
    in_services && $1 == "memory:" { mem[svc] = v }
    END {
      for (s in ref) { if (!(s in cpu)) cpu[s] = acpu[ref[s]]; if (!(s in mem)) mem[s] = amem[ref[s]] }
      for (s in cpu) print s, cpu[s], mem[s]
    }
  ' "$1"
}

# mib SIZE prints a compose memory size (512m, 1g, 1.5GB, 1048576) in MiB.
mib() {
  awk -v s="$1" 'BEGIN {
    s = tolower(s); sub(/i?b$/, "", s)
    n = s + 0; u = substr(s, length(s))
    if (u == "k") n /= 1024; else if (u == "g") n *= 1024; else if (u != "m") n /= 1048576
    printf "%.1f\n", n
  }'
}

in_git=0
if have git && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  in_git=1
fi

printf 'Production acceptance of %s (%s)\n\n' "$(basename "$root")" "$checklist"

# ---- 1. metrics and alert triggers
title="1. Metrics and alert triggers defined and tested"
ev=()
status=MET
shopt -s nullglob
rules=(monitoring/prometheus/rules/*.yml)
tests=(monitoring/prometheus/tests/*.test.yml)
shopt -u nullglob
if [ "${#rules[@]}" -eq 0 ]; then
  status="NOT MET"
  ev+=("no alert rules in monitoring/prometheus/rules/")
else
  alerts=$(cat "${rules[@]}" | grep -cE '^[[:space:]]*- alert:' || true)
  ev+=("${#rules[@]} rule files with $alerts alerts, ${#tests[@]} promtool test files")
  for r in "${rules[@]}"; do
    t=monitoring/prometheus/tests/$(basename "$r" .yml).test.yml
    if [ ! -f "$t" ]; then
      status="NOT MET"
      ev+=("$r has no unit test $t")
    fi
  done
  if have "${promtool[0]}"; then
    if "${promtool[@]}" check rules "${rules[@]}" >"$tmp/promtool" 2>&1 &&
      "${promtool[@]}" test rules "${tests[@]}" >>"$tmp/promtool" 2>&1; then
      ev+=("promtool check rules and test rules: passed")
    else
      status="NOT MET"
      ev+=("promtool check rules / test rules failed: $(grep -m1 -iE 'fail|error' "$tmp/promtool" || tail -n 1 "$tmp/promtool")")
    fi
  else
    [ "$status" = MET ] && status=UNKNOWN
    ev+=("promtool is not installed: the rule tests were not run (make alerts-test)")
  fi
  if have "${amtool[0]}"; then
    if AMTOOL="${amtool[*]}" ops/monitoring/test-routes.sh >"$tmp/amtool" 2>&1; then
      ev+=("Alertmanager configuration and route tests (amtool): passed")
    else
      status="NOT MET"
      ev+=("Alertmanager route tests failed: $(grep -m1 FAIL "$tmp/amtool" || tail -n 1 "$tmp/amtool")")
    fi
  else
    [ "$status" = MET ] && status=UNKNOWN
    ev+=("amtool is not installed: the Alertmanager routes were not tested")
  fi
fi
report "$status" "$title" "${ev[@]}"

# ---- 2. runbooks
title="2. Runbooks for every alert"
ev=()
status=MET
if [ "${#rules[@]}" -eq 0 ]; then
  status="NOT MET"
  ev+=("no alert rules, so no runbooks to check")
else
  missing=()
  urls=0
  for r in "${rules[@]}"; do
    n_alerts=$(grep -cE '^[[:space:]]*- alert:' "$r" || true)
    n_urls=$(grep -cE '^[[:space:]]*runbook_url:' "$r" || true)
    urls=$((urls + n_urls))
    if [ "$n_urls" -lt "$n_alerts" ]; then
      missing+=("$r: $((n_alerts - n_urls)) alert(s) without runbook_url")
    fi
    while IFS= read -r page; do
      [ -f "docs/runbooks/$page" ] || missing+=("docs/runbooks/$page (linked from $r)")
    done < <(grep -oE 'docs/runbooks/[A-Za-z0-9_.-]+\.md' "$r" | sed 's#^docs/runbooks/##' | sort -u)
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    ev+=("$urls runbook_url annotations, every linked page exists in docs/runbooks/")
  else
    status="NOT MET"
    ev+=("${missing[@]}")
  fi
fi
report "$status" "$title" "${ev[@]}"

# ---- 3. backups and restore test
# Met when the newest restore test of every store in BACKUP_STORES passed: restore-test.log
# and its rotated copies (logrotate compresses them) hold one line per store and run.
title="3. Backups configured and a restore test passed"
ev=()
status=MET
backup_env=ops/backup/backup.env
restore_log=${RESTORE_TEST_LOG:-var/log/ops/restore-test.log}
if [ ! -f "$backup_env" ]; then
  status="NOT MET"
  ev+=("no backup job in this repository ($backup_env is missing)")
else
  stores=$(sed -n 's/^BACKUP_STORES=//p' "$backup_env" | tr -d "'\"" | tr ' ' '\n' | sed 's/:.*//' | grep . || true)
  if [ -z "$stores" ]; then
    status="NOT MET"
    ev+=("$backup_env lists no stores (BACKUP_STORES)")
  fi
  shopt -s nullglob
  logs=("$restore_log" "$restore_log".*)
  shopt -u nullglob
  # ISO timestamps first: sorting the lines of every copy orders them by time.
  for f in "${logs[@]}"; do
    [ -f "$f" ] && gzip -cdf "$f"
  done 2>/dev/null | sort >"$tmp/restore-test" || true
  # The off-site credentials `opsready new` created empty.
  empty=()
  while IFS= read -r s; do
    [ -s "$s" ] || empty+=("$s")
  done < <(grep -oE '^BACKUP_(S3|SFTP)_[A-Z_]+_FILE=secrets/[A-Za-z0-9_.-]+' "$backup_env" | sed 's#^[^=]*=##' || true)
  if [ "${#empty[@]}" -gt 0 ]; then
    status="NOT MET"
    ev+=("off-site credentials still empty: ${empty[*]} (docs/backup-policy.md)")
  fi
  # The off-site copy: none, or a directory on the file system of this host's backups (the
  # default offsite=local is a plain directory until a disk or share is mounted there), is lost
  # together with the host.
  offsite=$(sed -n 's/^BACKUP_OFFSITE_REPOSITORY=//p' "$backup_env" | tail -n 1 | sed "s/^'\(.*\)'\$/\1/")
  backups_dir=var/backups
  [ -d "$backups_dir" ] || backups_dir=.
  if [ -z "$offsite" ]; then
    status="NOT MET"
    ev+=("no off-site copy (BACKUP_OFFSITE_REPOSITORY is empty): a lost host loses every backup (docs/backup-policy.md)")
  elif [[ $offsite == *:* ]]; then
    ev+=("off-site copy: $offsite")
  elif [ ! -d "$offsite" ]; then
    status="NOT MET"
    ev+=("the off-site directory $offsite does not exist on this host: mount the other disk or network share there (docs/backup-policy.md)")
  elif [ "$(stat -c %d "$offsite")" = "$(stat -c %d "$backups_dir")" ]; then
    status="NOT MET"
    ev+=("the off-site directory $offsite is on this host's own file system, the same as $backups_dir: a lost host loses it with every backup; mount another disk or a network share there, or use offsite=s3 or sftp")
  else
    ev+=("off-site copy: $offsite, a file system of its own ($(df -P "$offsite" | awk 'NR == 2 { print $1 }'))")
  fi
  for store in $stores; do
    last=$(grep -E "^[^ ]+ store=$store result=" "$tmp/restore-test" | tail -n 1 || true)
    if [ -z "$last" ]; then
      status="NOT MET"
      ev+=("$store: no restore test recorded in $restore_log: run make restore-test")
    elif printf '%s\n' "$last" | grep -q " result=passed "; then
      ev+=("$store: the last restore test passed: $(printf '%s\n' "$last" | cut -c1-110)")
    else
      status="NOT MET"
      ev+=("$store: the last restore test failed: $(printf '%s\n' "$last" | cut -c1-110) (docs/runbooks/restore-test-failed.md)")
    fi
  done
fi
report "$status" "$title" "${ev[@]}"

# ---- 4. log rotation
title="4. Log rotation everywhere"
ev=()
status=MET
without=$(services_without logging | paste -sd ' ' -)
if [ -n "$without" ]; then
  status="NOT MET"
  ev+=("services without a logging driver with max-size/max-file: $without")
else
  ev+=("every compose service has logging (json-file, max-size and max-file)")
fi
conf=ops/logrotate/app.conf
if [ ! -f "$conf" ]; then
  status="NOT MET"
  ev+=("$conf is missing: host-side logs are not rotated")
else
  for path in var/log/traefik var/log/ops; do
    grep -q "$path" "$conf" || {
      status="NOT MET"
      ev+=("$conf does not rotate $path")
    }
  done
  if have "$logrotate"; then
    # `su root root` needs root: unprivileged, check a copy without it (as `make check` does).
    c=$conf
    if [ "$(id -u)" -ne 0 ]; then
      sed '/^[[:space:]]*su /d' "$conf" >"$tmp/app.conf"
      c=$tmp/app.conf
    fi
    if "$logrotate" -d -s "$tmp/state" "$c" >"$tmp/logrotate" 2>&1 && ! grep -qi '^error' "$tmp/logrotate"; then
      ev+=("$conf: logrotate -d passed (Traefik access log, ops logs)")
    else
      status="NOT MET"
      ev+=("$conf: logrotate -d failed: $(grep -m1 -i error "$tmp/logrotate" || tail -n 1 "$tmp/logrotate")")
    fi
  else
    [ "$status" = MET ] && status=UNKNOWN
    ev+=("logrotate is not installed: $conf not validated")
  fi
  if [ -f /etc/logrotate.d/"$(basename "$root")" ]; then
    ev+=("installed on this host as /etc/logrotate.d/$(basename "$root")")
  fi
fi
report "$status" "$title" "${ev[@]}"

# ---- 5. quotas from a load test
title="5. Quotas set from a load test"
ev=()
status=MET
if [ ! -f "$capacity" ]; then
  status="NOT MET"
  ev+=("$capacity is missing")
else
  awk '/<!-- quotas:end -->/ { on = 0 } on { print } /<!-- quotas:begin -->/ { on = 1 }' "$capacity" >"$tmp/measured"
  if ! grep -q '^| service |' "$tmp/measured"; then
    status="NOT MET"
    ev+=("$capacity has no measurements: run make load PROFILE=load, then make quotas")
  elif grep -q 'Not trustworthy' "$tmp/measured" || ! grep -q '^Thresholds: passed' "$tmp/measured"; then
    status="NOT MET"
    ev+=("$capacity: the recorded load test did not meet its thresholds")
  else
    ev+=("$capacity has measurements: $(grep -m1 '^Load test:' "$tmp/measured" | cut -c1-120)")
  fi
  # Every measured service must have at least the limits the rule proposes.
  below=()
  checked=0
  while IFS='|' read -r _ svc _ _ _ want_cpus want_mem file _; do
    svc=$(echo "$svc" | tr -d ' ')
    want_cpus=$(echo "$want_cpus" | tr -d ' ')
    want_mem=$(echo "$want_mem" | tr -d ' ')
    file=$(echo "$file" | tr -d ' ')
    [ -f "$file" ] || continue
    checked=$((checked + 1))
    read -r have_cpus have_mem < <(limits "$file" | awk -v s="$svc" '$1 == s { print $2, $3 }') || true
    if [ -z "${have_cpus:-}" ] || [ -z "${have_mem:-}" ]; then
      below+=("$svc has no limits in $file (proposed cpus $want_cpus, memory $want_mem)")
    elif awk -v h="$have_cpus" -v w="$want_cpus" -v hm="$(mib "$have_mem")" -v wm="$(mib "$want_mem")" \
      'BEGIN { exit !(h + 0 < w + 0 || hm + 0 < wm + 0) }'; then
      below+=("$svc in $file: cpus $have_cpus, memory $have_mem; the measurements need cpus $want_cpus, memory $want_mem")
    fi
    have_cpus=
    have_mem=
  done < <(grep -E '^\| [A-Za-z0-9_.-]+ \| [0-9]+ \|' "$tmp/measured" || true)
  if [ "${#below[@]}" -gt 0 ]; then
    status="NOT MET"
    ev+=("${below[@]}")
  elif [ "$checked" -gt 0 ]; then
    ev+=("the limits of all $checked measured services are at least what the measurements need")
  fi
  cpus=$(awk '/^x-resources:/ { on = 1; next } /^[^[:space:]]/ { on = 0 } on && $1 == "cpus:" { gsub(/"/, "", $2); print $2; exit }' compose.prod.yaml)
  mem=$(awk '/^x-resources:/ { on = 1; next } /^[^[:space:]]/ { on = 0 } on && $1 == "memory:" { gsub(/"/, "", $2); print $2; exit }' compose.prod.yaml)
  if [ -z "$cpus" ] || [ -z "$mem" ]; then
    status="NOT MET"
    ev+=("compose.prod.yaml has no x-resources limits")
  elif grep -qF "Default limits (\`x-resources\` in compose.prod.yaml): cpus \`$cpus\`, memory \`$mem\`." "$capacity"; then
    ev+=("compose.prod.yaml limits (cpus $cpus, memory $mem) are the ones recorded in $capacity")
  else
    status="NOT MET"
    ev+=("compose.prod.yaml limits (cpus $cpus, memory $mem) differ from the Default limits line of $capacity")
  fi
fi
report "$status" "$title" "${ev[@]}"

# ---- 6. healthchecks
title="6. Healthchecks on every service"
without=$(services_without healthcheck | paste -sd ' ' -)
n=$(service_keys | awk '{ print $1 }' | sort -u | wc -l | tr -d ' ')
if [ -n "$without" ]; then
  report "NOT MET" "$title" "services without a healthcheck: $without"
else
  report MET "$title" "all $n compose services declare a healthcheck (the one-shot migrate, grant and backup jobs disable it on purpose)" \
    "the backend serves /healthz and /readyz; ops/smoke/smoke.sh checks them through the proxy"
fi

# ---- 7. secrets out of the repository
title="7. Secrets out of the repository"
ev=()
status=MET
for pattern in secrets/ .env; do
  grep -qxF "$pattern" .gitignore 2>/dev/null || {
    status="NOT MET"
    ev+=(".gitignore does not ignore $pattern")
  }
done
mapfile -t secrets < <(secret_files)
ev+=("compose and the backup jobs use ${#secrets[@]} secret files: ${secrets[*]}")
if [ "$in_git" -eq 1 ]; then
  tracked=$(git ls-files -- secrets .env | paste -sd ' ' -)
  if [ -n "$tracked" ]; then
    status="NOT MET"
    ev+=("committed to git: $tracked")
  else
    ev+=("git tracks nothing under secrets/ and no .env")
  fi
fi
leaks=()
for s in "${secrets[@]}"; do
  [ -f "$s" ] || continue
  value=$(head -c 4096 "$s" | tr -d '\r\n')
  [ "${#value}" -ge 8 ] || continue
  if [ "$in_git" -eq 1 ]; then
    found=$(git grep -lF -e "$value" -- . ':!secrets' 2>/dev/null | paste -sd ' ' - || true)
  else
    found=$(grep -rlF --exclude-dir=secrets --exclude-dir=.git --exclude-dir=node_modules -e "$value" . 2>/dev/null | paste -sd ' ' - || true)
  fi
  [ -z "$found" ] || leaks+=("the value of $s appears in: $found")
done
if [ "${#leaks[@]}" -gt 0 ]; then
  status="NOT MET"
  ev+=("${leaks[@]}")
else
  ev+=("no secret value appears in any other file")
fi
if [ -d secrets ] && [ "$(stat -c %a secrets 2>/dev/null || echo 700)" != 700 ]; then
  ev+=("warning: secrets/ is not mode 0700")
fi
report "$status" "$title" "${ev[@]}"

# ---- 8. CI green
title="8. CI green"
ci=()
shopt -s nullglob
for f in .github/workflows/*.yml .gitlab-ci.yml; do
  [ -f "$f" ] && ci+=("$f")
done
shopt -u nullglob
if [ "${#ci[@]}" -eq 0 ]; then
  report "NOT MET" "$title" "no CI pipeline (.github/workflows/ or .gitlab-ci.yml)"
else
  report UNKNOWN "$title" "pipelines defined: ${ci[*]}" \
    "whether the last run of the default branch passed is on the CI server: check it there"
fi

# ---- 9. on-call contacts
title="9. On-call contacts"
ev=()
status=MET
if [ ! -f "$checklist" ]; then
  status="NOT MET"
  ev+=("$checklist is missing")
else
  awk '/^## / { on = ($0 ~ /On-call contacts/) } on' "$checklist" >"$tmp/oncall"
  if ! grep -q '^| ' "$tmp/oncall"; then
    status="NOT MET"
    ev+=("$checklist has no On-call contacts table")
  elif grep '^| ' "$tmp/oncall" | grep -q 'TODO'; then
    status="NOT MET"
    ev+=("$checklist, On-call contacts: $(grep '^| ' "$tmp/oncall" | grep -c 'TODO') rows still TODO")
  else
    ev+=("$checklist lists the on-call contacts")
  fi
fi
empty=()
for s in secrets/smtp_password secrets/telegram_bot_token secrets/alert_webhook_url secrets/deadman_url; do
  printf '%s\n' "${secrets[@]}" | grep -qxF "$s" || continue
  [ -s "$s" ] || empty+=("$s")
done
if [ "${#empty[@]}" -gt 0 ]; then
  status="NOT MET"
  ev+=("alert channel credentials still empty: ${empty[*]}")
else
  ev+=("the alert channel credentials are filled in")
fi
report "$status" "$title" "${ev[@]}"

# ---- 10. postmortem process
title="10. Postmortem process"
ev=()
status=MET
if [ -f docs/postmortem-template.md ]; then
  ev+=("docs/postmortem-template.md exists")
else
  status="NOT MET"
  ev+=("docs/postmortem-template.md is missing")
fi
if [ -f "$checklist" ] && grep -qE '^## ([0-9]+\. )?Postmortem process' "$checklist"; then
  ev+=("$checklist, Postmortem process: when one is written, who reviews it, where actions are tracked")
else
  status="NOT MET"
  ev+=("$checklist has no Postmortem process section")
fi
report "$status" "$title" "${ev[@]}"

total=$((met + not_met + unknown))
printf '\n%d items: %d met, %d not met, %d unknown\n' "$total" "$met" "$not_met" "$unknown"
if [ "$strict" -eq 1 ] && [ "$met" -ne "$total" ]; then
  printf 'check.sh --strict: not every acceptance item is met\n' >&2
  exit 1
fi
exit 0
