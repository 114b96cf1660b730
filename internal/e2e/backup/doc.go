// Package backup holds the end-to-end tests of the generated backup jobs: every store and
// method backed up, restored and restore-tested against real servers and restic, the compose,
// cron and systemd wiring, the documents' claims, retention, and the fault matrix that
// `make faults` runs (go test ./internal/e2e/backup -run Faults -faults).
//
// It has no code outside its tests.
package backup
