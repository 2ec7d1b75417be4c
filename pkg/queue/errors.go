package queue

import (
	"errors"

	"github.com/workq/workq/internal/store"
)

// MaxErrorBytes caps the error text kept for a failed item; a longer text
// keeps its tail, where the cause usually is.
const MaxErrorBytes = store.MaxErrorBytes

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNoJob: the Job does not exist (never created, deleted or expired).
	ErrNoJob = store.ErrNoJob
	// ErrShardMissing: a shard of a sharded Job does not exist (deleted
	// alone, expired, or the create was cut short); delete the Job and
	// create it again.
	ErrShardMissing = store.ErrShardMissing
	// ErrReplaced: the Job was deleted and created again under the same
	// name since the caller (a Worker, a Pusher) bound to it.
	ErrReplaced = store.ErrReplaced
	// ErrJobVanished: the Job a Worker was working on is gone (deleted,
	// flushed, expired, or lost in a Redis restart without its data).
	ErrJobVanished = errors.New("job vanished")
	// ErrStateLost: the Job's state in Redis is gone or its books do not
	// add up (keys evicted); it fails with reason StateLost.
	ErrStateLost = store.ErrStateLost
	// ErrExists: Create found a Job of that name.
	ErrExists = store.ErrExists
	// ErrSealed: the Job is sealed; it takes no more items.
	ErrSealed = store.ErrSealed
	// ErrFinished: the Job has ended (or is ending).
	ErrFinished = store.ErrFinished
	// ErrJobFailed: the Job is failing or failed; a Worker stops.
	ErrJobFailed = store.ErrJobFailed
	// ErrInvalidItem: an item is empty, too large or not valid in its format.
	ErrInvalidItem = errors.New("invalid item")
	// ErrBadURL: the Redis settings (URL, TLS) cannot work; fix them.
	ErrBadURL = store.ErrBadURL
	// ErrUnavailable: Redis cannot be reached.
	ErrUnavailable = store.ErrUnavailable
	// ErrAuth: Redis refused the credentials or the ACL user's rights (it
	// wraps ErrUnavailable).
	ErrAuth = store.ErrAuth
	// ErrOutOfMemory: Redis is at maxmemory and refuses writes.
	ErrOutOfMemory = store.ErrOutOfMemory
	// ErrEviction: Redis's maxmemory-policy may evict workq's keys; workq
	// needs noeviction.
	ErrEviction = store.ErrEviction
	// ErrStopped: Worker.Run's context ended before the Job did; what the
	// worker held was finished or handed back.
	ErrStopped = errors.New("worker stopped before the job ended")
	// ErrItemTimeout marks a handler error as a timeout (for the Job's
	// failure policy); wrap it.
	ErrItemTimeout = errors.New("item timed out")
)
