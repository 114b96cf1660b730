// Package blueprints holds the released blueprint versions embedded in the binary and
// loads them: blueprint.yaml (questions, file rules, secrets, migrations, changelog) and the
// file tree, with a version that `extends` another resolved into one complete tree.
package blueprints
