package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestWorkersDrainEveryShardOfAShardedJob: workers with fewer executors
// than shards (one lane) and with more (one lane per shard) drain every
// shard, each item once, and exit 0 only when the whole Job succeeded.
func TestWorkersDrainEveryShardOfAShardedJob(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Shards: 4, BatchSize: 50})
		e.push(t, items(2000)...)
		e.seal(t)
		var c counter
		var runs atomic.Int64
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			runs.Add(1)
			return c.handler().Handle(ctx, it)
		})
		var errs []<-chan error
		for i, conc := range []int{1, 6} {
			errs = append(errs, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: fmt.Sprint("w", i), Concurrency: conc, Handler: h})))
		}
		for _, ch := range errs {
			require.NoError(t, waitErr(t, ch))
		}
		require.Equal(t, 2000, c.count())
		require.EqualValues(t, 2000, runs.Load(), "no item ran twice without a fault")
		st := e.status(t)
		require.Equal(t, jobstate.PhaseComplete, st.Phase)
		require.EqualValues(t, 2000, st.Items.Succeeded)
		require.Zero(t, st.Items.Leased+st.Items.Pending)
		for k := range 4 {
			sh, err := e.c.Inspector().Status(context.Background(), store.ShardName(e.job, k))
			require.NoError(t, err)
			require.Equal(t, jobstate.PhaseComplete, sh.Phase, "shard %d", k)
			require.EqualValues(t, 500, sh.Items.Succeeded, "shard %d", k)
		}

		// A worker that comes after the end exits 0 at once.
		require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "late", Concurrency: 2, Handler: h}))))
		require.EqualValues(t, 2000, runs.Load())
	})
}

// TestAWorkerStopsWhenAShardOfItsJobFails: an item that dies in one shard
// of a Job with maxFailedItems 0 fails that shard, which stops the others;
// the worker exits with ErrJobFailed and the sharded Job is Failed, every
// shard ended.
func TestAWorkerStopsWhenAShardOfItsJobFails(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Shards: 3, BatchSize: 1, MaxAttempts: 1, MaxFailedItems: jobstate.Ptr(0)})
		e.push(t, items(30)...)
		e.seal(t)
		var runs atomic.Int64
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			if runs.Add(1) == 5 {
				return errors.New("boom")
			}
			return nil
		})
		err := waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "w", Concurrency: 3, Handler: h})))
		require.ErrorIs(t, err, queue.ErrJobFailed)
		st := e.status(t)
		require.Equal(t, jobstate.PhaseFailed, st.Phase)
		require.EqualValues(t, 1, st.Items.Dead)
		var failed int
		for k := range 3 {
			sh, err := e.c.Inspector().Status(context.Background(), store.ShardName(e.job, k))
			require.NoError(t, err)
			// A shard drained before the failure stays Complete.
			require.True(t, sh.Phase.Finished(), "shard %d: %s", k, sh.Phase)
			for _, c := range sh.Conditions {
				if c.Type == jobstate.ConditionFailureTarget && c.Reason == jobstate.ReasonMaxFailedItemsExceeded {
					failed++
				}
			}
		}
		require.Equal(t, 1, failed, "one shard failed on its own, the others for it (or drained before)")
		require.EqualValues(t, 30, st.Items.Total)
		require.EqualValues(t, 30, st.Items.Succeeded+st.Items.Dead+st.Items.Pending+st.Items.Returned+st.Items.Retrying,
			"every item is accounted for: %+v", st.Items)
	})
}

// TestAShardedIndexedJobRunsEveryIndexOnce: the indexes of a sharded
// Indexed Job are dealt in contiguous blocks; each runs once with its own
// index (JOB_COMPLETION_INDEX), and the Job's completed and failed
// indexes are the Job's, not the shards'.
func TestAShardedIndexedJobRunsEveryIndexOnce(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Shards: 3, Completions: jobstate.Ptr(10), BatchSize: 2, MaxAttempts: 1})
		var mu sync.Mutex
		seen := map[int]int{}
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			mu.Lock()
			seen[it.Index]++
			mu.Unlock()
			if string(it.Payload) != strconv.Itoa(it.Index) {
				return fmt.Errorf("payload %q is not the index %d", it.Payload, it.Index)
			}
			if it.Index == 7 {
				return errors.New("seven fails")
			}
			return nil
		})
		err := waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "w", Concurrency: 2, Handler: h})))
		require.ErrorIs(t, err, queue.ErrJobFailed, "index 7 is dead")
		want := map[int]int{}
		for i := range 10 {
			want[i] = 1
		}
		require.Equal(t, want, seen)
		st := e.status(t)
		require.Equal(t, jobstate.PhaseFailed, st.Phase)
		require.Equal(t, jobstate.KindIndexed, st.Kind)
		require.Equal(t, "0-6,8-9", st.CompletedIndexes)
		require.Equal(t, "7", st.FailedIndexes)
		require.EqualValues(t, 10, st.Items.Total)
		blocks := []string{"0-2", "3-5", "6-9"}
		for k := range 3 {
			sh, err := e.c.Inspector().Status(context.Background(), store.ShardName(e.job, k))
			require.NoError(t, err)
			if k == 2 {
				require.Equal(t, "6,8-9", sh.CompletedIndexes, "shard 2's own indexes, as the Job numbers them")
				require.Equal(t, "7", sh.FailedIndexes)
				continue
			}
			require.Equal(t, blocks[k], sh.CompletedIndexes, "shard %d", k)
		}
		dead, err := e.c.Inspector().Dead(context.Background(), e.job, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.EqualValues(t, 7, dead[0].ID)
		require.Equal(t, "7", dead[0].Item)
		require.Equal(t, store.ShardName(e.job, 2), dead[0].Shard)
	})
}

// TestAClientNotYetConnectedCreatesAShardedJob: a Client made with Connect
// reaches Redis on its first call, a sharded create too.
func TestAClientNotYetConnectedCreatesAShardedJob(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		c, err := queue.Connect(queue.Options{URL: e.url})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Create(context.Background(), e.job, jobstate.Spec{Shards: 2}))
		require.Equal(t, 2, e.status(t).Spec.Shards)
	})
}
