// Package monitoring holds the end-to-end tests of the generated monitoring: Prometheus
// rules and their promtool tests, Alertmanager routing (and a live alert end to end), Grafana
// dashboards, the metrics they use against real exporter scrapes (testdata/scrapes),
// runbooks and the capacity check.
//
// Run them with `go test ./internal/e2e/monitoring`; shared helpers are in internal/e2e/e2eutil.
package monitoring
