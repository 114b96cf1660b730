// Package backends holds the end-to-end tests of the generated backend stubs (Go, Python,
// Node.js), driven through one contract (docs/webapp-contract.md) against the local
// PostgreSQL, MariaDB and Redis, and of the frontends (React, static) served by nginx.
//
// Each distinct stub is built once per run through the build cache of internal/e2e/e2eutil.
// Run them with `go test ./internal/e2e/backends`.
package backends
