package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// realClock makes miniredis follow the wall clock, as real Redis does: the
// Worker runtime heartbeats and waits on real timers.
func realClock(e *env) {
	if e.mini != nil {
		e.mini.SetTime(time.Time{})
	}
}

// logWriter sends a worker's logs to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// running is a Worker.Run in its own goroutine.
type running struct {
	w      *queue.Worker
	cancel context.CancelFunc // the SIGTERM of the worker
	done   chan struct{}
	err    error
}

// startWorker runs a worker until it returns; the test's cleanup stops it
// and waits for it, so no goroutine outlives the test.
func startWorker(t *testing.T, c *queue.Client, cfg queue.WorkerConfig) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w, err := queue.NewWorker(c, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("worker %s did not stop", w.ID())
		}
	})
	return r
}

// wait returns Run's error, failing the test if it takes longer than d.
func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("worker %s did not return within %s", r.w.ID(), d)
		return nil
	}
}

func (r *running) returned() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitFor receives from ch or fails the test after d.
func waitFor[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
		var zero T
		return zero
	}
}

func status(t *testing.T, e *env) jobstate.Status {
	t.Helper()
	st, err := e.c.Status(context.Background(), e.job)
	require.NoError(t, err)
	return st
}

func TestWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SeveralWorkersDrainTheJobAndExitNil", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			const n = 300
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 7}))
			_, err := e.c.Push(ctx, e.job, items(n), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			var seen [n]atomic.Int32
			var bad atomic.Value
			h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
				seen[it.ID].Add(1)
				if string(it.Payload) != fmt.Sprintf("item-%d", it.ID) || it.Attempt != 1 {
					bad.Store(fmt.Sprintf("item %d attempt %d payload %q", it.ID, it.Attempt, it.Payload))
				}
				return nil
			})
			var ws []*running
			for i := range 3 {
				ws = append(ws, startWorker(t, e.c, queue.WorkerConfig{Job: e.job, ID: fmt.Sprintf("w%d", i), Concurrency: 3, Handler: h}))
			}
			for _, w := range ws {
				require.NoError(t, w.wait(t, 30*time.Second))
			}
			require.Nil(t, bad.Load())
			for id := range seen {
				require.EqualValues(t, 1, seen[id].Load(), "item %d", id)
			}
			st := status(t, e)
			require.EqualValues(t, n, st.Items.Succeeded)
			require.True(t, st.Done)
			require.EqualValues(t, 3, st.Succeeded, "every worker recorded that it exited 0")
			require.Zero(t, st.Failed)
			require.Zero(t, st.Active, "no worker is left registered")

			// The controller can now complete the Job.
			spec, obs, err := e.c.Observe(ctx, e.job)
			require.NoError(t, err)
			tr, ok := jobstate.Next(spec, obs)
			require.True(t, ok)
			require.Equal(t, jobstate.PhaseComplete, tr.To)
			applied, err := e.c.Apply(ctx, e.job, tr)
			require.NoError(t, err)
			require.True(t, applied)
			require.Equal(t, jobstate.PhaseComplete, status(t, e).Phase)
		})
	})

	t.Run("WorkerStartedAfterTheDrainExitsNilAtOnce", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			_, err := e.c.Push(ctx, e.job, items(2), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			r, err := e.c.Lease(ctx, e.job, "first", 0)
			require.NoError(t, err)
			_, err = e.c.Ack(ctx, e.job, r.Batch.Token, ids(r.Batch)...)
			require.NoError(t, err)
			_, err = e.c.Lease(ctx, e.job, "first", 0)
			require.ErrorIs(t, err, queue.ErrDrained)

			var called atomic.Bool
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, ID: "late", Handler: queue.HandlerFunc(func(context.Context, queue.Item) error {
				called.Store(true)
				return nil
			})})
			require.NoError(t, w.wait(t, 2*time.Second))
			require.False(t, called.Load())
			require.EqualValues(t, 1, status(t, e).Succeeded, "the late worker counts as exited 0")
			workers, err := e.c.Workers(ctx, e.job)
			require.NoError(t, err)
			for _, w := range workers {
				require.NotEqual(t, "late", w.ID, "the late worker never registered as active")
			}
		})
	})

	t.Run("HandlerErrorsBecomeRetriesThenDeadItemsWithTheErrorText", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{MaxAttempts: 3,
				RetryBackoff: jobstate.Duration(10 * time.Millisecond), RetryBackoffMax: jobstate.Duration(20 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(4), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			var mu sync.Mutex
			attempts := map[int64][]int{}
			h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
				mu.Lock()
				attempts[it.ID] = append(attempts[it.ID], it.Attempt)
				mu.Unlock()
				switch {
				case it.ID <= 1:
					return fmt.Errorf("convert %s: exit status 2: no space left", it.Payload)
				case it.ID == 2 && it.Attempt == 1:
					return errors.New("flaky")
				}
				return nil
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: h, Concurrency: 2})
			require.NoError(t, w.wait(t, 20*time.Second), "dead items do not keep the Job open")
			require.Equal(t, map[int64][]int{0: {1, 2, 3}, 1: {1, 2, 3}, 2: {1, 2}, 3: {1}}, attempts)
			dead, err := e.c.Dead(ctx, e.job, 0)
			require.NoError(t, err)
			require.Equal(t, []queue.DeadItem{
				{ID: 0, Attempts: 3, LastError: "convert item-0: exit status 2: no space left", Payload: []byte("item-0"), Item: "item-0"},
				{ID: 1, Attempts: 3, LastError: "convert item-1: exit status 2: no space left", Payload: []byte("item-1"), Item: "item-1"},
			}, dead)
			st := status(t, e)
			require.EqualValues(t, 2, st.Items.Succeeded)
			require.EqualValues(t, 2, st.Items.Dead)
			require.EqualValues(t, 7, st.Items.FailedAttempts)
			require.Zero(t, st.Items.Retrying)
		})
	})

	t.Run("PanickingHandlerIsAFailureNotACrash", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{MaxAttempts: 2, RetryBackoff: jobstate.Duration(time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, [][]byte{[]byte("bad"), []byte("good")}, queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			var runs atomic.Int32
			h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
				runs.Add(1)
				if string(it.Payload) == "bad" || it.Attempt == 1 {
					panic("nil map write in " + string(it.Payload))
				}
				return nil
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: h})
			require.NoError(t, w.wait(t, 20*time.Second), "the worker survives its handler's panics")
			require.EqualValues(t, 4, runs.Load())
			dead, err := e.c.Dead(ctx, e.job, 0)
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Equal(t, "bad", dead[0].Item)
			require.Contains(t, dead[0].LastError, "handler panicked: nil map write in bad")
			st := status(t, e)
			require.EqualValues(t, 1, st.Items.Succeeded)
			require.EqualValues(t, 3, st.Items.FailedAttempts)
			require.EqualValues(t, 1, st.Succeeded, "the worker exited 0")
			require.Zero(t, st.Failed, "a panicking item is not a worker failure")
		})
	})

	t.Run("LongItemsAreNotStolenThanksToHeartbeats", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			const lease = 300 * time.Millisecond
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{Lease: jobstate.Duration(lease)}))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			started := make(chan queue.Item, 1)
			release := make(chan struct{})
			var runs atomic.Int32
			long := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
				runs.Add(1)
				started <- it
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			a := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, ID: "a", Handler: long})
			waitFor(t, started, 5*time.Second, "the long item to start")
			var stolen atomic.Bool
			b := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, ID: "b", Handler: queue.HandlerFunc(func(context.Context, queue.Item) error {
				stolen.Store(true)
				return nil
			})})
			require.Never(t, stolen.Load, 4*lease, 10*time.Millisecond, "a heartbeated item is not taken over")
			close(release)
			require.NoError(t, a.wait(t, 10*time.Second))
			require.NoError(t, b.wait(t, 10*time.Second))
			require.False(t, stolen.Load())
			require.EqualValues(t, 1, runs.Load())
			st := status(t, e)
			require.EqualValues(t, 1, st.Items.Succeeded)
			require.Zero(t, st.Items.Takeovers)
			require.Zero(t, st.Items.FailedAttempts)
		})
	})

	t.Run("StopFinishesRunningItemsAndReleasesQueuedOnes", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 6}))
			_, err := e.c.Push(ctx, e.job, items(6), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			started := make(chan int64, 6)
			finish := make(chan struct{})
			h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
				started <- it.ID
				select {
				case <-finish:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: h, Concurrency: 2, Grace: 20 * time.Second})
			waitFor(t, started, 5*time.Second, "the first item")
			waitFor(t, started, 5*time.Second, "the second item")
			w.cancel() // SIGTERM
			require.Never(t, w.returned, 200*time.Millisecond, 10*time.Millisecond, "Run waits for the running items")
			close(finish)
			require.ErrorIs(t, w.wait(t, 10*time.Second), queue.ErrStopped)
			require.Empty(t, started, "no queued item started after the stop")

			st := status(t, e)
			require.EqualValues(t, 2, st.Items.Succeeded, "the running items finished and were acked")
			require.EqualValues(t, 4, st.Items.Retrying, "the queued items were handed back")
			require.Zero(t, st.Items.Leased)
			require.Zero(t, st.Leases)
			require.Zero(t, st.Items.FailedAttempts)
			require.False(t, st.Done)
			require.Zero(t, st.Failed, "a stopped worker is not a failed one")
			require.Zero(t, st.Active)
			r, err := e.c.Lease(ctx, e.job, "next", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 4)
			for _, it := range r.Batch.Items {
				require.Equal(t, 1, it.Attempt, "a handed-back item did not use an attempt")
			}
		})
	})

	t.Run("GraceExceededCancelsTheItemAndReleasesIt", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			const grace = 200 * time.Millisecond
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			started := make(chan struct{}, 1)
			cancelled := make(chan error, 1)
			h := queue.HandlerFunc(func(ctx context.Context, _ queue.Item) error {
				started <- struct{}{}
				<-ctx.Done()
				cancelled <- ctx.Err()
				return ctx.Err()
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: h, Grace: grace})
			waitFor(t, started, 5*time.Second, "the item")
			t0 := time.Now()
			w.cancel()
			require.ErrorIs(t, w.wait(t, 10*time.Second), queue.ErrStopped)
			require.GreaterOrEqual(t, time.Since(t0), grace, "the item had its grace period")
			require.ErrorIs(t, waitFor(t, cancelled, time.Second, "the item's cancellation"), context.Canceled)
			st := status(t, e)
			require.Zero(t, st.Items.Succeeded)
			require.EqualValues(t, 1, st.Items.Retrying, "the cut-short item was handed back")
			require.Zero(t, st.Items.FailedAttempts, "and did not count as a failure")
			require.Zero(t, st.Leases)
			r, err := e.c.Lease(ctx, e.job, "next", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 1)
			require.Equal(t, 1, r.Batch.Items[0].Attempt)
		})
	})

	t.Run("FailingJobStopsRunningItems", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BackoffLimit: jobstate.Ptr(0), Lease: jobstate.Duration(300 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(3), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			started := make(chan struct{}, 3)
			cancelled := make(chan struct{}, 3)
			h := queue.HandlerFunc(func(ctx context.Context, _ queue.Item) error {
				started <- struct{}{}
				<-ctx.Done()
				cancelled <- struct{}{}
				return ctx.Err()
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: h, Grace: time.Minute})
			waitFor(t, started, 5*time.Second, "the item")

			// A peer worker crashed: one failure exceeds a backoff limit of 0.
			first, err := e.c.Finish(ctx, e.job, "crashed-peer", queue.OutcomeFailed)
			require.NoError(t, err)
			require.True(t, first)
			spec, obs, err := e.c.Observe(ctx, e.job)
			require.NoError(t, err)
			tr, ok := jobstate.Next(spec, obs)
			require.True(t, ok)
			require.Equal(t, jobstate.PhaseFailing, tr.To)
			require.Equal(t, jobstate.GuardBackoffLimit, tr.Guard)
			applied, err := e.c.Apply(ctx, e.job, tr)
			require.NoError(t, err)
			require.True(t, applied)

			err = w.wait(t, 5*time.Second)
			require.ErrorIs(t, err, queue.ErrJobFailed)
			require.ErrorContains(t, err, e.job)
			waitFor(t, cancelled, time.Second, "the running item to be cancelled")
			require.Empty(t, started, "nothing else started")

			// With its worker gone, the Job is Failed with the reason.
			spec, obs, err = e.c.Observe(ctx, e.job)
			require.NoError(t, err)
			tr, ok = jobstate.Next(spec, obs)
			require.True(t, ok)
			require.Equal(t, jobstate.PhaseFailed, tr.To)
			applied, err = e.c.Apply(ctx, e.job, tr)
			require.NoError(t, err)
			require.True(t, applied)
			st := status(t, e)
			require.Equal(t, jobstate.PhaseFailed, st.Phase)
			var reasons []string
			for _, c := range st.Conditions {
				if c.Type == jobstate.ConditionFailed {
					reasons = append(reasons, c.Reason)
				}
			}
			require.Equal(t, []string{jobstate.ReasonBackoffLimitExceeded}, reasons)
		})
	})

	t.Run("TakesOverACrashedPeersItemsWhenItsLeaseExpires", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			const lease = 300 * time.Millisecond
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{Lease: jobstate.Duration(lease)}))
			_, err := e.c.Push(ctx, e.job, items(3), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			crashed, err := e.c.Lease(ctx, e.job, "crashed", 0)
			require.NoError(t, err)
			require.Len(t, crashed.Batch.Items, 3, "a peer holds everything, then dies")
			t0 := time.Now()
			var mu sync.Mutex
			attempts := map[int64]int{}
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
				mu.Lock()
				attempts[it.ID] = it.Attempt
				mu.Unlock()
				return nil
			})})
			require.NoError(t, w.wait(t, 10*time.Second))
			took := time.Since(t0)
			require.Equal(t, map[int64]int{0: 2, 1: 2, 2: 2}, attempts, "the items ran again, as second attempts")
			require.Less(t, took, lease+2*time.Second, "taken over about when the lease expired, not at the idle fallback")
			st := status(t, e)
			require.EqualValues(t, 3, st.Items.Succeeded)
			require.EqualValues(t, 1, st.Items.Takeovers)
			res, err := e.c.Ack(ctx, e.job, crashed.Batch.Token, ids(crashed.Batch)...)
			require.NoError(t, err)
			require.Equal(t, queue.SettleResult{Refused: 3}, res, "the dead peer's late acks are refused")
		})
	})

	t.Run("SuspendedJobPausesTheWorkerUntilResumed", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			_, err := e.c.Push(ctx, e.job, items(2), queue.PushOptions{})
			require.NoError(t, err)
			changed, err := e.c.Suspend(ctx, e.job)
			require.NoError(t, err)
			require.True(t, changed)
			got := make(chan int64, 2)
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
				got <- it.ID
				return nil
			})})
			require.Never(t, func() bool { return len(got) > 0 }, 300*time.Millisecond, 10*time.Millisecond, "nothing runs while suspended")
			require.Equal(t, jobstate.PhaseSuspended, status(t, e).Phase)
			changed, err = e.c.Resume(ctx, e.job)
			require.NoError(t, err)
			require.True(t, changed)
			require.EqualValues(t, 0, waitFor(t, got, time.Second, "the first item after resume (well before the idle fallback)"))
			require.EqualValues(t, 1, waitFor(t, got, time.Second, "the second item"))
			require.NoError(t, e.c.Seal(ctx, e.job))
			require.NoError(t, w.wait(t, 5*time.Second))
		})
	})

	t.Run("DeletedJobStopsTheWorker", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{Lease: jobstate.Duration(300 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			started := make(chan struct{}, 1)
			cancelled := make(chan struct{}, 1)
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Grace: time.Minute, Handler: queue.HandlerFunc(func(ctx context.Context, _ queue.Item) error {
				started <- struct{}{}
				<-ctx.Done()
				cancelled <- struct{}{}
				return ctx.Err()
			})})
			waitFor(t, started, 5*time.Second, "the item")
			require.NoError(t, e.c.Delete(ctx, e.job))
			err = w.wait(t, 5*time.Second)
			require.ErrorIs(t, err, queue.ErrNoJob)
			require.ErrorContains(t, err, e.job)
			waitFor(t, cancelled, time.Second, "the running item to be stopped")
			names, err := e.c.Names(ctx)
			require.NoError(t, err)
			require.NotContains(t, names, e.job, "the stopping worker did not bring the Job back")
			_, err = e.c.Status(ctx, e.job)
			require.ErrorIs(t, err, queue.ErrNoJob, "nor any of its keys")
		})
	})

	t.Run("IdleWorkerStopsWhenTheJobFails", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}))
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
			require.Eventually(t, func() bool {
				ws, err := e.c.Workers(ctx, e.job)
				return err == nil && len(ws) == 1
			}, 5*time.Second, 5*time.Millisecond, "the worker registers and waits for items")
			_, err := e.c.Finish(ctx, e.job, "crashed-peer", queue.OutcomeFailed)
			require.NoError(t, err)
			spec, obs, err := e.c.Observe(ctx, e.job)
			require.NoError(t, err)
			tr, ok := jobstate.Next(spec, obs)
			require.True(t, ok)
			applied, err := e.c.Apply(ctx, e.job, tr)
			require.NoError(t, err)
			require.True(t, applied)
			// Woken by the transition, not by the 5s idle fallback; Run then
			// waits for its blocking watch of the pending list, which ends
			// within its 1s server-side timeout (go-redis cannot cancel it).
			require.ErrorIs(t, w.wait(t, 2500*time.Millisecond), queue.ErrJobFailed)
		})
	})

	t.Run("BatchHandlerGetsWholeBatches", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 5, MaxAttempts: 1}))
			_, err := e.c.Push(ctx, e.job, items(12), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			var mu sync.Mutex
			var batches [][]int64
			bh := queue.BatchHandlerFunc(func(_ context.Context, its []queue.Item) error {
				var got []int64
				for _, it := range its {
					got = append(got, it.ID)
				}
				mu.Lock()
				batches = append(batches, got)
				mu.Unlock()
				if got[0] == 5 {
					return errors.New("batch failed: exit status 1")
				}
				return nil
			})
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, BatchHandler: bh})
			require.NoError(t, w.wait(t, 10*time.Second))
			require.Equal(t, [][]int64{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}, {10, 11}}, batches)
			dead, err := e.c.Dead(ctx, e.job, 0)
			require.NoError(t, err)
			require.Len(t, dead, 5, "a failed batch fails each of its items")
			for i, d := range dead {
				require.EqualValues(t, 5+i, d.ID)
				require.Equal(t, "batch failed: exit status 1", d.LastError)
			}
			require.EqualValues(t, 7, status(t, e).Items.Succeeded)
		})
	})

	t.Run("WaitsForAJobThatDoesNotExistYet", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			got := make(chan string, 2)
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Wait: 30 * time.Second, Handler: queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
				got <- string(it.Payload)
				return nil
			})})
			require.Never(t, w.returned, 300*time.Millisecond, 10*time.Millisecond, "the worker waits for the Job")
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			_, err := e.c.Push(ctx, e.job, items(2), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			require.NoError(t, w.wait(t, 10*time.Second))
			require.Equal(t, "item-0", waitFor(t, got, time.Second, "item 0"))
			require.Equal(t, "item-1", waitFor(t, got, time.Second, "item 1"))
		})
	})

	t.Run("WaitGivesUpWithAnErrorNamingTheJob", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			realClock(e)
			w := startWorker(t, e.c, queue.WorkerConfig{Job: e.job, Wait: 300 * time.Millisecond, Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
			err := w.wait(t, 5*time.Second)
			require.ErrorIs(t, err, queue.ErrNoJob)
			require.ErrorContains(t, err, strconv.Quote(e.job))
			require.ErrorContains(t, err, "waited 300ms")
		})
	})

	t.Run("ConfigErrorsNameTheProblem", func(t *testing.T) {
		t.Parallel()
		c := queue.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}))
		h := queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })
		for _, tc := range []struct {
			cfg  queue.WorkerConfig
			want string
		}{
			{queue.WorkerConfig{Handler: h}, "no Job given"},
			{queue.WorkerConfig{Job: "j"}, "exactly one of Handler and BatchHandler"},
			{queue.WorkerConfig{Job: "j", Handler: h, BatchHandler: queue.BatchHandlerFunc(func(context.Context, []queue.Item) error { return nil })}, "exactly one"},
			{queue.WorkerConfig{Job: "j", Handler: h, Concurrency: -1}, "concurrency (-1)"},
			{queue.WorkerConfig{Job: "j", Handler: h, BatchSize: -1}, "batch-size (-1)"},
			{queue.WorkerConfig{Job: "j", Handler: h, Heartbeat: -time.Second}, "heartbeat (-1s)"},
			{queue.WorkerConfig{Job: "j", Handler: h, Grace: -time.Second}, "grace (-1s)"},
		} {
			_, err := queue.NewWorker(c, tc.cfg)
			require.ErrorContains(t, err, tc.want)
		}
	})
}

// TestWorkerPicksUpNewItemsQuickly checks the requirement: an idle
// worker picks up an item within 100 ms of its push, whether it was pushed
// through the Client or by a plain RPUSH from any Redis client. On real
// Redis the worker is first seen blocked on the pending list (idle), so the
// measure is the wake-up, not a lucky poll.
func TestWorkerPicksUpNewItemsQuickly(t *testing.T) {
	t.Parallel()
	const limit = 100 * time.Millisecond

	check := func(t *testing.T, c *queue.Client, job string, idle func(t *testing.T), limit time.Duration) {
		ctx := context.Background()
		require.NoError(t, c.Create(ctx, job, jobstate.Spec{}))
		starts := make(chan time.Time, 1)
		w := startWorker(t, c, queue.WorkerConfig{Job: job, Handler: queue.HandlerFunc(func(context.Context, queue.Item) error {
			starts <- time.Now()
			return nil
		})})
		// Four pushes of each kind. A loaded machine may delay one pickup
		// (scheduling, not the wake-up), so one slow pickup per kind is
		// tolerated, within half the 1s renewal of the pending-list watch
		// and far below the 5s idle fallback.
		slow := map[string]int{}
		for i := range 8 {
			idle(t)
			kind := "Push"
			t0 := time.Now()
			if i%2 == 0 {
				_, err := c.Push(ctx, job, [][]byte{[]byte("via-client")}, queue.PushOptions{})
				require.NoError(t, err)
			} else {
				kind = "RPUSH"
				require.NoError(t, c.Redis().RPush(ctx, queue.PendingKey(job), "via-rpush").Err())
			}
			lat := waitFor(t, starts, 5*time.Second, "the pushed item to start").Sub(t0)
			t.Logf("push %d (%s): picked up after %s", i, kind, lat)
			require.Less(t, lat, 5*limit, "push %d (%s)", i, kind)
			if lat >= limit {
				slow[kind]++
			}
		}
		require.LessOrEqual(t, slow["Push"], 1, "pickups slower than %s after Push", limit)
		require.LessOrEqual(t, slow["RPUSH"], 1, "pickups slower than %s after RPUSH", limit)
		require.NoError(t, c.Seal(ctx, job))
		require.NoError(t, w.wait(t, 5*time.Second), "sealing an empty Job ends its idle worker at once")
		st, err := c.Status(ctx, job)
		require.NoError(t, err)
		require.EqualValues(t, 8, st.Items.Succeeded)
	}

	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		// A server of its own, so that its blocked clients are this worker's.
		srv := redistest.ForTest(t)
		c, err := queue.Open(context.Background(), queue.Options{URL: srv.URL()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		idle := func(t *testing.T) {
			require.Eventually(t, func() bool {
				info, err := c.Redis().Info(context.Background(), "clients").Result()
				return err == nil && strings.Contains(info, "blocked_clients:1\r\n")
			}, 10*time.Second, time.Millisecond, "the worker goes idle, blocked on the pending list")
		}
		check(t, c, newJobName(), idle, limit)
	})

	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		c := queue.New(redis.NewClient(&redis.Options{Addr: m.Addr()}))
		t.Cleanup(func() { _ = c.Close() })
		// Load the scripts first, as Open does: the measure is the wake-up.
		require.NoError(t, c.Ping(context.Background()))
		job := newJobName()
		idle := func(t *testing.T) {
			// miniredis shows no blocked clients; wait until the worker is
			// registered and has no item in hand.
			require.Eventually(t, func() bool {
				ws, err := c.Workers(context.Background(), job)
				if err != nil || len(ws) == 0 {
					return false
				}
				st, err := c.Status(context.Background(), job)
				return err == nil && st.Items.Leased == 0
			}, 10*time.Second, time.Millisecond)
		}
		// miniredis wakes blocked clients by its own polling; the bound
		// still proves a wake-up, far below the idle worker's 5s fallback.
		check(t, c, job, idle, 4*limit)
	})
}

func TestFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RecordsAWorkersEndOnce", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			require.NoError(t, e.c.Register(ctx, e.job, queue.WorkerInfo{ID: "w"}))
			first, err := e.c.Finish(ctx, e.job, "w", queue.OutcomeFailed)
			require.NoError(t, err)
			require.True(t, first)
			first, err = e.c.Finish(ctx, e.job, "w", queue.OutcomeSucceeded)
			require.NoError(t, err)
			require.False(t, first, "only the first record of a worker counts")
			st := status(t, e)
			require.EqualValues(t, 1, st.Failed)
			require.Zero(t, st.Succeeded)
			require.Zero(t, st.Active)
		})
	})

	t.Run("FinishAfterDeleteRecordsNothing", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}))
			require.NoError(t, e.c.Register(ctx, e.job, queue.WorkerInfo{ID: "w"}))
			require.NoError(t, e.c.Delete(ctx, e.job))
			// The worker of the deleted Job ends late.
			_, err := e.c.Finish(ctx, e.job, "w", queue.OutcomeFailed)
			require.ErrorIs(t, err, queue.ErrNoJob)
			keys, err := e.c.Redis().Keys(ctx, "workq:{"+e.job+"}:*").Result()
			require.NoError(t, err)
			require.Empty(t, keys, "no key of the deleted Job comes back")

			// A new Job of the same name starts clean: the old worker's
			// failure must not count toward its backoff limit.
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}))
			st := status(t, e)
			require.Zero(t, st.Failed)
			spec, obs, err := e.c.Observe(ctx, e.job)
			require.NoError(t, err)
			_, ok := jobstate.Next(spec, obs)
			require.False(t, ok, "the new Job is not failing")
		})
	})
}

// TestIdleWorkerDoesNotSpinWhileRedisIsDown: an idle worker watches the
// pending list with a blocking call; when Redis goes away, that call fails
// at once, and the watch must back off instead of being renewed in a tight
// loop (each failed watch leaves a goroutine behind for its backoff).
func TestIdleWorkerDoesNotSpinWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	// No retries inside go-redis: the worker's own backoff must hold.
	c := queue.New(redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Microsecond}))
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()))
	job := newJobName()
	require.NoError(t, c.Create(context.Background(), job, jobstate.Spec{}))
	w := startWorker(t, c, queue.WorkerConfig{Job: job, Logger: slog.New(slog.DiscardHandler),
		Handler: queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })})
	require.Eventually(t, func() bool {
		info, err := c.Redis().Info(context.Background(), "clients").Result()
		return err == nil && strings.Contains(info, "blocked_clients:1\r\n")
	}, 10*time.Second, time.Millisecond, "the worker goes idle, blocked on the pending list")
	base := runtime.NumGoroutine()
	srv.Stop()
	peak := base
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		peak = max(peak, runtime.NumGoroutine())
		runtime.Gosched()
	}
	t.Logf("goroutines: %d before Redis stopped, peak %d after", base, peak)
	require.Less(t, peak-base, 500, "the idle worker renews its failed watch in a tight loop")
	w.cancel()
	require.ErrorIs(t, w.wait(t, 15*time.Second), queue.ErrStopped)
}
