package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/workq/workq/pkg/jobstate"
)

// Inspector reads Jobs: their status, dead items, workers and results. It
// changes nothing. It is safe for concurrent use.
type Inspector struct{ c *Client }

// Status reads a Job's status in one atomic step, from counters (its cost
// does not grow with the Job's items). For a fixed completion count Job it
// also lists the completed and failed indexes (the failed ones up to the
// first 1000, then ",..."). It returns ErrNoJob.
func (in *Inspector) Status(ctx context.Context, job string) (jobstate.Status, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return jobstate.Status{}, err
	}
	return s.Status(ctx, job)
}

// JobStatus is one Job's status, or why it could not be read.
type JobStatus struct {
	Name   string
	Status jobstate.Status
	Err    error // ErrNoJob when it was deleted between the listing and the read
}

// Jobs reads the status of every Job (counters only) in one pipelined round
// trip per Redis node, sorted by name. A Job that could not be read has its
// error in Err; the call fails only when the Jobs cannot be listed.
func (in *Inspector) Jobs(ctx context.Context) ([]JobStatus, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return nil, err
	}
	js, err := s.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JobStatus, len(js))
	for i, j := range js {
		out[i] = JobStatus{Name: j.Name, Status: j.Status, Err: j.Err}
	}
	return out, nil
}

// Names lists the Jobs that exist, sorted.
func (in *Inspector) Names(ctx context.Context) ([]string, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return nil, err
	}
	names, _, err := s.Names(ctx)
	return names, err
}

// Spec returns a Job's spec. It returns ErrNoJob.
func (in *Inspector) Spec(ctx context.Context, job string) (jobstate.Spec, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return jobstate.Spec{}, err
	}
	spec, _, err := s.Spec(ctx, job)
	if err != nil {
		return jobstate.Spec{}, fmt.Errorf("spec of %q: %w", job, err)
	}
	return spec, nil
}

// DeadItem is an item that used all its attempts.
type DeadItem struct {
	// Shard is the shard the item died in, for a sharded Job; ids are
	// per shard.
	Shard     string `json:"shard,omitempty"`
	ID        int64  `json:"id"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"lastError"`
	Payload   []byte `json:"-"`
	Item      string `json:"item"` // Payload as text, for JSON output
}

// Dead lists up to limit dead items (0: all), lowest ids first, reading
// only those; a sharded Job's, shard by shard.
func (in *Inspector) Dead(ctx context.Context, job string, limit int) ([]DeadItem, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.Dead(ctx, job, limit)
	out := make([]DeadItem, len(ds))
	for i, d := range ds {
		out[i] = DeadItem(d)
	}
	return out, err
}

// WorkerInfo describes a worker process.
type WorkerInfo struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Version  string    `json:"version,omitempty"`
	Deadline time.Time `json:"heartbeatDeadline"` // when it is lost without a heartbeat
}

// Workers lists the registered workers that have not terminated, with
// their heartbeat deadlines.
func (in *Inspector) Workers(ctx context.Context, job string) ([]WorkerInfo, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := s.Workers(ctx, job)
	out := make([]WorkerInfo, len(ws))
	for i, w := range ws {
		out[i] = WorkerInfo(w)
	}
	return out, err
}

// Result is one item's result, kept by workers with Results set.
type Result struct {
	Seq     string `json:"seq"` // its place in the Job's results; pass it as after
	ID      int64  `json:"id"`
	Attempt int    `json:"attempt"`
	Exit    int    `json:"exit"`   // the exit status; 0 for a success
	Output  string `json:"output"` // the end of its output (see SetOutput)
}

// Results reads up to count results after the one whose Seq is after (""
// from the start), in completion order. With wait > 0 it waits up to that
// long for new ones when none is there.
func (in *Inspector) Results(ctx context.Context, job, after string, count int64, wait time.Duration) ([]Result, error) {
	s, err := in.c.store(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.Results(ctx, job, after, count, wait)
	out := make([]Result, len(rs))
	for i, r := range rs {
		out[i] = Result(r)
	}
	return out, err
}
