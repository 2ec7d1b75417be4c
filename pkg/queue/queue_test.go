package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func ids(b queue.Batch) []int64 {
	out := make([]int64, len(b.Items))
	for i, it := range b.Items {
		out[i] = it.ID
	}
	return out
}

func TestLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OneRoundTripLeasesABatchInPushOrder", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 10}))
			n, err := e.c.Push(ctx, e.job, items(25), queue.PushOptions{})
			require.NoError(t, err)
			require.EqualValues(t, 25, n)
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, ids(r.Batch))
			require.Equal(t, "item-0", string(r.Batch.Items[0].Payload))
			require.Equal(t, 1, r.Batch.Items[0].Attempt)
			r2, err := e.c.Lease(ctx, e.job, "w2", 20)
			require.NoError(t, err)
			require.Len(t, r2.Batch.Items, 15, "the worker's override asks for 20; 15 are left")
			require.EqualValues(t, 10, r2.Batch.Items[0].ID)
			st, err := e.c.Status(ctx, e.job)
			require.NoError(t, err)
			require.EqualValues(t, 25, st.Items.Leased)
			require.EqualValues(t, 2, st.Leases)
			require.EqualValues(t, 25, st.Items.Total)
			require.Equal(t, jobstate.PhaseRunning, st.Phase)
		})
	})

	t.Run("AcksAreBatchedAndCountedOnce", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 5}))
			_, err := e.c.Push(ctx, e.job, items(5), queue.PushOptions{})
			require.NoError(t, err)
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			res, err := e.c.Ack(ctx, e.job, r.Batch.Token, ids(r.Batch)...)
			require.NoError(t, err)
			require.Equal(t, 5, res.Acked)
			res, err = e.c.Ack(ctx, e.job, r.Batch.Token, ids(r.Batch)...)
			require.NoError(t, err)
			require.Equal(t, 0, res.Acked)
			require.Equal(t, 5, res.Refused)
			st, err := e.c.Status(ctx, e.job)
			require.NoError(t, err)
			require.EqualValues(t, 5, st.Items.Succeeded)
			require.EqualValues(t, 0, st.Items.Leased)
		})
	})

	t.Run("StaleAckIsRefused", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 3, Lease: jobstate.Duration(200 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(3), queue.PushOptions{})
			require.NoError(t, err)
			old, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			e.sleep(t, 300*time.Millisecond)
			taken, err := e.c.Lease(ctx, e.job, "w2", 0)
			require.NoError(t, err)
			require.Equal(t, ids(old.Batch), ids(taken.Batch), "w2 takes the expired items over")
			require.Equal(t, 2, taken.Batch.Items[0].Attempt)
			res, err := e.c.Ack(ctx, e.job, old.Batch.Token, ids(old.Batch)...)
			require.NoError(t, err)
			require.Equal(t, queue.SettleResult{Refused: 3}, res)
			_, err = e.c.Nack(ctx, e.job, old.Batch.Token, queue.Failure{ID: 0, Err: "late"})
			require.NoError(t, err)
			hb, err := e.c.Heartbeat(ctx, e.job, "w1", []string{old.Batch.Token})
			require.NoError(t, err)
			require.Equal(t, []string{old.Batch.Token}, hb.Lost, "extend of a taken-over lease is refused")
			res, err = e.c.Ack(ctx, e.job, taken.Batch.Token, ids(taken.Batch)...)
			require.NoError(t, err)
			require.Equal(t, 3, res.Acked)
			st, err := e.c.Status(ctx, e.job)
			require.NoError(t, err)
			require.EqualValues(t, 3, st.Items.Succeeded)
			require.EqualValues(t, 3, st.Items.FailedAttempts, "the expiry counted as an attempt")
			require.EqualValues(t, 1, st.Items.Takeovers)
		})
	})

	t.Run("HeartbeatKeepsLongItemsFromBeingStolen", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{Lease: jobstate.Duration(300 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			for range 4 {
				e.sleep(t, 150*time.Millisecond)
				hb, err := e.c.Heartbeat(ctx, e.job, "w1", []string{r.Batch.Token})
				require.NoError(t, err)
				require.Empty(t, hb.Lost)
			}
			other, err := e.c.Lease(ctx, e.job, "w2", 0)
			require.NoError(t, err)
			require.Empty(t, other.Batch.Items, "600ms after a 300ms lease, the heartbeated item is still w1's")
			res, err := e.c.Ack(ctx, e.job, r.Batch.Token, 0)
			require.NoError(t, err)
			require.Equal(t, 1, res.Acked)
		})
	})

	t.Run("FailedItemsBackOffThenDieWithTheirLastError", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			spec := jobstate.Spec{MaxAttempts: 2, RetryBackoff: jobstate.Duration(200 * time.Millisecond)}
			require.NoError(t, e.c.Create(ctx, e.job, spec))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			_, err = e.c.Nack(ctx, e.job, r.Batch.Token, queue.Failure{ID: 0, Err: "first", Jitter: 0.5})
			require.NoError(t, err)
			early, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Empty(t, early.Batch.Items, "the retry waits for its backoff")
			require.Equal(t, "unsealed", early.WaitReason)
			require.Greater(t, early.WakeIn, 100*time.Millisecond)
			require.LessOrEqual(t, early.WakeIn, 200*time.Millisecond)
			e.sleep(t, 250*time.Millisecond)
			r, err = e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 1)
			require.Equal(t, 2, r.Batch.Items[0].Attempt)
			_, err = e.c.Nack(ctx, e.job, r.Batch.Token, queue.Failure{ID: 0, Err: "exit status 3: disk full"})
			require.NoError(t, err)
			dead, err := e.c.Dead(ctx, e.job, 0)
			require.NoError(t, err)
			require.Equal(t, []queue.DeadItem{{ID: 0, Attempts: 2, LastError: "exit status 3: disk full", Payload: []byte("item-0"), Item: "item-0"}}, dead)

			n, err := e.c.RetryDead(ctx, e.job)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			r, err = e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Equal(t, 1, r.Batch.Items[0].Attempt, "a retried dead item gets fresh attempts")
		})
	})

	t.Run("ExpiredLeaseOnLastAttemptGoesDead", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{MaxAttempts: 1, Lease: jobstate.Duration(150 * time.Millisecond)}))
			_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			_, err = e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			e.sleep(t, 200*time.Millisecond)
			rr, err := e.c.Reap(ctx, e.job)
			require.NoError(t, err)
			require.Equal(t, 1, rr.ItemsReclaimed)
			dead, err := e.c.Dead(ctx, e.job, 0)
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Contains(t, dead[0].LastError, "lease expired")
			_, err = e.c.Lease(ctx, e.job, "w1", 0)
			require.ErrorIs(t, err, queue.ErrDrained, "a dead item does not hold the Job open")
		})
	})
}

func TestDoneDetection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DrainedOnlyWhenSealedAndNothingLeasedOrRetrying", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{BatchSize: 2}))
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Equal(t, "unsealed", r.WaitReason, "an empty unsealed Job waits for pushes")
			_, err = e.c.Push(ctx, e.job, items(2), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			held, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Len(t, held.Batch.Items, 2)
			r, err = e.c.Lease(ctx, e.job, "w2", 0)
			require.NoError(t, err)
			require.Equal(t, "peers", r.WaitReason, "a peer holds leases: wait")
			require.Greater(t, r.WakeIn, time.Duration(0), "the wait hint is the peer's lease expiry")

			_, err = e.c.Ack(ctx, e.job, held.Batch.Token, ids(held.Batch)...)
			require.NoError(t, err)
			_, err = e.c.Lease(ctx, e.job, "w2", 0)
			require.ErrorIs(t, err, queue.ErrDrained)
			_, err = e.c.Lease(ctx, e.job, "w1", 0)
			require.ErrorIs(t, err, queue.ErrDrained, "once one worker saw the drain, the others stop too")
			err = e.c.Register(ctx, e.job, queue.WorkerInfo{ID: "late"})
			require.ErrorIs(t, err, queue.ErrDrained, "a worker started later exits 0 at once")
		})
	})

	t.Run("PushAfterSealIsRefusedAndChangesNothing", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			_, err := e.c.Push(ctx, e.job, items(3), queue.PushOptions{})
			require.NoError(t, err)
			require.NoError(t, e.c.Seal(ctx, e.job))
			n, err := e.c.Push(ctx, e.job, items(3), queue.PushOptions{})
			require.ErrorIs(t, err, queue.ErrSealed)
			require.Zero(t, n)
			_, err = e.c.Push(ctx, "missing-job", items(1), queue.PushOptions{})
			require.ErrorIs(t, err, queue.ErrNoJob)
			st, err := e.c.Status(ctx, e.job)
			require.NoError(t, err)
			require.EqualValues(t, 3, st.Items.Pending)
		})
	})
}

func TestPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DedupeMakesARepushANoOp", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			n, err := e.c.Push(ctx, e.job, [][]byte{[]byte("a"), []byte("b"), []byte("a")}, queue.PushOptions{Dedupe: true})
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
			n, err = e.c.Push(ctx, e.job, [][]byte{[]byte("b"), []byte("c"), []byte("a")}, queue.PushOptions{Dedupe: true})
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
			got, err := e.c.Redis().LRange(ctx, queue.PendingKey(e.job), 0, -1).Result()
			require.NoError(t, err)
			require.Equal(t, []string{"a", "b", "c"}, got)
		})
	})

	t.Run("PlainRPUSHFromAnyClientLoadsTheJob", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			require.Equal(t, "workq:{"+e.job+"}:pending", queue.PendingKey(e.job))
			require.NoError(t, e.c.Redis().RPush(ctx, queue.PendingKey(e.job), "x\x00y", "second").Err())
			r, err := e.c.Lease(ctx, e.job, "w1", 0)
			require.NoError(t, err)
			require.Equal(t, []byte("x\x00y"), r.Batch.Items[0].Payload)
			require.Equal(t, []byte("second"), r.Batch.Items[1].Payload)
		})
	})

	t.Run("ManyChunksKeepTheirOrder", func(t *testing.T) {
		backends(t, func(t *testing.T, e *env) {
			require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
			n, err := e.c.Push(ctx, e.job, items(25_000), queue.PushOptions{ChunkItems: 100, PipelineChunks: 3})
			require.NoError(t, err)
			require.EqualValues(t, 25_000, n)
			got, err := e.c.Redis().LRange(ctx, queue.PendingKey(e.job), 0, -1).Result()
			require.NoError(t, err)
			want := items(25_000)
			for i, v := range got {
				if v != string(want[i]) {
					t.Fatalf("item %d is %q", i, v)
				}
			}
		})
	})
}

func TestIndexedJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backends(t, func(t *testing.T, e *env) {
		require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{Completions: jobstate.Ptr(6), BatchSize: 4, MaxAttempts: 1}))
		_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
		require.ErrorIs(t, err, queue.ErrSealed, "an Indexed Job's items are its indexes")
		r, err := e.c.Lease(ctx, e.job, "w1", 0)
		require.NoError(t, err)
		require.Equal(t, []int64{0, 1, 2, 3}, ids(r.Batch))
		require.Equal(t, "3", string(r.Batch.Items[3].Payload))
		_, err = e.c.Settle(ctx, e.job, []queue.Settlement{{Token: r.Batch.Token, Acked: []int64{0, 1, 3}, Failed: []queue.Failure{{ID: 2, Err: "boom"}}}})
		require.NoError(t, err)
		r, err = e.c.Lease(ctx, e.job, "w1", 0)
		require.NoError(t, err)
		require.Equal(t, []int64{4, 5}, ids(r.Batch))
		_, err = e.c.Ack(ctx, e.job, r.Batch.Token, 4, 5)
		require.NoError(t, err)
		st, err := e.c.Status(ctx, e.job)
		require.NoError(t, err)
		require.Equal(t, "0-1,3-5", st.CompletedIndexes)
		require.Equal(t, "2", st.FailedIndexes)
		require.EqualValues(t, 6, st.Items.Total)
		_, err = e.c.Lease(ctx, e.job, "w1", 0)
		require.ErrorIs(t, err, queue.ErrDrained)
	})
}

func TestErrorsAreSentinels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backends(t, func(t *testing.T, e *env) {
		require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{}))
		err := e.c.Create(ctx, e.job, jobstate.Spec{})
		require.ErrorIs(t, err, queue.ErrExists)
		err = e.c.Create(ctx, "Bad_Name", jobstate.Spec{})
		require.ErrorIs(t, err, jobstate.ErrInvalidSpec)
		_, err = e.c.Status(ctx, "nope")
		require.ErrorIs(t, err, queue.ErrNoJob)
		_, err = e.c.Lease(ctx, "nope", "w", 0)
		require.ErrorIs(t, err, queue.ErrNoJob)
		require.NoError(t, e.c.Delete(ctx, e.job))
		require.True(t, errors.Is(e.c.Delete(ctx, e.job), queue.ErrNoJob))
		names, err := e.c.Names(ctx)
		require.NoError(t, err)
		require.NotContains(t, names, e.job)
	})
}
