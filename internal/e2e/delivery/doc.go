// Package delivery holds the end-to-end tests of how the generated project is delivered and
// checked once deployed: the GitHub Actions and GitLab CI pipelines, the operations scripts
// (shellcheck, the smoke script) and the k6 load profiles, run live against the Go backend.
//
// Run them with `go test ./internal/e2e/delivery`; shared helpers are in internal/e2e/e2eutil.
package delivery
