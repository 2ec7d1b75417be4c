// Package queue is workq's Go API: parallel Jobs over a Redis work queue,
// the pattern Kubernetes documents as "Parallel Jobs with a work queue".
//
// A Client creates Jobs, loads their items and administers them (seal,
// suspend, resume, retry dead items, delete); an Inspector reads their
// status, dead items, workers and results; a Worker leases batches of a
// Job's items, runs a Handler (or a BatchHandler) for them, acks them, and
// returns once the Job is sealed and drained, so that the process can exit
// 0 as a Kubernetes work-queue Pod does.
//
// Delivery is at least once, accounting exactly once: an item may run twice
// (its worker died after the work and before the ack) but is counted
// succeeded once; a late ack from a worker whose lease was taken over is
// refused. Every Job has an incarnation uid, so nothing from an older Job
// of the same name (deleted, expired, flushed) touches a newer one.
//
// All types are safe for concurrent use unless their documentation says
// otherwise. Errors wrap the sentinels in this package (ErrNoJob, ...); test
// them with errors.Is.
package queue
