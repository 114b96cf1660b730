// Package tuning checks the database settings webapp derives from the quotas (docs/tuning.md):
// the servers start with them at the smallest and largest allowed memory limits inside a
// memory cgroup of that size, report the values the generated files set, and take load
// there; make bench compares their throughput with stock settings (pgbench, sysbench).
package tuning
