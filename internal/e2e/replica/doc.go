// Package replica tests the generated database replicas end to end: a primary and a replica
// started from the generated settings on this machine's servers, writes through the
// generated backend, the primary killed, the generated ops/db/failover.sh and rejoin.sh run,
// and the acknowledged rows that survive counted.
package replica
