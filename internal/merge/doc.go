// Package merge merges a user's edits with a new blueprint version the way
// `git merge-file --diff3` does, and renders the unified diffs that `--dry-run` prints.
package merge
