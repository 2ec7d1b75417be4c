package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// drainedWorker returns a worker registered with job, a sealed Job of one
// item that the worker has leased and acked: the Job is drained, as its next
// lease told the worker, and the worker is at its end, about to read how the Job ended.
func drainedWorker(t *testing.T) (*Worker, *Client, *miniredis.Miniredis) {
	t.Helper()
	ctx := context.Background()
	m := miniredis.RunT(t)
	c, err := Open(ctx, Options{URL: "redis://" + m.Addr() + "/0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Create(ctx, "job", jobstate.Spec{}))
	_, err = c.Push(ctx, "job", [][]byte{[]byte("a")}, PushOptions{})
	require.NoError(t, err)
	_, err = c.Seal(ctx, "job")
	require.NoError(t, err)
	w, err := NewWorker(c, WorkerConfig{Job: "job", ID: "w1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handler: HandlerFunc(func(context.Context, Item) error { return nil })})
	require.NoError(t, err)
	require.NoError(t, w.register(ctx))
	r, err := w.s.Lease(ctx, "job", store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: "w1", Seq: 1, Want: 1})
	require.NoError(t, err)
	require.NotNil(t, r.Lease)
	res, err := w.s.Settle(ctx, "job", store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: 1,
		Leases: []store.Settlement{{Token: r.Lease.Token, All: true, AckCount: 1, Started: -1}}})
	require.NoError(t, err)
	require.Equal(t, 1, res.Acked)
	_, err = w.s.Lease(ctx, "job", store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: "w1", Seq: 2, Want: 1})
	require.ErrorIs(t, err, store.ErrDrained, "the worker learns that the Job is drained")
	return w, c, m
}

// TestAWorkerEndsAsItsOwnIncarnation: a worker whose Job drained, then was
// deleted and created again under its name before the worker read how it
// ended, does not take the new Job's state for its own, nor touch it.
func TestAWorkerEndsAsItsOwnIncarnation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, c, _ := drainedWorker(t)
	require.NoError(t, c.Delete(ctx, "job"))
	require.NoError(t, c.Create(ctx, "job", jobstate.Spec{}))

	err := w.finish(ctx, endDrained)
	require.ErrorIs(t, err, ErrReplaced)
	require.NotErrorIs(t, err, ErrJobFailed, "the new Job's Running phase is not this worker's failure")
	st, err := c.Inspector().Status(ctx, "job")
	require.NoError(t, err)
	require.Equal(t, jobstate.PhasePending, st.Phase, "the new Job is untouched")
	require.Zero(t, st.Succeeded+st.Failed, "no worker end counted against the new Job")
}

// TestAWorkerEndsWellThroughARedisRestart: Redis is away for a moment just
// as a worker reads how its drained Job ended; the worker waits for it and
// exits as the Job succeeded, recording its end.
func TestAWorkerEndsWellThroughARedisRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, c, m := drainedWorker(t)
	m.Close()
	back := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second) // beyond the driver's own retries
		back <- m.Restart()
	}()
	require.NoError(t, w.finish(ctx, endDrained))
	require.NoError(t, <-back)
	st, err := c.Inspector().Status(ctx, "job")
	require.NoError(t, err)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	require.EqualValues(t, 1, st.Succeeded, "the worker's end is recorded")
	require.Zero(t, st.Failed)
}
