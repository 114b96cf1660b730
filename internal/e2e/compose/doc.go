// Package compose holds the end-to-end tests of the generated compose files (development,
// production and monitoring, loaded with compose-go as docker compose loads them), the
// .gitignore and the log rotation of the generated project.
//
// Run them with `go test ./internal/e2e/compose`; shared helpers are in internal/e2e/e2eutil.
package compose
