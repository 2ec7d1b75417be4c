package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// shardSessions registers worker wid with every shard of sharded Job e.job.
func (e *env) shardSessions(t *testing.T, shards int, wid string) []*session {
	t.Helper()
	out := make([]*session, shards)
	for k := range out {
		se := &env{s: e.s, rdb: e.rdb, mini: e.mini, job: store.ShardName(e.job, k)}
		out[k] = se.worker(t, wid)
	}
	return out
}

// TestAShardedJobTakesItsNameAtomically: a sharded Job and a Job of one
// slot never share a name, a create delivered once is one Job, and a
// shard name taken by another Job undoes the whole create.
func TestAShardedJobTakesItsNameAtomically(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		uid := e.create(t, jobstate.Spec{Shards: 3})
		g, err := e.s.Group(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, uid, g.UID)
		require.Equal(t, []string{e.job + "-shard-0", e.job + "-shard-1", e.job + "-shard-2"}, g.Shards)
		for k, sh := range g.Shards {
			spec, _, err := e.s.Spec(ctx, sh)
			require.NoError(t, err)
			require.Equal(t, e.job, spec.Group)
			require.Equal(t, k, spec.Shard)
		}
		_, err = e.s.Create(ctx, e.job, jobstate.Spec{})
		require.ErrorIs(t, err, store.ErrExists, "a Job of one slot under a sharded Job's name")
		_, err = e.s.Create(ctx, e.job, jobstate.Spec{Shards: 2})
		require.ErrorIs(t, err, store.ErrExists)
		got, err := e.s.UID(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, uid, got)
		groups, err := e.s.GroupNames(ctx)
		require.NoError(t, err)
		require.Contains(t, groups, e.job)

		// A Job of one slot takes the name first: no sharded Job of it.
		plain := e.job + "-plain"
		_, err = e.s.Create(ctx, plain, jobstate.Spec{})
		require.NoError(t, err)
		_, err = e.s.Create(ctx, plain, jobstate.Spec{Shards: 2})
		require.ErrorIs(t, err, store.ErrExists)

		// A taken shard name undoes the create: no record, no shard left.
		taken := e.job + "-t"
		_, err = e.s.Create(ctx, store.ShardName(taken, 1), jobstate.Spec{})
		require.NoError(t, err)
		_, err = e.s.Create(ctx, taken, jobstate.Spec{Shards: 3})
		require.ErrorIs(t, err, store.ErrExists)
		require.ErrorContains(t, err, store.ShardName(taken, 1))
		_, err = e.s.Group(ctx, taken)
		require.ErrorIs(t, err, store.ErrNoJob)
		_, err = e.s.UID(ctx, store.ShardName(taken, 0))
		require.ErrorIs(t, err, store.ErrNoJob, "the shard created before the taken one is undone")
		_, err = e.s.UID(ctx, store.ShardName(taken, 1))
		require.NoError(t, err, "the Job that held the name is untouched")

		// A fixed completion count Job's indexes go in contiguous blocks.
		idx := e.job + "-i"
		_, err = e.s.Create(ctx, idx, jobstate.Spec{Shards: 3, Completions: jobstate.Ptr(10)})
		require.NoError(t, err)
		var blocks [][2]int
		for k := range 3 {
			spec, _, err := e.s.Spec(ctx, store.ShardName(idx, k))
			require.NoError(t, err)
			blocks = append(blocks, [2]int{spec.IndexBase, *spec.Completions})
		}
		require.Equal(t, [][2]int{{0, 3}, {3, 3}, {6, 4}}, blocks, "[base, completions] of each shard")

		// Bad specs name the problem.
		_, err = e.s.Create(ctx, e.job+"-c", jobstate.Spec{Shards: 4, Completions: jobstate.Ptr(3)})
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
		require.ErrorContains(t, err, "each shard holds at least one index")
		_, err = e.s.Create(ctx, e.job+"-c", jobstate.Spec{Shards: 2, Completions: jobstate.Ptr(4),
			SuccessPolicy: []jobstate.SuccessRule{{SucceededCount: jobstate.Ptr(2)}}})
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
		require.ErrorContains(t, err, "success-policy")
		long := "a123456789b123456789c123456789d123456789e123456789f12345678"
		_, err = e.s.Create(ctx, long, jobstate.Spec{Shards: 12})
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
		require.ErrorContains(t, err, "too long for 12 shards")
		_, err = e.s.Create(ctx, e.job+"-x", jobstate.Spec{Shards: jobstate.MaxShards + 1})
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
	})
}

// TestPushesAreDealtOverTheShards: items go to the shards in turn, a
// repeat pushed with dedupe meets its first copy in the same shard, and
// the status of the sharded Job is the sum of its shards'.
func TestPushesAreDealtOverTheShards(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{Shards: 3})
		e.push(t, items(10)...)
		var each []int64
		for k := range 3 {
			st, err := e.s.Status(ctx, store.ShardName(e.job, k))
			require.NoError(t, err)
			each = append(each, st.Items.Pending)
		}
		require.Equal(t, []int64{4, 3, 3}, each)

		uniq := make([][]byte, 50)
		for i := range uniq {
			uniq[i] = fmt.Appendf(nil, "u%d", i)
		}
		for range 2 {
			_, err := e.s.Push(ctx, e.job, "", uniq, store.PushOptions{Dedupe: true})
			require.NoError(t, err)
		}
		st, err := e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, e.job, st.Name)
		require.Equal(t, int64(60), st.Items.Pending, "10 items, then 50 distinct ones twice with dedupe")
		require.Equal(t, int64(60), st.Items.Total)
		require.Equal(t, jobstate.PhasePending, st.Phase)
		require.False(t, st.Sealed)

		sealed, err := e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		require.True(t, sealed)
		sealed, err = e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)
		require.False(t, sealed, "sealed already")
		_, err = e.s.Push(ctx, e.job, "", uniq[:1], store.PushOptions{})
		require.ErrorIs(t, err, store.ErrSealed)
		st, err = e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.True(t, st.Sealed)
	})
}

// TestAShardedJobCompletesWhenEveryShardHas: the sharded Job is Running
// while any shard works and Complete only once every shard is; suspend,
// resume and delete reach every shard, and one shard cannot be deleted
// alone.
func TestAShardedJobCompletesWhenEveryShardHas(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.create(t, jobstate.Spec{Shards: 2})
		e.push(t, items(4)...)
		changed, err := e.s.SetSuspended(ctx, e.job, true)
		require.NoError(t, err)
		require.True(t, changed)
		st, err := e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseSuspended, st.Phase)
		_, err = e.s.SetSuspended(ctx, e.job, false)
		require.NoError(t, err)
		_, err = e.s.Seal(ctx, e.job, "")
		require.NoError(t, err)

		ws := e.shardSessions(t, 2, "w1")
		rec := controllerFor(e)
		l0 := ws[0].mustLease(t, 10)
		require.Len(t, l0.Items, 2)
		_, err = ws[0].settle(t, ackAll(l0))
		require.NoError(t, err)
		drained(t, ws[0])
		_, err = rec.Reconcile(ctx, store.ShardName(e.job, 0))
		require.NoError(t, err)
		st, err = e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseRunning, st.Phase, "one shard of two is drained")
		require.Equal(t, int64(2), st.Items.Succeeded)

		l1 := ws[1].mustLease(t, 10)
		_, err = ws[1].settle(t, ackAll(l1))
		require.NoError(t, err)
		drained(t, ws[1])
		for _, w := range ws {
			_, err := e.s.Finish(ctx, w.e.job, w.reg.UID, w.wid, w.reg.Session, store.OutcomeSucceeded)
			require.NoError(t, err)
		}
		for k := range 2 {
			_, err = rec.Reconcile(ctx, store.ShardName(e.job, k))
			require.NoError(t, err)
		}
		st, err = e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseComplete, st.Phase, "%+v", st)
		require.Equal(t, int64(4), st.Items.Succeeded)
		require.NotNil(t, st.CompletionTime)

		err = e.s.Delete(ctx, store.ShardName(e.job, 1))
		require.ErrorContains(t, err, "shard 1 of the sharded job")

		// A shard gone behind the Job's back is named, with the fix.
		require.NoError(t, e.rdb.Del(ctx, store.KeysFor(store.ShardName(e.job, 1)).Key("spec")).Err())
		_, err = e.s.Status(ctx, e.job)
		require.ErrorIs(t, err, store.ErrShardMissing)
		require.ErrorContains(t, err, store.ShardName(e.job, 1))
		require.NoError(t, e.s.Delete(ctx, e.job))
		for k := range 2 {
			_, err = e.s.UID(ctx, store.ShardName(e.job, k))
			require.ErrorIs(t, err, store.ErrNoJob)
		}
		_, err = e.s.Status(ctx, e.job)
		require.ErrorIs(t, err, store.ErrNoJob)
		require.ErrorIs(t, e.s.Delete(ctx, e.job), store.ErrNoJob)
		n, err := e.rdb.Exists(ctx, store.KeysFor(e.job).Key("group")).Result()
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// TestAShardThatFailsStopsItsSiblings: a shard that fails on its own
// (here more dead items than maxFailedItems) makes the others fail too,
// the sharded Job is Failed with that shard's reason, and retry --reopen
// brings every shard back.
func TestAShardThatFailsStopsItsSiblings(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ws := e.failingShard(t, 3)
		rec := controllerFor(e)
		var err error
		for _, w := range ws {
			_, err := e.s.Finish(ctx, w.e.job, w.reg.UID, w.wid, w.reg.Session, store.OutcomeStopped)
			require.NoError(t, err)
		}
		for range 2 {
			_, err = rec.Reconcile(ctx, store.ShardName(e.job, 1))
			require.NoError(t, err)
		}
		for _, k := range []int{0, 2} {
			snap, err := rec.Reconcile(ctx, store.ShardName(e.job, k))
			require.NoError(t, err)
			require.Equal(t, jobstate.PhaseFailed, snap.Status.Phase, "shard %d", k)
		}
		st, err := e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, jobstate.PhaseFailed, st.Phase)
		var reasons []string
		for _, c := range st.Conditions {
			reasons = append(reasons, c.Reason+": "+c.Message)
		}
		require.Contains(t, reasons, jobstate.ReasonMaxFailedItemsExceeded+": "+store.ShardName(e.job, 1)+": "+
			conditionMessage(t, e, store.ShardName(e.job, 1), jobstate.ConditionFailed))
		require.Equal(t, int64(1), st.Items.Dead)
		require.Equal(t, int64(5), st.Items.Pending)

		n, err := e.s.RetryDead(ctx, e.job, false)
		require.ErrorIs(t, err, store.ErrFinished)
		require.Zero(t, n)
		n, err = e.s.RetryDead(ctx, e.job, true)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		st, err = e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.False(t, st.Phase.Stopping(), "every shard is back: %s", st.Phase)
		require.Equal(t, int64(6), st.Items.Pending+st.Items.Retrying)
	})
}

// failingShard creates a sharded Job of k shards with no dead item
// allowed, pushes 2k items, and has shard 1's first item die: the shard
// fails on its own at its next reconcile. It returns a session on each
// shard.
func (e *env) failingShard(t *testing.T, k int) []*session {
	t.Helper()
	e.create(t, jobstate.Spec{Shards: k, MaxAttempts: 1, MaxFailedItems: jobstate.Ptr(0)})
	e.push(t, items(2*k)...)
	ws := e.shardSessions(t, k, "w1")
	l := ws[1].mustLease(t, 1)
	_, err := ws[1].settle(t, store.Settlement{Token: l.Token, Started: -1,
		Failed: []store.Failure{{ID: l.Items[0].ID, Action: store.ActionCount, Err: "boom"}}})
	require.NoError(t, err)
	return ws
}

// drained has w lease again and find its shard drained.
func drained(t *testing.T, w *session) {
	t.Helper()
	r, err := w.lease(t, 10)
	require.ErrorIs(t, err, store.ErrDrained, "%+v", r)
}

func controllerFor(e *env) *controller.Reconciler {
	return &controller.Reconciler{S: e.s, Log: slog.New(slog.DiscardHandler)}
}

func conditionMessage(t *testing.T, e *env, job string, ct jobstate.ConditionType) string {
	t.Helper()
	st, err := e.s.Status(context.Background(), job)
	require.NoError(t, err)
	return conditionOf(t, st, ct).Message
}

func conditionOf(t *testing.T, st jobstate.Status, ct jobstate.ConditionType) jobstate.Condition {
	t.Helper()
	for _, c := range st.Conditions {
		if c.Type == ct {
			return c
		}
	}
	t.Fatalf("%s has no %s condition: %+v", st.Name, ct, st.Conditions)
	return jobstate.Condition{}
}

// TestAStopForASiblingDecidedBeforeAReopenIsRefused: a controller that
// read a shard failed, then a `retry --reopen` of the sharded Job, then
// the controller's stop of a sibling: the stop carries the sibling's
// reopen generation read before the reopen, and is refused.
func TestAStopForASiblingDecidedBeforeAReopenIsRefused(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.failingShard(t, 2)
		var err error
		shards := []string{store.ShardName(e.job, 0), store.ShardName(e.job, 1)}
		rec := controllerFor(e)
		for range 2 {
			_, err = rec.Reconcile(ctx, shards[1])
			require.NoError(t, err)
		}
		// What a controller read while shard 1 was failed.
		before, err := e.s.ReopenGens(ctx, shards)
		require.NoError(t, err)
		_, err = e.s.RetryDead(ctx, e.job, true)
		require.NoError(t, err)
		st, err := e.s.Status(ctx, e.job)
		require.NoError(t, err)
		require.False(t, st.Phase.Stopping(), "every shard is back: %s", st.Phase)

		stop := jobstate.Transition{To: jobstate.PhaseFailing, Guard: jobstate.GuardShardFailed, Condition: jobstate.Condition{
			Type: jobstate.ConditionFailureTarget, Status: "True", Reason: jobstate.ReasonShardFailed, Message: "shard 1 failed"}}
		applied, err := e.s.ApplyAtGen(ctx, shards[0], stop, before[0])
		require.NoError(t, err)
		require.False(t, applied, "decided before the reopen")
		st, err = e.s.Status(ctx, shards[0])
		require.NoError(t, err)
		require.False(t, st.Phase.Stopping(), "shard 0 runs on: %s", st.Phase)

		now, err := e.s.ReopenGens(ctx, shards)
		require.NoError(t, err)
		require.NotEqual(t, before[0], now[0])
		applied, err = e.s.ApplyAtGen(ctx, shards[0], stop, now[0])
		require.NoError(t, err)
		require.True(t, applied, "decided after it")
	})
}
