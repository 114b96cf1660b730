// Package golden holds the golden tests of the blueprints: what each one generates, kept under
// the repository's golden/ folder, and the upgrade stories between versions.
//
// Layout of golden/<blueprint>/:
//
//	newest/<case>/{answers.yaml,want/}   the case set, rendered at the blueprint's newest version
//	<version>/defaults/                  every version: all answers at their defaults
//	<version>/upgrade-*/                 generate at an older version, edit, upgrade to <version>
//
// Whole trees for the whole case set exist for the newest version only: older versions are
// immutable (their content hash is pinned in blueprints/load_test.go), so their defaults case
// and their upgrade cases suffice. The case set lives in one folder, not one copy per version,
// so a template change shows up once per case that uses it; a new version that renders the
// same output changes only the version in each case's .opsready.yaml.
//
// `make golden` rewrites every want/ with -update-golden.
package golden
