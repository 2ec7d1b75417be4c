package queue

import (
	"context"
	"strconv"

	"github.com/workq/workq/pkg/jobstate"
)

// Item is one unit of work as a handler receives it.
type Item struct {
	// ID is the item's position in the Job (0 for the first pushed, or the
	// index of a fixed completion count Job); it stays the same across
	// attempts.
	ID int64
	// Attempt is 1 for the first run, 2 for the first retry, ...
	Attempt int
	// Payload is the item's bytes exactly as pushed. It is valid until the
	// handler returns.
	Payload []byte
	// Fence increases with every lease of the Job, across incarnations of
	// its name: a later run of an item always has a larger Fence. A sink
	// that keeps the largest Fence it has seen per item can refuse the late
	// write of a worker whose lease was taken over (exactly-once effects).
	Fence int64
	// Index is the item's index in an Indexed Job (JOB_COMPLETION_INDEX),
	// or -1.
	Index int
}

// Handler processes one item. Returning nil acks the item; an error fails
// it, and err.Error() is kept as the item's last error. An error that has
// an ExitCode() int method (as *exec.ExitError) is matched against the
// Job's failure policy by that code; one that wraps ErrItemTimeout as a
// timeout. The context ends when the worker must stop at once (grace
// period over, Job failed or replaced).
type Handler interface {
	Handle(ctx context.Context, it Item) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, it Item) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, it Item) error { return f(ctx, it) }

// BatchHandler processes all items of one lease at once: nil acks them all,
// an error fails them all.
type BatchHandler interface {
	HandleBatch(ctx context.Context, items []Item) error
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, items []Item) error

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, items []Item) error { return f(ctx, items) }

// JobInfo is what a handler may want to know about the Job it works for.
type JobInfo struct {
	Name     string
	UID      string // the incarnation
	WorkerID string
	Spec     jobstate.Spec
}

type jobInfoKey struct{}

// JobFromContext returns the Job a handler's context belongs to.
func JobFromContext(ctx context.Context) (JobInfo, bool) {
	j, ok := ctx.Value(jobInfoKey{}).(*JobInfo)
	if !ok {
		return JobInfo{}, false
	}
	return *j, true
}

type outputKey struct{}

// SetOutput records an item's output for the Job's results (a Worker with
// Results set keeps it, its tail when long); elsewhere it does nothing.
func SetOutput(ctx context.Context, output []byte) {
	if p, ok := ctx.Value(outputKey{}).(*[]byte); ok {
		*p = append((*p)[:0], output...)
	}
}

// FormatIndex is an item's index as its command's environment carries it.
func (it Item) FormatIndex() string { return strconv.Itoa(it.Index) }
