package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

func items(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("item-%d", i)
	}
	return out
}

func TestRepeatedCallsAreAnsweredOnce(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, items(6)...)
		w := e.worker(t, "w1")

		// A lease delivered twice (a client retry after a lost reply)
		// returns the same batch and leases nothing more.
		q := store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: w.wid, Seq: 1, Want: 3}
		a, err := e.s.Lease(ctx, e.job, q)
		require.NoError(t, err)
		b, err := e.s.Lease(ctx, e.job, q)
		require.NoError(t, err)
		require.Equal(t, a.Lease.Token, b.Lease.Token)
		require.Equal(t, a.Lease.Items, b.Lease.Items)
		require.EqualValues(t, 3, e.status(t).Items.Leased)

		// A settle delivered twice returns the first reply and counts once.
		sq := store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: 1, Leases: []store.Settlement{ackAll(a.Lease)}}
		r1, err := e.s.Settle(ctx, e.job, sq)
		require.NoError(t, err)
		r2, err := e.s.Settle(ctx, e.job, sq)
		require.NoError(t, err)
		require.Equal(t, r1, r2)
		require.Equal(t, 3, r1.Acked)
		require.Zero(t, r1.Refused, "no false stale-ack report")
		require.EqualValues(t, 3, e.status(t).Items.Succeeded)

		// A late copy of an older call is refused and changes nothing.
		q.Seq = 2
		_, err = e.s.Lease(ctx, e.job, q)
		require.NoError(t, err)
		q.Seq = 1
		_, err = e.s.Lease(ctx, e.job, q)
		require.ErrorIs(t, err, store.ErrStale, "seq 1's lease was settled: its late copy cannot lease again")
		st := e.status(t)
		require.EqualValues(t, 3, st.Items.Leased, "only seq 2 leased")
		sq.Seq = 0
		_, err = e.s.Settle(ctx, e.job, sq)
		require.ErrorIs(t, err, store.ErrStale)
		require.EqualValues(t, 3, e.status(t).Items.Succeeded)
	})
}

func TestAnotherIncarnationIsRefused(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, items(5)...)
		old := e.worker(t, "w1")
		l := old.mustLease(t, 5)

		require.NoError(t, e.s.Delete(ctx, e.job))
		e.create(t, jobstate.Spec{})
		e.push(t, items(5)...)
		_, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)

		// Everything the old worker sends is refused with a distinct error.
		_, err = old.settle(t, ackAll(l))
		require.ErrorIs(t, err, store.ErrReplaced)
		_, err = old.lease(t, 5)
		require.ErrorIs(t, err, store.ErrReplaced)
		_, err = e.s.Heartbeat(ctx, e.job, old.reg.UID, old.wid, []string{l.Token})
		require.ErrorIs(t, err, store.ErrReplaced)
		_, err = e.s.Finish(ctx, e.job, old.reg.UID, old.wid, old.reg.Session, store.OutcomeSucceeded)
		require.ErrorIs(t, err, store.ErrReplaced)
		st := e.status(t)
		require.Zero(t, st.Items.Succeeded)
		require.Zero(t, st.Succeeded)
		require.EqualValues(t, 5, st.Items.Pending)

		// A Job that vanished (deleted, flushed) answers NOJOB.
		require.NoError(t, e.s.Delete(ctx, e.job))
		_, err = old.lease(t, 5)
		require.ErrorIs(t, err, store.ErrNoJob)
	})
}

func TestFencesGrowAcrossIncarnations(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, items(2)...)
		w := e.worker(t, "w1")
		a := w.mustLease(t, 1)
		b := w.mustLease(t, 1)
		require.Greater(t, b.Fence, a.Fence)
		require.NoError(t, e.s.Delete(ctx, e.job))
		e.advance(t, 2*time.Millisecond)
		e.create(t, jobstate.Spec{})
		e.push(t, items(1)...)
		c := e.worker(t, "w1").mustLease(t, 1)
		require.Greater(t, c.Fence, b.Fence, "a re-created Job hands out larger fences")
	})
}

// TestARollbackReissuesNoToken: Redis comes back with an older state (a
// restart from a snapshot, a failover to a lagging replica). A worker that
// registered after the snapshot, settling its lost lease, must not ack the
// items that a worker registering after the rollback leased; and fences go
// on growing. Real Redis only: miniredis dumps only strings.
func TestARollbackReissuesNoToken(t *testing.T) {
	t.Parallel()
	e := realEnv(t)
	e.create(t, jobstate.Spec{BatchSize: 3})
	e.push(t, items(6)...)
	snapshot := dumpJob(t, e)

	a := e.worker(t, "a")
	la := a.mustLease(t, 1)
	e.advance(t, 5*time.Millisecond)
	restoreJob(t, e, snapshot)

	b := e.worker(t, "b")
	require.NotEqual(t, a.reg.Session, b.reg.Session, "sessions are unique across a rollback")
	lb := b.mustLease(t, 3)
	require.NotEqual(t, la.Token, lb.Token)
	require.Greater(t, lb.Fence, la.Fence, "fences grow across a rollback")

	res, err := a.settle(t, ackAll(la))
	require.NoError(t, err)
	require.Zero(t, res.Acked, "the lost lease acks nothing")
	require.Equal(t, []string{la.Token}, res.Gone)
	st := e.status(t)
	require.Zero(t, st.Items.Succeeded, "no item of b's lease counts before it ran")
	require.EqualValues(t, 3, st.Items.Leased)

	res, err = b.settle(t, ackAll(lb))
	require.NoError(t, err)
	require.Equal(t, 3, res.Acked)
}

// dumpJob returns every key of the Job, dumped.
func dumpJob(t *testing.T, e *env) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "workq:{"+e.job+"}:*").Result()
	require.NoError(t, err)
	out := map[string]string{}
	for _, k := range keys {
		v, err := e.rdb.Dump(ctx, k).Result()
		require.NoError(t, err)
		out[k] = v
	}
	return out
}

// restoreJob puts the Job's keys back as dumpJob saw them.
func restoreJob(t *testing.T, e *env, keys map[string]string) {
	t.Helper()
	ctx := context.Background()
	now, err := e.rdb.Keys(ctx, "workq:{"+e.job+"}:*").Result()
	require.NoError(t, err)
	if len(now) > 0 {
		require.NoError(t, e.rdb.Del(ctx, now...).Err())
	}
	for k, v := range keys {
		require.NoError(t, e.rdb.Restore(ctx, k, 0, v).Err())
	}
}

func TestOnlyStartedItemsAreChargedWhenAWorkerDies(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Lease: jobstate.Duration(time.Second), MaxAttempts: 1})
		e.push(t, items(5)...)
		_, err := e.s.Seal(context.Background(), e.job, "")
		require.NoError(t, err)
		w := e.worker(t, "w1")
		l := w.mustLease(t, 5)
		// The first item started; the worker says so, then dies. Its peer
		// heartbeats on: Redis is up, so the lease expires.
		p := e.dieHolding(t, w, l, 1)
		r, err := p.lease(t, 10)
		require.NoError(t, err)
		require.NotNil(t, r.Lease)
		st := e.status(t)
		require.EqualValues(t, 1, st.Items.Dead, "the started item used its only attempt")
		require.EqualValues(t, 1, st.Items.FailedAttempts)
		require.EqualValues(t, 1, st.Items.Takeovers)
		require.Len(t, r.Lease.Items, 4, "the four that never started run again")
		for _, it := range r.Lease.Items {
			require.Equal(t, 1, it.Attempt, "item %d had not started: no attempt used", it.ID)
		}
		dead, err := e.s.Dead(context.Background(), e.job, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.EqualValues(t, 0, dead[0].ID)
		require.Contains(t, dead[0].LastError, "lease expired")
	})
}

// TestATakeoverOfTheLastLeaseEndsTheJob: the last lease of a sealed Job
// expires while its item runs its last attempt, and the next lease call
// takes it over: the item is dead, nothing is left, and the Job is
// drained. That call used to judge the books by the leased count it had
// read before the takeover and found the Job lost ("the lease records do
// not match the leased items").
func TestATakeoverOfTheLastLeaseEndsTheJob(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Lease: jobstate.Duration(time.Second), MaxAttempts: 1})
		e.push(t, items(1)...)
		_, err := e.s.Seal(context.Background(), e.job, "")
		require.NoError(t, err)
		w := e.worker(t, "w1")
		l := w.mustLease(t, 1)
		p := e.dieHolding(t, w, l, 1)
		_, err = p.lease(t, 10)
		require.ErrorIs(t, err, store.ErrDrained)
		snap, err := e.s.Snapshot(context.Background(), e.job)
		require.NoError(t, err)
		require.Empty(t, snap.Observed.StateLost, "the books balance")
		require.EqualValues(t, 1, snap.Status.Items.Dead)
		require.EqualValues(t, 1, snap.Status.Items.Takeovers)
	})
}

func TestARedisStallCostsNoAttempts(t *testing.T) {
	t.Parallel()
	// On miniredis the server's clock jumps while no call runs: that is a
	// stall of Redis as scripts see it (a pause, a fork, a failover).
	e := miniEnv(t)
	e.create(t, jobstate.Spec{Lease: jobstate.Duration(3 * time.Second), MaxAttempts: 1})
	e.push(t, items(4)...)
	w := e.worker(t, "w1")
	l := w.mustLease(t, 4)
	_, err := w.settle(t, store.Settlement{Token: l.Token, Started: 4})
	require.NoError(t, err)
	e.advance(t, 8*time.Second) // CLIENT PAUSE 8000
	// Whatever runs first after the stall (another worker's lease, the
	// controller's reap) must not take the lease over.
	p := e.worker(t, "w2")
	r, err := p.lease(t, 10)
	require.NoError(t, err)
	require.Nil(t, r.Lease)
	rr, err := e.s.Reap(context.Background(), e.job)
	require.NoError(t, err)
	require.Zero(t, rr.LeasesReclaimed)
	require.Zero(t, rr.WorkersLost, "the stall is not the workers' fault")
	hb, err := e.s.Heartbeat(context.Background(), e.job, w.reg.UID, w.wid, []string{l.Token})
	require.NoError(t, err)
	require.Empty(t, hb.Lost)
	res, err := w.settle(t, ackAll(l))
	require.NoError(t, err)
	require.Equal(t, 4, res.Acked)
	st := e.status(t)
	require.Zero(t, st.Items.Dead)
	require.Zero(t, st.Items.FailedAttempts)
}

func TestAWorkerThatStopsIsStillTakenOver(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{Lease: jobstate.Duration(3 * time.Second)})
	e.push(t, items(4)...)
	w := e.worker(t, "w1")
	l := w.mustLease(t, 2)
	p := e.worker(t, "w2")
	pl := p.mustLease(t, 2)
	// w2 heartbeats every second; w1 is silent.
	for range 4 {
		e.advance(t, time.Second)
		_, err := e.s.Heartbeat(context.Background(), e.job, p.reg.UID, p.wid, []string{pl.Token})
		require.NoError(t, err)
	}
	rr, err := e.s.Reap(context.Background(), e.job)
	require.NoError(t, err)
	require.Equal(t, 1, rr.LeasesReclaimed)
	require.Equal(t, 1, rr.WorkersLost)
	hb, err := e.s.Heartbeat(context.Background(), e.job, w.reg.UID, w.wid, []string{l.Token})
	require.NoError(t, err)
	require.Equal(t, []string{l.Token}, hb.Lost, "a lease really taken over is reported")
	res, err := w.settle(t, ackAll(l))
	require.NoError(t, err)
	require.Equal(t, 2, res.Refused)
	require.Equal(t, []string{l.Token}, res.Gone)
}

func TestSettledLeasesAreNotReportedLost(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		e.push(t, items(3)...)
		w := e.worker(t, "w1")
		l := w.mustLease(t, 3)
		_, err := w.settle(t, ackAll(l))
		require.NoError(t, err)
		// A heartbeat built before the settle still names the token.
		hb, err := e.s.Heartbeat(context.Background(), e.job, w.reg.UID, w.wid, []string{l.Token})
		require.NoError(t, err)
		require.Empty(t, hb.Lost)
	})
}

func TestPartialSettlesAndFailures(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{MaxAttempts: 2, RetryBackoff: jobstate.Duration(time.Minute), RetryBackoffMax: jobstate.Duration(time.Minute)})
		e.push(t, items(5)...)
		w := e.worker(t, "w1")
		l := w.mustLease(t, 5)
		r, err := w.settle(t, store.Settlement{Token: l.Token, Acked: []int64{1, 3}, Started: 2})
		require.NoError(t, err)
		require.Equal(t, 2, r.Acked)
		st := e.status(t)
		require.EqualValues(t, 2, st.Items.Succeeded)
		require.EqualValues(t, 3, st.Items.Leased)
		// Acking 1 again is refused: it was settled.
		r, err = w.settle(t, store.Settlement{Token: l.Token, Acked: []int64{1}, Started: -1})
		require.NoError(t, err)
		require.Equal(t, 1, r.Refused)
		// The rest: 0 failed (retried later), 2 acked, 4 handed back.
		r, err = w.settle(t, store.Settlement{Token: l.Token, All: true, AckCount: 1, Started: -1,
			Failed: []store.Failure{{ID: 0, Action: store.ActionCount, Err: "boom"}}, Released: []int64{4}})
		require.NoError(t, err)
		require.Equal(t, store.SettleResult{Acked: 1, Failed: 1, Released: 1}, r)
		st = e.status(t)
		require.EqualValues(t, 3, st.Items.Succeeded)
		require.EqualValues(t, 1, st.Items.Retrying)
		require.EqualValues(t, 1, st.Items.Returned)
		require.Zero(t, st.Items.Leased)
		require.Zero(t, st.Leases)
		require.Empty(t, st.StateLost)
		// The returned item comes next, on its first attempt still.
		n := w.mustLease(t, 5)
		require.Len(t, n.Items, 1)
		require.EqualValues(t, 4, n.Items[0].ID)
		require.Equal(t, 1, n.Items[0].Attempt)
		require.Equal(t, "item-4", string(n.Items[0].Payload))
	})
}

func TestFailureActions(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{MaxAttempts: 5})
		e.push(t, items(3)...)
		w := e.worker(t, "w1")
		l := w.mustLease(t, 3)
		r, err := w.settle(t, store.Settlement{Token: l.Token, All: true, Started: -1, Failed: []store.Failure{
			{ID: 0, Action: store.ActionFailIndex, Err: "index failed"},
			{ID: 1, Action: store.ActionIgnore, Err: "ignored"},
			{ID: 2, Action: store.ActionFailJob, Err: "exit status 42"},
		}})
		require.NoError(t, err)
		require.Equal(t, 2, r.Dead)
		require.True(t, r.FailJob)
		snap, err := e.s.Snapshot(context.Background(), e.job)
		require.NoError(t, err)
		require.EqualValues(t, 2, snap.Status.Items.Dead)
		require.EqualValues(t, 1, snap.Status.Items.Retrying)
		require.EqualValues(t, 2, snap.Status.Items.FailedAttempts, "an ignored failure uses no attempt")
		require.Contains(t, snap.Observed.FailJob, "exit status 42")
		tr, ok := jobstate.Next(snap.Status.Spec, snap.Observed)
		require.True(t, ok)
		require.Equal(t, jobstate.ReasonPodFailurePolicy, tr.Condition.Reason)
		applied, err := e.s.Apply(context.Background(), e.job, tr)
		require.NoError(t, err)
		require.True(t, applied)
	})
}

func TestIndexedCompletionsAreRanges(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Completions: jobstate.Ptr(10)})
		w := e.worker(t, "w1")
		a := w.mustLease(t, 4)
		b := w.mustLease(t, 3)
		require.EqualValues(t, 4, b.Items[0].ID)
		require.Equal(t, "4", string(b.Items[0].Payload))
		_, err := w.settle(t, ackAll(b), store.Settlement{Token: a.Token, Acked: []int64{0, 2}, Started: -1})
		require.NoError(t, err)
		done, err := e.s.Completed(context.Background(), e.job)
		require.NoError(t, err)
		require.Equal(t, "0,2,4-6", done)
		_, err = w.settle(t, ackAll(a))
		require.NoError(t, err)
		done, err = e.s.Completed(context.Background(), e.job)
		require.NoError(t, err)
		require.Equal(t, "0-6", done)
		st, err := e.s.Status(context.Background(), e.job)
		require.NoError(t, err)
		require.Equal(t, "0-6", st.CompletedIndexes)
		require.EqualValues(t, 7, st.Items.Succeeded)
		require.EqualValues(t, 3, st.Items.Pending)
	})
}

func TestLostStateIsDetected(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, items(10)...)
		_, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		// Redis loses the pending list (evicted, say).
		require.NoError(t, e.rdb.Del(ctx, store.PendingKey(e.job)).Err())
		w := e.worker(t, "w1")
		r, err := w.lease(t, 5)
		require.NoError(t, err)
		require.Nil(t, r.Lease)
		require.Equal(t, "lost", r.Wait, "a drained-looking Job whose books do not add up is not done")
		snap, err := e.s.Snapshot(ctx, e.job)
		require.NoError(t, err)
		require.Contains(t, snap.Status.StateLost, "10 items were pushed")
		tr, ok := jobstate.Next(snap.Status.Spec, snap.Observed)
		require.True(t, ok)
		require.Equal(t, jobstate.ReasonStateLost, tr.Condition.Reason)
		applied, err := e.s.Apply(ctx, e.job, tr)
		require.NoError(t, err)
		require.True(t, applied)
		_, err = w.lease(t, 5)
		require.ErrorIs(t, err, store.ErrJobFailed)
	})
}

func TestRetryDeadInChunks(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{MaxAttempts: 1})
		n := store.RetryDeadChunk*2 + 5
		e.push(t, items(n)...)
		w := e.worker(t, "w1")
		for {
			r, err := w.lease(t, 1000)
			require.NoError(t, err)
			if r.Lease == nil {
				break
			}
			var fs []store.Failure
			for _, it := range r.Lease.Items {
				fs = append(fs, store.Failure{ID: it.ID, Err: "no"})
			}
			_, err = w.settle(t, store.Settlement{Token: r.Lease.Token, All: true, Failed: fs, Started: -1})
			require.NoError(t, err)
		}
		require.EqualValues(t, n, e.status(t).Items.Dead)
		first, err := e.s.Dead(ctx, e.job, 2)
		require.NoError(t, err)
		require.Len(t, first, 2)
		require.EqualValues(t, 0, first[0].ID)
		require.EqualValues(t, 1, first[1].ID)
		back, err := e.s.RetryDead(ctx, e.job, false)
		require.NoError(t, err)
		require.Equal(t, n, back)
		st := e.status(t)
		require.Zero(t, st.Items.Dead)
		require.EqualValues(t, n, st.Items.Retrying)
		r := w.mustLease(t, 1)
		require.Equal(t, 1, r.Items[0].Attempt, "fresh attempts")
		require.Empty(t, e.status(t).StateLost)
	})
}

func TestTerminalStatesAreFinal(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, "x")
		_, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		w := e.worker(t, "w1")
		_, err = w.settle(t, ackAll(w.mustLease(t, 1)))
		require.NoError(t, err)
		_, err = w.lease(t, 1)
		require.ErrorIs(t, err, store.ErrDrained)
		_, err = e.s.Finish(ctx, e.job, w.reg.UID, w.wid, w.reg.Session, store.OutcomeSucceeded)
		require.NoError(t, err)
		for range 3 {
			snap, err := e.s.Snapshot(ctx, e.job)
			require.NoError(t, err)
			tr, ok := jobstate.Next(snap.Status.Spec, snap.Observed)
			if !ok {
				break
			}
			_, err = e.s.Apply(ctx, e.job, tr)
			require.NoError(t, err)
		}
		st := e.status(t)
		require.Equal(t, jobstate.PhaseComplete, st.Phase)
		require.EqualValues(t, 1, st.Succeeded)
		// A worker that starts now exits at once without counting.
		_, err = e.s.Register(ctx, e.job, "", "late", []byte(`{}`))
		require.ErrorIs(t, err, store.ErrDrained)
		require.EqualValues(t, 1, e.status(t).Succeeded)
		// Retry of a finished Job needs --reopen.
		_, err = e.s.RetryDead(ctx, e.job, false)
		require.ErrorIs(t, err, store.ErrFinished)
	})
}

func TestEvictingRedisIsRefused(t *testing.T) {
	t.Parallel()
	e := realEnv(t)
	// A Redis of its own: the policy is server-wide.
	_ = e
	srv := startRedis(t, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
	s, err := store.Open(context.Background(), store.DialOptions{URL: srv})
	require.ErrorIs(t, err, store.ErrEviction)
	require.Nil(t, s)
	require.True(t, strings.Contains(err.Error(), "allkeys-lru"), err)
}

func TestCreateIsIdempotentAndNamesAreListed(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		_, err := e.s.Create(ctx, e.job, jobstate.Spec{})
		require.ErrorIs(t, err, store.ErrExists)
		names, uids, err := e.s.Names(ctx)
		require.NoError(t, err)
		require.Contains(t, names, e.job)
		require.NotEmpty(t, uids[e.job])
		require.NoError(t, e.s.Delete(ctx, e.job))
		names, _, err = e.s.Names(ctx)
		require.NoError(t, err)
		require.NotContains(t, names, e.job)
		require.ErrorIs(t, e.s.Delete(ctx, e.job), store.ErrNoJob)
	})
}

func TestSpeculativeCopiesOfStragglers(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{Speculative: true})
		e.push(t, items(3)...)
		_, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		a := e.worker(t, "a")
		b := e.worker(t, "b")
		fast := a.mustLease(t, 2)
		slow := b.mustLease(t, 1)
		// b's item starts; a's finish quickly and teach the Job that items
		// take 1ms.
		_, err = b.settle(t, store.Settlement{Token: slow.Token, Started: 1})
		require.NoError(t, err)
		_, err = e.s.Settle(ctx, e.job, store.SettleRequest{UID: a.reg.UID, Session: a.reg.Session, Seq: 1, Timed: 2,
			TimedTotal: 2 * time.Millisecond, Leases: []store.Settlement{ackAll(fast)}})
		a.set = 1
		require.NoError(t, err)
		r, err := a.lease(t, 1)
		require.NoError(t, err)
		require.Nil(t, r.Lease, "not yet a straggler")
		e.advance(t, 1500*time.Millisecond)
		_, err = e.s.Heartbeat(ctx, e.job, b.reg.UID, b.wid, []string{slow.Token})
		require.NoError(t, err)
		copyL := a.mustLease(t, 1)
		require.Equal(t, slow.Items[0].ID, copyL.Items[0].ID, "a copy of the straggler")
		require.Greater(t, copyL.Fence, slow.Fence)
		st := e.status(t)
		require.EqualValues(t, 1, st.Items.Leased, "a copy is not counted")
		// The copy reports that it started, as every lease does: it goes on.
		res, err := a.settle(t, store.Settlement{Token: copyL.Token, Started: 1})
		require.NoError(t, err)
		require.Empty(t, res.Gone, "a copy's start report does not end it")
		// The copy finishes first: it counts, the original is taken away.
		res, err = a.settle(t, ackAll(copyL))
		require.NoError(t, err)
		require.Equal(t, 1, res.Acked)
		hb, err := e.s.Heartbeat(ctx, e.job, b.reg.UID, b.wid, []string{slow.Token})
		require.NoError(t, err)
		require.Equal(t, []string{slow.Token}, hb.Lost)
		res, err = b.settle(t, ackAll(slow))
		require.NoError(t, err)
		require.Equal(t, 1, res.Refused, "the loser's ack is refused")
		st = e.status(t)
		require.EqualValues(t, 3, st.Items.Succeeded)
		require.Zero(t, st.Items.Leased)
		require.Empty(t, st.StateLost)
		_, err = a.lease(t, 1)
		require.ErrorIs(t, err, store.ErrDrained)
	})
}

func TestSettleCanWaitForReplicas(t *testing.T) {
	t.Parallel()
	e := realEnv(t)
	e.create(t, jobstate.Spec{})
	e.push(t, items(3)...)
	w := e.worker(t, "w1")
	l := w.mustLease(t, 3)
	w.set++
	// This redis-server has no replica: WAIT 1 times out, and says so.
	r, err := e.s.Settle(context.Background(), e.job, store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: w.set,
		Leases: []store.Settlement{ackAll(l)}, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 3, r.Acked)
	require.Zero(t, r.Replicas)
	require.EqualValues(t, 3, e.status(t).Items.Succeeded)
}

// A worker that finds nothing to lease while leases are held makes the
// Job "hungry": the holders' heartbeats hear of it and hand back what they
// have not started. Only another worker's hunger counts, and only while
// that worker is live: a lone worker's own hunger (its own leases are the
// ones held) would have it hand its items back to itself, and a worker
// that has ended takes nothing.
func TestHungerIsAnotherLiveWorkers(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{})
		e.push(t, items(2)...)
		_, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		a := e.worker(t, "a")
		l := a.mustLease(t, 2)
		hungry := func(w *session) time.Duration {
			t.Helper()
			hb, err := e.s.Heartbeat(ctx, e.job, w.reg.UID, w.wid, []string{l.Token})
			require.NoError(t, err)
			return hb.HungryAgo
		}
		require.Equal(t, time.Duration(-1), hungry(a), "nobody was hungry")

		r, err := a.lease(t, 1)
		require.NoError(t, err)
		require.Nil(t, r.Lease)
		require.Equal(t, "peers", r.Wait, "a's own lease is held")
		require.Equal(t, time.Duration(-1), hungry(a), "a's own hunger is not news to a")

		e.advance(t, 200*time.Millisecond) // past the 100 ms between two hungers
		b := e.worker(t, "b")
		r, err = b.lease(t, 1)
		require.NoError(t, err)
		require.Nil(t, r.Lease)
		require.GreaterOrEqual(t, hungry(a), time.Duration(0), "b is idle while a holds items")

		_, err = e.s.Finish(ctx, e.job, b.reg.UID, b.wid, b.reg.Session, store.OutcomeSucceeded)
		require.NoError(t, err)
		require.Equal(t, time.Duration(-1), hungry(a), "b has ended: nobody takes what a would hand back")
	})
}
