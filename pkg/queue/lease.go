package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Item is one unit of work as a worker receives it.
type Item struct {
	// ID is the item's position in the Job (0 for the first pushed, or the
	// index of an Indexed Job); it stays the same across attempts.
	ID int64
	// Attempt is 1 for the first run, 2 for the first retry, ...
	Attempt int
	// Payload is the item's bytes exactly as pushed.
	Payload []byte
}

// Batch is a set of items leased together under one fencing token.
type Batch struct {
	Token   string
	Expires time.Time // the Redis server's clock
	Items   []Item
}

// LeaseResult is the answer to a lease call: a batch, or nothing with the
// reason and a hint of when to ask again.
type LeaseResult struct {
	Batch Batch
	// WaitReason is "unsealed", "peers" or "suspended" when Batch is empty.
	WaitReason string
	// WakeIn is when a peer's lease expires or a retry is due; -1 if unknown.
	WakeIn time.Duration
}

// Lease leases up to n items (n <= 0: the spec's batch size) for worker wid
// in one round trip, reclaiming expired leases on the way. It returns
// ErrDrained when the Job is drained (the worker must exit 0), ErrJobFailed,
// or ErrNoJob.
func (c *Client) Lease(ctx context.Context, job, wid string, n int) (LeaseResult, error) {
	v, err := c.run(ctx, leaseScript, job, wid, n)
	if err != nil {
		return LeaseResult{}, fmt.Errorf("lease from %q: %w", job, err)
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return LeaseResult{}, fmt.Errorf("lease from %q: unexpected reply %v", job, v)
	}
	switch r[0] {
	case "LEASE":
		exp := r[2].(int64)
		b := Batch{Token: r[1].(string), Expires: time.UnixMilli(exp), Items: make([]Item, 0, (len(r)-3)/3)}
		for i := 3; i+2 < len(r); i += 3 {
			id, _ := strconv.ParseInt(r[i].(string), 10, 64)
			b.Items = append(b.Items, Item{ID: id, Attempt: int(r[i+1].(int64)), Payload: []byte(r[i+2].(string))})
		}
		return LeaseResult{Batch: b}, nil
	case "WAIT":
		wake := time.Duration(-1)
		if ms := r[2].(int64); ms >= 0 {
			wake = time.Duration(ms) * time.Millisecond
		}
		return LeaseResult{WaitReason: r[1].(string), WakeIn: wake}, nil
	case "DONE":
		return LeaseResult{}, ErrDrained
	case "FAILED":
		return LeaseResult{}, fmt.Errorf("lease from %q: %w", job, ErrJobFailed)
	case "NOJOB":
		return LeaseResult{}, fmt.Errorf("lease from %q: %w", job, ErrNoJob)
	}
	return LeaseResult{}, fmt.Errorf("lease from %q: unexpected reply %v", job, r[0])
}

// Failure is a failed item with the error to record.
type Failure struct {
	ID  int64
	Err string
	// Jitter in [0,1) spreads the retry delay; see jobstate.Spec.Backoff.
	Jitter float64
}

// Settlement is the outcome of the items of one lease.
type Settlement struct {
	Token    string
	Acked    []int64
	Failed   []Failure
	Released []int64 // handed back without using an attempt (shutdown)
}

// SettleResult counts what Settle recorded.
type SettleResult struct {
	Acked, Failed, Released int
	// Refused counts items whose lease was gone (expired and taken over, or
	// settled before): they were not counted.
	Refused int
}

// MaxErrorBytes caps the error text kept for a failed item; longer texts
// keep their tail, where the cause usually is.
const MaxErrorBytes = 2048

// Settle records the outcome of leased items of any number of leases in one
// round trip. An item is counted only if its lease token is still current.
// It returns ErrNoJob when the Job was deleted.
func (c *Client) Settle(ctx context.Context, job string, ss []Settlement) (SettleResult, error) {
	var args []any
	for _, s := range ss {
		args = append(args, s.Token, len(s.Acked), len(s.Failed), len(s.Released))
		for _, id := range s.Acked {
			args = append(args, id)
		}
		for _, f := range s.Failed {
			e := f.Err
			if len(e) > MaxErrorBytes {
				e = "..." + e[len(e)-MaxErrorBytes:]
			}
			args = append(args, f.ID, strconv.FormatFloat(f.Jitter, 'f', 4, 64), e)
		}
		for _, id := range s.Released {
			args = append(args, id)
		}
	}
	if len(args) == 0 {
		return SettleResult{}, nil
	}
	v, err := c.run(ctx, settleScript, job, args...)
	if err != nil {
		return SettleResult{}, fmt.Errorf("settle items of %q: %w", job, err)
	}
	r := v.([]any)
	return SettleResult{Acked: int(r[0].(int64)), Failed: int(r[1].(int64)), Released: int(r[2].(int64)), Refused: int(r[3].(int64))}, nil
}

// Ack records items of one lease as succeeded.
func (c *Client) Ack(ctx context.Context, job, token string, ids ...int64) (SettleResult, error) {
	return c.Settle(ctx, job, []Settlement{{Token: token, Acked: ids}})
}

// Nack records items of one lease as failed with an error.
func (c *Client) Nack(ctx context.Context, job, token string, fails ...Failure) (SettleResult, error) {
	return c.Settle(ctx, job, []Settlement{{Token: token, Failed: fails}})
}

// HeartbeatResult is what a heartbeat learned about the Job.
type HeartbeatResult struct {
	Phase     string   // stored phase: "", Failing, Complete or Failed
	Suspended bool     // the Job is suspended
	Done      bool     // a worker found the Job drained
	Rejoined  bool     // the worker had been reaped as lost and joined again
	Lost      []string // tokens that expired and were taken over
}

// Heartbeat refreshes worker wid and extends the leases it holds by the
// Job's lease duration. It returns ErrNoJob when the Job was deleted.
func (c *Client) Heartbeat(ctx context.Context, job, wid string, tokens []string) (HeartbeatResult, error) {
	args := make([]any, 0, len(tokens)+1)
	args = append(args, wid)
	for _, t := range tokens {
		args = append(args, t)
	}
	v, err := c.run(ctx, heartbeatScript, job, args...)
	if err != nil {
		return HeartbeatResult{}, fmt.Errorf("heartbeat to %q: %w", job, err)
	}
	r := v.([]any)
	if r[0] == "NOJOB" && len(r) == 1 {
		return HeartbeatResult{}, fmt.Errorf("heartbeat to %q: %w", job, ErrNoJob)
	}
	h := HeartbeatResult{Phase: r[0].(string), Suspended: r[1] == "1", Rejoined: r[2].(int64) == 1, Done: r[3] == "1"}
	for _, t := range r[4:] {
		h.Lost = append(h.Lost, t.(string))
	}
	return h, nil
}

// WorkerInfo describes a worker process, for status pages.
type WorkerInfo struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Version  string    `json:"version,omitempty"`
	Deadline time.Time `json:"heartbeatDeadline"` // filled by Workers
}

// Register records a worker before its first lease. It returns ErrDrained
// when the Job is already drained (the worker is counted as succeeded and
// must exit 0 at once), ErrJobFailed, or ErrNoJob.
func (c *Client) Register(ctx context.Context, job string, w WorkerInfo) error {
	info, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	v, err := c.run(ctx, registerScript, job, w.ID, string(info))
	if err != nil {
		return fmt.Errorf("register worker with %q: %w", job, err)
	}
	switch v.([]any)[0] {
	case "OK":
		return nil
	case "DONE":
		return ErrDrained
	case "FAILED":
		return fmt.Errorf("register worker with %q: %w", job, ErrJobFailed)
	}
	return fmt.Errorf("register worker with %q: %w", job, ErrNoJob)
}

// Worker outcomes for Finish.
const (
	OutcomeSucceeded = "succeeded" // exited 0: the Job is drained
	OutcomeFailed    = "failed"    // crashed or exited non-zero: counts toward backoffLimit
	OutcomeStopped   = "stopped"   // told to stop (signal, Job failed): not a failure
)

// Finish records how worker wid ended; only the first record of a worker
// counts. It returns true when this call recorded it, and ErrNoJob (with
// nothing recorded) when the Job no longer exists.
func (c *Client) Finish(ctx context.Context, job, wid, outcome string) (bool, error) {
	v, err := c.run(ctx, finishScript, job, wid, outcome)
	if err != nil {
		return false, fmt.Errorf("finish worker %s of %q: %w", wid, job, err)
	}
	return v.(int64) == 1, nil
}
