// Package adopt holds the end-to-end tests of `opsready adopt` on the real sample projects of
// the corpus (../shared/corpus/compose-projects, copied before use): the team's files are
// unchanged, the merged compose model loads and meets what adopt claims, the generated backup
// scripts back up and restore the local servers, the rules and routes pass promtool and amtool,
// and `opsready check` afterwards lists only what adopt says it leaves.
package adopt
