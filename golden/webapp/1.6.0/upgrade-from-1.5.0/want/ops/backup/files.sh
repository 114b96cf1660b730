#!/usr/bin/env bash
# Files: configuration, secrets and uploads (BACKUP_FILES_PATHS) backed up with restic
# (encrypted, deduplicated, copied off-site), with a manifest of every file's size, mode and
# sha256 and a canary file.
#
# Usage: ops/backup/files.sh backup|restore-test|restore|list|prune [OPTIONS]
#   restore --help prints the options of the disaster path.
#
# BACKUP_FILES_PATHS: space-separated paths relative to the project directory; missing ones
# are skipped with a warning (the uploads directory may appear later), none existing fails.
#
# The paths are copied (cp -a) into the fixed staging directory and the snapshot is taken of
# that one directory, together with the manifest: simple and consistent, at the cost of one
# temporary copy. That is fine for configuration, secrets and moderate uploads; for uploads
# of many gigabytes back up the upload volume with restic directly instead.
set -euo pipefail
# shellcheck source=ops/backup/lib.sh
. "$(dirname "$0")/lib.sh"

STORE=files
KIND=full
CANARY_FILE=.backup-canary

# tree_files DIR: a JSON array of {name, size, mode, sha256} for every regular file below DIR
# except manifest.json and restore-plan.md, sorted by name. NUL-separated throughout, so any
# file name works; one sha256sum and one jq for the whole tree.
tree_files() {
	local dir=$1 tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/$BACKUP_PROJECT-files-list.XXXXXX")
	on_exit "rm -rf '$tmp'"
	(
		cd "$dir"
		find . -type f ! -path ./manifest.json ! -path ./restore-plan.md -printf '%P\0%s\0%m\0' >"$tmp/stat"
		find . -type f ! -path ./manifest.json ! -path ./restore-plan.md -printf '%P\0' |
			xargs -0 -r sha256sum -z -- >"$tmp/sums"
	)
	jq -n --rawfile stat "$tmp/stat" --rawfile sums "$tmp/sums" '
		($sums | split("\u0000") | map(select(length > 66) | {key: .[66:], value: .[0:64]}) | from_entries) as $sha
		| ($stat | rtrimstr("\u0000") | if . == "" then [] else split("\u0000") end) as $f
		| [range(0; $f | length; 3) as $i
			| {name: $f[$i], size: ($f[$i + 1] | tonumber), mode: $f[$i + 2], sha256: $sha[$f[$i]]}]
		| sort_by(.name)'
}

# json_list ARGS...: the arguments as a JSON array of strings.
json_list() {
	(($# > 0)) || {
		echo '[]'
		return
	}
	printf '%s\0' "$@" | jq -Rs 'rtrimstr("\u0000") | split("\u0000")'
}

# check_tree DIR: DIR holds exactly the files of its manifest, with their sizes, modes and
# checksums, and the canary file of the manifest.
check_tree() {
	local dir=$1 manifest=$1/manifest.json diff canary got
	[[ -s $manifest ]] || die "the backup has no manifest ($manifest): incomplete or not made by these scripts"
	got=$(tree_files "$dir")
	diff=$(jq -r --argjson got "$got" '
		(.files | map({key: .name, value: .}) | from_entries) as $want
		| ($got | map({key: .name, value: .}) | from_entries) as $have
		| [($want | keys[] | select($have[.] == null) | "missing: \(.)"),
		   ($have | keys[] | select($want[.] == null) | "not in the manifest: \(.)"),
		   ($want | keys[] | select($have[.] != null) as $n
			| if $have[$n].size != $want[$n].size then "\($n) is \($have[$n].size) bytes, the manifest says \($want[$n].size): truncated or damaged"
			  elif $have[$n].sha256 != $want[$n].sha256 then "\($n) has a different sha256 than the manifest: damaged"
			  elif $have[$n].mode != $want[$n].mode then "\($n) has mode \($have[$n].mode), the manifest says \($want[$n].mode)"
			  else empty end)]
		| if length == 0 then empty else "\(length) file(s) differ from the manifest; \(.[0:3] | join("; "))" end' "$manifest")
	[[ -z $diff ]] || die "$diff"
	[[ -f $dir/tree/$CANARY_FILE ]] || die "the canary file tree/$CANARY_FILE is missing from the backup"
	canary=$(<"$dir/tree/$CANARY_FILE")
	[[ $canary == "$(jq -r '.canary.id' "$manifest")" ]] ||
		die "the canary file says '$canary', the manifest says $(jq -r '.canary.id' "$manifest")"
}

do_backup() {
	need restic jq sha256sum
	backup_lock "$STORE"
	local start stage p canary id size count list need restic_version found_json skipped_json
	local -a found=() skipped=()
	start=$(now)
	[[ -n ${BACKUP_FILES_PATHS:-} ]] || die "BACKUP_FILES_PATHS is empty: nothing to back up"
	local -a paths
	read -ra paths <<<"$BACKUP_FILES_PATHS"
	for p in "${paths[@]}"; do
		case /$p/ in
		//* | */../*) die "BACKUP_FILES_PATHS: $p: paths are relative to the project directory ($PROJECT_DIR), without .." ;;
		esac
		case $(abs "$p")/ in
		"$BACKUP_DIR"/* | "$BACKUP_STAGING_DIR"/*) die "BACKUP_FILES_PATHS: $p is inside BACKUP_DIR ($BACKUP_DIR): the backups would back up themselves" ;;
		esac
		case $BACKUP_DIR/ in
		"$(abs "$p")"/*) die "BACKUP_FILES_PATHS: $p contains BACKUP_DIR ($BACKUP_DIR): the backups would back up themselves" ;;
		esac
		if [[ -e $PROJECT_DIR/$p || -L $PROJECT_DIR/$p ]]; then
			found+=("$p")
		else
			log "warning: $p (BACKUP_FILES_PATHS) does not exist in $PROJECT_DIR; skipped"
			skipped+=("$p")
		fi
	done
	((${#found[@]} > 0)) || die "none of BACKUP_FILES_PATHS ($BACKUP_FILES_PATHS) exists in $PROJECT_DIR: nothing to back up"

	stage=$(stage_dir "$STORE")
	# The copy in the staging directory needs about the size of the paths.
	need=$(cd "$PROJECT_DIR" && du -sbc -- "${found[@]}" | tail -n 1 | cut -f1)
	need_space "$stage" "$(with_margin "$need")" "the copy of ${found[*]} (staging)"
	mkdir "$stage/tree"
	(cd "$PROJECT_DIR" && cp -a --parents -- "${found[@]}" "$stage/tree/")
	canary="$(date -u +%Y%m%dT%H%M%SZ)-$$-$RANDOM$RANDOM"
	printf '%s\n' "$canary" >"$stage/tree/$CANARY_FILE"
	# A checksum list in sha256sum's own format, for checking by hand: cd tree && sha256sum -c ../SHA256SUMS
	(cd "$stage/tree" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum --) >"$stage/SHA256SUMS"

	list=$(temp_dir)/files.json
	tree_files "$stage" >"$list"
	count=$(jq '[.[] | select(.name | startswith("tree/"))] | length - 1' "$list")
	restic_version=$(restic version | awk '{print $2}')
	found_json=$(json_list "${found[@]}")
	skipped_json=$(json_list "${skipped[@]}")
	jq -n --arg project "$BACKUP_PROJECT" --arg started "$(iso_time "$start")" \
		--arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(hostname)" \
		--arg restic "$restic_version" --arg canary "$canary" \
		--arg canary_file "tree/$CANARY_FILE" --slurpfile files "$list" \
		--argjson count "$count" --argjson paths "$found_json" \
		--argjson skipped "$skipped_json" \
		'{format: 1, project: $project, store: "files", method: "restic", kind: "full",
		  started_at: $started, finished_at: $finished, host: $host, tool_versions: {restic: $restic},
		  paths: $paths, skipped: $skipped,
		  files: $files[0], files_count: $count, size_bytes: ([$files[0][].size] | add // 0),
		  checksums: "SHA256SUMS", canary: {file: $canary_file, id: $canary}}' >"$stage/manifest.json"
	copy_restore_plan "$stage"
	size=$(files_size "$stage")
	id=$(store_snapshot "$STORE" "$KIND" "$stage" "size=$size")
	metric_backup_success "$STORE" "$KIND" "$start" "$size"
	log "files backup ${id:0:8}: ${found[*]} ($count files, $size bytes) in $(($(now) - start))s${skipped[*]:+; skipped: ${skipped[*]}}"
}

# restore-test: the probe runs as a child process so that any failure in it is recorded
# before this script fails.
do_restore_test() {
	need restic jq sha256sum
	run_restore_test "$STORE" files.sh
}

do_restore_test_probe() {
	local result=$1 repo id work dir snap size
	repo=$(restore_repo)
	snap=$(snapshots_json "$repo" "$STORE" | jq -c 'last // empty')
	[[ -n $snap ]] || die "no files backup in the $repo repository"
	id=$(jq -r .id <<<"$snap")
	printf 'snapshot=%s\n' "${id:0:8}" >"$result"
	[[ $repo != offsite ]] || check_offsite_current "$STORE"
	work=$(temp_dir)
	dir=$work/backup
	size=$(jq -r '[.tags[]? | select(startswith("size=")) | ltrimstr("size=")] | first // "0"' <<<"$snap")
	need_space "$work" "$(with_margin "$size")" "the restore test of the files backup"
	fetch_snapshot "$repo" "$id" "$dir" "$(jq -r '.paths[0]' <<<"$snap")"
	check_tree "$dir"
	printf 'snapshot=%s paths=%s files=%s bytes=%s canary=ok\n' "${id:0:8}" \
		"$(jq '.paths | length' "$dir/manifest.json")" "$(jq '.files_count' "$dir/manifest.json")" \
		"$(jq '.size_bytes' "$dir/manifest.json")" >"$result"
}

restore_usage() {
	cat <<'EOF'
Usage: ops/backup/files.sh restore [--target-dir DIR] [--snapshot ID] [--force]

Restores the files of the newest files backup (or of snapshot ID, as ops/backup/list.sh
files shows it) into DIR, with their paths relative to the project directory (.env,
secrets/..., var/uploads/...), their modes and owners, after checking every file against
the manifest. Default DIR: a new directory below BACKUP_DIR/restored.
Existing files in DIR are not overwritten: the restore fails unless --force is given.
To put the files back in place: ops/backup/files.sh restore --target-dir . --force
EOF
}

do_restore() {
	local target='' snapshot='' force=0 repo work dir n
	while (($# > 0)); do
		case $1 in
		--target-dir | --target) target=${2:?--target-dir needs a directory}; shift 2 ;;
		--snapshot) snapshot=${2:?--snapshot needs an id}; shift 2 ;;
		--force) force=1; shift ;;
		-h | --help) restore_usage; return 0 ;;
		*) restore_usage >&2; die "unknown option $1" ;;
		esac
	done
	need restic jq sha256sum
	if [[ -z $target ]]; then
		target=$BACKUP_DIR/restored/files-$(date -u +%Y%m%dT%H%M%SZ)
		[[ ! -e $target ]] || die "$target exists already"
		log "no --target-dir: restoring into $target"
	fi
	target=$(abs "$target")
	repo=$(restore_repo)
	[[ -n $snapshot ]] || snapshot=$(latest_snapshot "$repo" "$STORE")
	[[ -n $snapshot ]] || die "no files backup in the $repo repository"
	work=$(temp_dir)
	dir=$work/backup
	fetch_snapshot "$repo" "$snapshot" "$dir"
	check_tree "$dir"
	rm -f "$dir/tree/$CANARY_FILE"
	if [[ -d $target && $force != 1 ]]; then
		local -a clash=()
		while IFS= read -r -d '' n; do
			[[ -e $target/$n || -L $target/$n ]] && clash+=("$n")
		done < <(cd "$dir/tree" && find . -mindepth 1 ! -type d -printf '%P\0')
		((${#clash[@]} == 0)) ||
			die "${#clash[@]} file(s) exist already in $target (${clash[*]:0:3}); pass --force to overwrite them"
	fi
	mkdir -p "$target"
	cp -a "$dir/tree/." "$target/"
	log "restored snapshot ${snapshot:0:8} ($(jq -r '.finished_at' "$dir/manifest.json"): $(jq -r '.paths | join(" ")' "$dir/manifest.json"), $(jq '.files_count' "$dir/manifest.json") files) into $target"
	printf '%s\n' "$target"
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
