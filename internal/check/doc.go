// Package check scores the production readiness of any docker compose project: it loads the
// compose files the way docker compose does (compose-go, with the project's .env, profiles,
// default file names and override files), finds per-service and repository-level gaps
// (healthchecks, restart policies, log rotation, limits, pinned images, published databases,
// literal secrets, hardening; backups, restore tests, alerting, runbooks, CI, …), locates
// each in its file and line, applies committed waivers and writes the result as text, JSON or
// SARIF 2.1.0.
package check
