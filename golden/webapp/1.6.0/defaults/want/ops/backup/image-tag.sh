#!/usr/bin/env bash
# Prints the tag of the backup image for this checkout: "b-" and the first 12 hex digits of the
# SHA-256 of what the image is built from, as git records it (mode, blob hash and name of
# ops/backup/.dockerignore and of each file it lets into the build context, `!name` lines):
#   cd ops/backup && git ls-files -s -- .dockerignore Dockerfile | sha256sum
# CI tags the image it publishes with it and the deploy writes it into .env as BACKUP_TAG
# (compose.backup.yaml). It changes only when those files change: a deploy of a new application
# version, or of new backup scripts (mounted at run time, not part of the image), keeps the
# image, so no service that runs it (the backup jobs; the database too when it archives with the
# backup tools) is recreated for a new one. The same content gives the same tag on every machine;
# a rebuild of unchanged files (a newer base image) needs a change to the Dockerfile.
#
# Usage: ops/backup/image-tag.sh    (from anywhere in a git checkout of the project)
set -euo pipefail

die() {
	printf 'image-tag.sh: %s\n' "$*" >&2
	exit 1
}

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$dir"
command -v git >/dev/null 2>&1 || die "git is not installed: the tag is computed from the files git records"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
	die "$dir is not in a git checkout: the tag is a hash of the committed files; run it in a clone of the project"
[ -f .dockerignore ] || die "$dir/.dockerignore is missing: it names the files the image is built from (restore it from git)"

# The files of the build context: .dockerignore starts with `*` and lets files in with `!name`.
files=(.dockerignore)
seen_all=false
n=0
while IFS= read -r line || [ -n "$line" ]; do
	n=$((n + 1))
	line=${line%$'\r'}
	case "$line" in
	'' | '#'*) continue ;;
	'*') seen_all=true ;;
	'!'*)
		name=${line#!}
		$seen_all || die ".dockerignore:$n: '$line' before the '*' line: the build context would hold every file"
		case "$name" in
		'' | *[*?\[\\]* | /* | *..*) die ".dockerignore:$n: '$line': name one file of ops/backup a line, without patterns" ;;
		esac
		files+=("$name")
		;;
	*) die ".dockerignore:$n: '$line': only '*' and '!name' lines are understood here (the tag must cover the whole build context)" ;;
	esac
done <.dockerignore
$seen_all || die ".dockerignore has no '*' line: the build context would hold every file of ops/backup"

listing=$(git --literal-pathspecs ls-files -s -- "${files[@]}")
for f in "${files[@]}"; do
	grep -q -F -x -- "$f" <<<"$(cut -f2- <<<"$listing")" ||
		die "ops/backup/$f is not tracked by git: commit it (the image is built from it, CI sees only committed files)"
done
if ! git --literal-pathspecs diff --quiet -- "${files[@]}" || ! git --literal-pathspecs diff --cached --quiet -- "${files[@]}" 2>/dev/null; then
	printf 'image-tag.sh: warning: uncommitted changes to %s: the tag is that of the files git has staged, CI builds the committed ones\n' "${files[*]}" >&2
fi

if command -v sha256sum >/dev/null 2>&1; then
	sum=$(printf '%s\n' "$listing" | sha256sum)
elif command -v shasum >/dev/null 2>&1; then
	sum=$(printf '%s\n' "$listing" | shasum -a 256)
else
	die "neither sha256sum nor shasum is installed"
fi
printf 'b-%s\n' "${sum:0:12}"
