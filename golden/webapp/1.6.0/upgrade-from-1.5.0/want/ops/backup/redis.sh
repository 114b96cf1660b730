#!/usr/bin/env bash
# Redis: an RDB snapshot taken after a BGSAVE that included the canary key has completed,
# checked with redis-check-rdb and stored with restic (encrypted, copied off-site).
#
# Usage: ops/backup/redis.sh backup|restore-test|restore|list|prune [OPTIONS]
#   restore --help prints the options of the disaster path.
#
# Settings (environment, defaults in ops/backup/backup.env): REDIS_HOST, REDIS_PORT,
# REDIS_PASSWORD_FILE (empty: no AUTH), REDIS_DATA_DIR (the cache's data directory when it
# is mounted here, e.g. the compose volume in the backup container: the RDB is copied from
# there; unset: the RDB is fetched over the connection with `redis-cli --rdb`),
# REDIS_SAVE_TIMEOUT (seconds a BGSAVE may take, default 600).
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

STORE=redis
KIND=full
CANARY_KEY=opsready:backup-canary
: "${REDIS_HOST:=127.0.0.1}"
: "${REDIS_PORT:=6379}"
: "${REDIS_PASSWORD_FILE:=}"
: "${REDIS_DATA_DIR:=}"
: "${REDIS_SAVE_TIMEOUT:=600}"
[[ -z $REDIS_DATA_DIR ]] || REDIS_DATA_DIR=$(abs "$REDIS_DATA_DIR")

# redis_auth: the password for redis-cli in REDISCLI_AUTH (never on a command line).
redis_auth() {
	if [[ -n $REDIS_PASSWORD_FILE ]]; then
		local file
		file=$(secret_path REDIS_PASSWORD_FILE "")
		REDISCLI_AUTH=$(read_secret "$file")
		export REDISCLI_AUTH
	else
		unset REDISCLI_AUTH
	fi
}

# rcli ARGS...: redis-cli against the live cache. redis-cli exits 0 on error replies, so
# callers check what it prints.
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

# info_field TEXT NAME: the value of NAME: in the output of INFO.
info_field() { printf '%s\n' "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

# keyspace_json TEXT: {"db0": keys, ...} from the keyspace section of INFO.
keyspace_json() {
	printf '%s\n' "$1" | tr -d '\r' | sed -n 's/^\(db[0-9]*\):keys=\([0-9]*\),.*/\1 \2/p' |
		jq -R -n '[inputs | split(" ") | {key: .[0], value: (.[1] | tonumber)}] | from_entries'
}

# older_than A B: whether version A's major.minor is below B's. A Redis reads the RDB format of
# its own and older versions only (7.0: RDB 10, 7.2: 11, 7.4: 12).
older_than() {
	local a b
	a=$(cut -d. -f1,2 <<<"$1") b=$(cut -d. -f1,2 <<<"$2")
	[[ $a != "$b" && $(printf '%s\n%s\n' "$a" "$b" | sort -V | head -n 1) == "$a" ]]
}

# rdb_keys FILE: the number of keys redis-check-rdb reads from FILE (checks it on the way).
rdb_keys() {
	local out n
	if ! out=$(redis-check-rdb "$1" 2>&1); then
		die "redis-check-rdb rejects $(basename "$1"): $(printf '%s\n' "$out" | grep -v '^\[offset' | tail -n 3 | tr '\n' ' ')"
	fi
	n=$(printf '%s\n' "$out" | sed -n 's/^\[info\] \([0-9]*\) keys read$/\1/p')
	[[ $n =~ ^[0-9]+$ ]] || die "redis-check-rdb did not report the keys of $(basename "$1")"
	printf '%s\n' "$n"
}

# bgsave: starts a BGSAVE after the canary was written and waits until it has completed:
# one already running (started before the canary) is waited for, then ours is started.
bgsave() {
	local deadline out info before_time before_saves saves
	deadline=$(($(now) + REDIS_SAVE_TIMEOUT))
	while :; do
		# LASTSAVE has one-second resolution: start in a later second than the last save so
		# that "LASTSAVE advanced" tells that our save completed.
		before_time=$(rcli LASTSAVE)
		[[ $before_time =~ ^[0-9]+$ ]] || die "LASTSAVE on $REDIS_HOST:$REDIS_PORT answered: $before_time"
		while (($(rcli TIME | head -n 1) <= before_time)); do sleep 0.2; done
		before_saves=$(info_field "$(rcli INFO persistence)" rdb_saves)
		out=$(rcli BGSAVE SCHEDULE)
		case $out in
		"Background saving started" | "Background saving scheduled") break ;;
		*"already in progress"*)
			log "a background save is already running; waiting for it, then saving again"
			;;
		*) die "BGSAVE on $REDIS_HOST:$REDIS_PORT failed: $out" ;;
		esac
		(($(now) < deadline)) || die "a background save kept running for ${REDIS_SAVE_TIMEOUT}s (REDIS_SAVE_TIMEOUT)"
		sleep 1
	done
	while :; do
		info=$(rcli INFO persistence)
		saves=$(info_field "$info" rdb_saves)
		if [[ $(info_field "$info" rdb_bgsave_in_progress) == 0 ]] &&
			(($(rcli LASTSAVE) > before_time)) && [[ -z $saves || $saves -gt $before_saves ]]; then
			break
		fi
		(($(now) < deadline)) || die "BGSAVE did not complete within ${REDIS_SAVE_TIMEOUT}s (REDIS_SAVE_TIMEOUT)"
		sleep 0.2
	done
	[[ $(info_field "$info" rdb_last_bgsave_status) == ok ]] ||
		die "BGSAVE on $REDIS_HOST:$REDIS_PORT failed (rdb_last_bgsave_status: $(info_field "$info" rdb_last_bgsave_status)); see the cache's log"
}

do_backup() {
	need redis-cli redis-check-rdb restic jq sha256sum
	backup_lock "$STORE"
	local start stage out canary info1 info2 dbfile exact total rdb_total version id size estimate
	local keys files cli source
	start=$(now)
	mkdir -p "$BACKUP_DIR"
	redis_auth
	# stderr is kept out of the answer and quoted when there is no PONG.
	out=$(rcli PING 2>"$BACKUP_DIR/.redis-ping.err") || true
	if [[ $out != PONG ]]; then
		out="$out $(tr '\n' ' ' <"$BACKUP_DIR/.redis-ping.err" 2>/dev/null)"
		rm -f "$BACKUP_DIR/.redis-ping.err"
		die "cannot reach Redis at $REDIS_HOST:$REDIS_PORT (REDIS_HOST, REDIS_PORT, REDIS_PASSWORD_FILE): ${out## }"
	fi
	rm -f "$BACKUP_DIR/.redis-ping.err"
	stage=$(stage_dir "$STORE")
	# Room for the RDB in the staging directory: the last backup's size or the server's
	# memory in use, plus the margin.
	estimate=$(last_backup_size "$STORE")
	((estimate > 0)) || estimate=$(info_field "$(rcli INFO memory)" used_memory)
	need_space "$stage" "$(with_margin "${estimate:-0}")" "the Redis RDB (staging)"

	canary="$(date -u +%Y%m%dT%H%M%SZ)-$$-$RANDOM$RANDOM"
	out=$(rcli SET "$CANARY_KEY" "$canary")
	[[ $out == OK ]] || die "cannot write the canary key $CANARY_KEY: $out"
	bgsave
	# Key counts right after the save; exact (equal to the snapshot's) when nothing was
	# written since its fork and still nothing after the RDB was obtained.
	info1=$(rcli INFO all)
	version=$(info_field "$info1" redis_version)
	out=$(redis-check-rdb --version | awk '{print $2}')
	if older_than "$out" "$version"; then
		die "redis-check-rdb $out here is older than the Redis server ($version) and cannot read its RDB format; the backup image needs Redis $version's tools (ops/backup/Dockerfile)"
	fi

	if [[ -n $REDIS_DATA_DIR ]]; then
		dbfile=$(rcli CONFIG GET dbfilename | tr -d '\r' | sed -n 2p)
		[[ -n $dbfile ]] || dbfile=dump.rdb
		[[ -f $REDIS_DATA_DIR/$dbfile ]] || die "no $dbfile in REDIS_DATA_DIR=$REDIS_DATA_DIR (is the cache's data volume mounted there?)"
		cp "$REDIS_DATA_DIR/$dbfile" "$stage/dump.rdb"
	else
		if ! out=$(rcli --rdb "$stage/dump.rdb" 2>&1); then
			die "redis-cli --rdb from $REDIS_HOST:$REDIS_PORT failed: $out"
		fi
	fi
	info2=$(rcli INFO all)
	exact=false
	if [[ $(keyspace_json "$info1") == "$(keyspace_json "$info2")" &&
		$(info_field "$info1" rdb_changes_since_last_save) == "$(info_field "$info2" rdb_changes_since_last_save)" ]] &&
		{ [[ -z $REDIS_DATA_DIR ]] || [[ $(info_field "$info1" rdb_changes_since_last_save) == 0 ]]; }; then
		exact=true
	fi
	[[ -s $stage/dump.rdb ]] || die "the RDB obtained from $REDIS_HOST:$REDIS_PORT is empty"
	rdb_total=$(rdb_keys "$stage/dump.rdb")
	total=$(keyspace_json "$info1" | jq 'add // 0')
	if [[ $exact == true && $total != "$rdb_total" ]]; then
		exact=false
	fi

	keys=$(keyspace_json "$info1")
	files=$(manifest_files "$stage")
	cli=$(redis-cli --version | awk '{print $2}')
	source=redis-cli-rdb
	[[ -z $REDIS_DATA_DIR ]] || source=data-dir
	jq -n --arg project "$BACKUP_PROJECT" --arg started "$(iso_time "$start")" \
		--arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$REDIS_HOST:$REDIS_PORT" \
		--arg version "$version" --arg cli "$cli" \
		--arg canary "$canary" --arg key "$CANARY_KEY" --argjson keys "$keys" \
		--argjson exact "$exact" --argjson rdb_total "$rdb_total" \
		--arg source "$source" --argjson files "$files" \
		'{format: 1, project: $project, store: "redis", method: "rdb", kind: "full",
		  started_at: $started, finished_at: $finished, host: $host, source: $source,
		  tool_versions: {server: $version, "redis-cli": $cli}, server_major: ($version | split(".")[0]),
		  files: $files, size_bytes: ([$files[].size] | add // 0),
		  keys: $keys, keys_total: $rdb_total, keys_exact: $exact,
		  canary: {key: $key, id: $canary}}' >"$stage/manifest.json"
	copy_restore_plan "$stage"
	size=$(files_size "$stage")
	id=$(store_snapshot "$STORE" "$KIND" "$stage" "size=$size")
	metric_backup_success "$STORE" "$KIND" "$start" "$size"
	log "redis backup ${id:0:8}: $rdb_total keys in $(jq 'length' <<<"$keys") dbs, $size bytes, $(($(now) - start))s"
}

# restore-test: the probe runs as a child process (its own exit hooks stop the scratch
# server), so that any failure in it is recorded before this script fails.
do_restore_test() {
	need restic jq redis-server redis-cli redis-check-rdb
	run_restore_test "$STORE" redis.sh
}

do_restore_test_probe() {
	local result=$1 repo id work dir manifest major mine port replport out db want got total=0 dbs=0 canary snap size
	repo=$(restore_repo)
	snap=$(snapshots_json "$repo" "$STORE" | jq -c 'last // empty')
	[[ -n $snap ]] || die "no redis backup in the $repo repository"
	id=$(jq -r .id <<<"$snap")
	printf 'snapshot=%s\n' "${id:0:8}" >"$result"
	[[ $repo != offsite ]] || check_offsite_current "$STORE"
	work=$(temp_dir)
	dir=$work/backup
	# The RDB is fetched, then loaded by the scratch server: about three times its size.
	size=$(jq -r '[.tags[]? | select(startswith("size=")) | ltrimstr("size=")] | first // "0"' <<<"$snap")
	need_space "$work" "$(with_margin $((size * 3)))" "the restore test of the Redis backup"
	fetch_snapshot "$repo" "$id" "$dir" "$(jq -r '.paths[0]' <<<"$snap")"
	manifest=$dir/manifest.json
	verify_files "$dir" "$manifest"
	major=$(jq -r '.server_major' "$manifest")
	mine=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\) .*/\1/p')
	[[ $major == "${mine%%.*}" ]] || die "the backup is from Redis $major, the scratch redis-server here is $mine (same major needed)"
	if older_than "$mine" "$(jq -r '.tool_versions.server' "$manifest")"; then
		die "the scratch redis-server $mine is older than the Redis the backup is from ($(jq -r '.tool_versions.server' "$manifest")) and cannot read its RDB format; the backup image needs that version (ops/backup/Dockerfile)"
	fi
	out=$(rdb_keys "$dir/dump.rdb")
	[[ $out == "$(jq -r '.keys_total' "$manifest")" ]] ||
		die "the RDB holds $out keys, the manifest says $(jq -r '.keys_total' "$manifest")"

	# The scratch server is a replica of a port nobody listens on: a replica loads keys
	# whose TTL has passed since the backup (a primary would drop them) and never expires
	# them, so it holds exactly what the snapshot holds.
	mkdir -p "$work/data"
	mv "$dir/dump.rdb" "$work/data/dump.rdb"
	port=$(free_port)
	replport=$(free_port)
	redis-server --bind 127.0.0.1 --port "$port" --dir "$work/data" \
		--dbfilename dump.rdb --appendonly no --save '' --daemonize yes \
		--pidfile "$work/redis.pid" --logfile "$work/redis.log" \
		--replicaof 127.0.0.1 "$replport" --protected-mode yes >/dev/null
	on_exit "redis-cli -p '$port' SHUTDOWN NOSAVE >/dev/null 2>&1 || kill \$(cat '$work/redis.pid' 2>/dev/null) 2>/dev/null"
	unset REDISCLI_AUTH
	sc() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
	local i
	for ((i = 0; i < 120; i++)); do
		[[ $(info_field "$(sc INFO persistence 2>/dev/null)" loading) == 0 ]] && break
		sleep 0.5
	done
	((i < 120)) || die "the scratch redis-server did not load the snapshot within 60s: $(tail -n 5 "$work/redis.log" 2>/dev/null | tr '\n' ' ')"

	while IFS=$'\t' read -r db want; do
		got=$(sc -n "${db#db}" DBSIZE)
		if [[ $(jq -r '.keys_exact' "$manifest") == true ]]; then
			[[ $got == "$want" ]] || die "$db of the restored snapshot has $got keys, the manifest says $want"
		fi
		total=$((total + got))
		dbs=$((dbs + 1))
	done < <(jq -r '.keys | to_entries[] | [.key, (.value | tostring)] | @tsv' "$manifest")
	# Every database of the snapshot, including any the manifest does not list.
	got=$(sc INFO keyspace | tr -d '\r' | sed -n 's/^db[0-9]*:keys=\([0-9]*\),.*/\1/p' | awk '{s += $1} END {print s + 0}')
	want=$(jq -r '.keys_total' "$manifest")
	[[ $got == "$want" ]] || die "the restored snapshot has $got keys, the manifest says $want"
	canary=$(sc GET "$(jq -r '.canary.key' "$manifest")")
	[[ $canary == "$(jq -r '.canary.id' "$manifest")" ]] ||
		die "the canary key $(jq -r '.canary.key' "$manifest") is '$canary' in the restored snapshot, the manifest says $(jq -r '.canary.id' "$manifest")"
	printf 'snapshot=%s dbs=%s keys=%s canary=ok\n' "${id:0:8}" "$dbs" "$got" >"$result"
}

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/redis.sh restore [--target-dir DIR] [--snapshot ID] [--force]

Puts the RDB of the newest redis backup (or of snapshot ID, as ops/backup/list.sh redis
shows it) as dump.rdb into DIR, the cache's data directory (default REDIS_DATA_DIR), after
checking it against its manifest. Steps:
  1. docker compose stop cache     (a running Redis would overwrite the file on shutdown)
  2. ops/backup/redis.sh restore --target-dir DIR --force
  3. docker compose start cache    (Redis loads dump.rdb at start; no AOF is configured)
Without --force an existing dump.rdb in DIR is left alone and the restore fails.
Without --target-dir and REDIS_DATA_DIR, the RDB is fetched into a new directory below
BACKUP_DIR/restored and its path printed.
EOF
}

do_restore() {
	local target=${REDIS_DATA_DIR:-} snapshot='' force=0 repo work dir out
	while (($# > 0)); do
		case $1 in
		--target-dir | --target) target=${2:?--target-dir needs a directory}; shift 2 ;;
		--snapshot) snapshot=${2:?--snapshot needs an id}; shift 2 ;;
		--force) force=1; shift ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "unknown option $1" ;;
		esac
	done
	need restic jq redis-check-rdb
	backup_lock "$STORE"
	if [[ -z $target ]]; then
		target=$BACKUP_DIR/restored/redis-$(date -u +%Y%m%dT%H%M%SZ)
		log "no --target-dir: restoring into $target"
	fi
	target=$(abs "$target")
	repo=$(restore_repo)
	[[ -n $snapshot ]] || snapshot=$(latest_snapshot "$repo" "$STORE")
	[[ -n $snapshot ]] || die "no redis backup in the $repo repository"
	if [[ -e $target/dump.rdb && $force != 1 ]]; then
		die "$target/dump.rdb exists; stop the cache and pass --force to replace it (see --help)"
	fi
	if [[ -e $target/appendonlydir || -e $target/appendonly.aof ]]; then
		log "warning: $target has an append-only file, which Redis loads instead of dump.rdb; move it away or disable appendonly"
	fi
	# A running cache would overwrite the restored file when it stops (it saves on shutdown).
	if [[ -n $REDIS_DATA_DIR && $target == "$REDIS_DATA_DIR" ]] &&
		out=$( (redis_auth && rcli PING) 2>/dev/null) && [[ $out == PONG ]]; then
		die "the cache at $REDIS_HOST:$REDIS_PORT is running: stop it first (docker compose stop cache), it would overwrite dump.rdb"
	fi
	work=$(temp_dir)
	dir=$work/backup
	fetch_snapshot "$repo" "$snapshot" "$dir"
	verify_files "$dir" "$dir/manifest.json"
	rdb_keys "$dir/dump.rdb" >/dev/null
	mkdir -p "$target"
	cp "$dir/dump.rdb" "$target/.dump.rdb.restoring"
	chown --reference="$target" "$target/.dump.rdb.restoring" 2>/dev/null || true
	mv -f "$target/.dump.rdb.restoring" "$target/dump.rdb"
	log "restored snapshot ${snapshot:0:8} ($(jq -r '.finished_at' "$dir/manifest.json"), $(jq -r '.keys_total' "$dir/manifest.json") keys) to $target/dump.rdb; now start the cache (docker compose start cache)"
	printf '%s\n' "$target/dump.rdb"
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
