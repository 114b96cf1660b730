// Package e2eutil holds the helpers the end-to-end test packages under internal/e2e share:
// generating a project, requiring tools and servers (a missing one fails under CI and skips
// otherwise), scratch databases, server processes under test, the go and npm runners, a
// content-addressed build cache shared by every test process of a run, scratch directories on
// tmpfs, and checks of generated Markdown, YAML, rules and secrets.
//
// It is imported by tests only.
package e2eutil
