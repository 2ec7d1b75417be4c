// Package jobstate holds the pure model of a workq Job: its spec, its status,
// its phases and conditions, and the rules that move it from one phase to the
// next. It mirrors the Kubernetes batch/v1 Job: the same condition types and
// reasons, the same counters (active, ready, succeeded, failed), and interval
// strings for completed indexes.
//
// The package does no I/O and reads no clock: every function takes the time it
// needs as an argument, so its tests are plain tables.
package jobstate
