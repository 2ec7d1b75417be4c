package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func TestWorkersDrainAJobExactlyOnce(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		e.push(t, items(3000)...)
		e.seal(t)
		var c counter
		var runs atomic.Int64
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			runs.Add(1)
			return c.handler().Handle(ctx, it)
		})
		var errs []<-chan error
		for i := range 3 {
			errs = append(errs, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: fmt.Sprint("w", i), Concurrency: 4, Handler: h})))
		}
		for _, ch := range errs {
			require.NoError(t, waitErr(t, ch))
		}
		require.Equal(t, 3000, c.count())
		require.EqualValues(t, 3000, runs.Load(), "no item ran twice without a fault")
		st := e.status(t)
		require.Equal(t, jobstate.PhaseComplete, st.Phase, "the last worker marks the Job: no controller needed")
		require.EqualValues(t, 3000, st.Items.Succeeded)
		require.Zero(t, st.Items.Leased)
		require.EqualValues(t, 3, st.Succeeded)
		require.Empty(t, st.StateLost)
	})
}

// runAtOnce runs n workers with h until every one has started an item
// (started reaches zero; failing with why after 30s), then closes release
// and requires that every worker ends without error.
func (e *env) runAtOnce(t *testing.T, n int, h queue.Handler, started *sync.WaitGroup, release chan struct{}, why string) {
	t.Helper()
	var errs []<-chan error
	for i := range n {
		errs = append(errs, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: fmt.Sprint("w", i), Handler: h})))
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal(why)
	}
	close(release)
	for _, ch := range errs {
		require.NoError(t, waitErr(t, ch))
	}
}

func TestSlowItemsSpreadOverEveryWorker(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		// Four items on four workers: each runs one. A worker that leased
		// ahead would hold two, and the barrier below would never open.
		e.create(t, jobstate.Spec{})
		e.push(t, items(4)...)
		e.seal(t)
		var started sync.WaitGroup
		started.Add(4)
		release := make(chan struct{})
		var mu sync.Mutex
		by := map[string]string{}
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			j, _ := queue.JobFromContext(ctx)
			mu.Lock()
			by[string(it.Payload)] = j.WorkerID
			mu.Unlock()
			started.Done()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		e.runAtOnce(t, 4, h, &started, release, "four slow items did not run at once on four workers")
		workers := map[string]bool{}
		for _, w := range by {
			workers[w] = true
		}
		require.Len(t, workers, 4)
	})
}

func TestIndexesRunAtOnceOnFiveWorkers(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{Completions: jobstate.Ptr(5)})
	var started sync.WaitGroup
	started.Add(5)
	release := make(chan struct{})
	var seen sync.Map
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		require.Equal(t, int(it.ID), it.Index)
		require.Equal(t, strconv.Itoa(it.Index), string(it.Payload))
		seen.Store(it.Index, true)
		started.Done()
		<-release
		return nil
	})
	e.runAtOnce(t, 5, h, &started, release, "five indexes did not run at once on five workers")
	st := e.status(t)
	require.Equal(t, "0-4", st.CompletedIndexes)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	for _, c := range st.Conditions {
		if c.Type == jobstate.ConditionComplete {
			require.Equal(t, jobstate.ReasonCompletionsReached, c.Reason)
		}
	}
}

type exitErr int

func (e exitErr) Error() string { return "exit status " + strconv.Itoa(int(e)) }
func (e exitErr) ExitCode() int { return int(e) }

func TestWorkerExitsNonZeroWhenTheJobFails(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{MaxAttempts: 1})
		e.push(t, "good", "bad")
		e.seal(t)
		h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
			if string(it.Payload) == "bad" {
				return errors.New("boom")
			}
			return nil
		})
		err := waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h})))
		require.ErrorIs(t, err, queue.ErrJobFailed)
		require.Contains(t, err.Error(), jobstate.ReasonFailedItems)
		st := e.status(t)
		require.Equal(t, jobstate.PhaseFailed, st.Phase)
		require.EqualValues(t, 1, st.Items.Dead)
		require.EqualValues(t, 1, st.Items.Succeeded)
	})
}

func TestFailurePolicy(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		spec := jobstate.Spec{MaxAttempts: 5, RetryBackoff: jobstate.Duration(time.Millisecond), RetryBackoffMax: jobstate.Duration(time.Millisecond)}
		for _, r := range []string{"FailIndex:exit=3", "Ignore:exit=75"} {
			rule, err := jobstate.ParseFailureRule(r)
			require.NoError(t, err)
			spec.FailurePolicy = append(spec.FailurePolicy, rule)
		}
		e.create(t, spec)
		e.push(t, "index-fails", "ignored-twice")
		e.seal(t)
		var ignored atomic.Int32
		h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
			switch string(it.Payload) {
			case "index-fails":
				return exitErr(3)
			default:
				if ignored.Add(1) <= 2 {
					require.Equal(t, 1, it.Attempt, "an ignored failure uses no attempt")
					return exitErr(75)
				}
				return nil
			}
		})
		err := waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h})))
		require.ErrorIs(t, err, queue.ErrJobFailed)
		st := e.status(t)
		require.EqualValues(t, 1, st.Items.Dead, "FailIndex: dead at its first failure")
		require.EqualValues(t, 1, st.Items.Succeeded)
		require.EqualValues(t, 1, st.Items.FailedAttempts, "the ignored failures were not counted")
		dead, err := e.c.Inspector().Dead(context.Background(), e.job, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, 1, dead[0].Attempts)
	})
}

func TestFailJobRuleFailsTheJob(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	rule, err := jobstate.ParseFailureRule("FailJob:exit=42")
	require.NoError(t, err)
	e.create(t, jobstate.Spec{FailurePolicy: []jobstate.FailureRule{rule}})
	e.push(t, items(50)...)
	e.seal(t)
	h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
		if string(it.Payload) == "item-00007" {
			return exitErr(42)
		}
		return nil
	})
	err = waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h})))
	require.ErrorIs(t, err, queue.ErrJobFailed)
	require.Contains(t, err.Error(), jobstate.ReasonPodFailurePolicy)
	st := e.status(t)
	require.Equal(t, jobstate.PhaseFailed, st.Phase)
}

func TestSuccessPolicyStopsTheRest(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	rule, err := jobstate.ParseSuccessRule("indexes=0-1")
	require.NoError(t, err)
	e.create(t, jobstate.Spec{Completions: jobstate.Ptr(6), SuccessPolicy: []jobstate.SuccessRule{rule}})
	var ran sync.Map
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		ran.Store(it.Index, true)
		if it.Index <= 1 {
			return nil
		}
		<-ctx.Done() // the others run until the success stops them
		return ctx.Err()
	})
	var errs []<-chan error
	for i := range 3 {
		errs = append(errs, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: fmt.Sprint("w", i), Handler: h})))
	}
	for _, ch := range errs {
		require.NoError(t, waitErr(t, ch), "a Job that met its success policy is a success")
	}
	st := e.status(t)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	var met, complete time.Time
	for _, c := range st.Conditions {
		switch c.Type {
		case jobstate.ConditionSuccessCriteriaMet:
			met = c.LastTransitionTime
			require.Equal(t, jobstate.ReasonSuccessPolicy, c.Reason)
		case jobstate.ConditionComplete:
			complete = c.LastTransitionTime
			require.Equal(t, jobstate.ReasonSuccessPolicy, c.Reason)
		}
	}
	require.False(t, met.IsZero())
	require.False(t, complete.Before(met), "SuccessCriteriaMet comes first")
	require.Zero(t, st.Items.Dead, "stopped items are not failures")
}

func TestStoppedWorkerHandsBackWhatItHasNotStarted(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		e.push(t, items(4)...)
		e.seal(t)
		started := make(chan struct{}, 4)
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		ctx, cancel := context.WithCancel(context.Background())
		ch := runAsync(ctx, e.worker(t, queue.WorkerConfig{Handler: h, Grace: 50 * time.Millisecond}))
		<-started
		cancel()
		require.ErrorIs(t, waitErr(t, ch), queue.ErrStopped)
		st := e.status(t)
		require.EqualValues(t, 4, st.Items.Pending+st.Items.Returned, "nothing was lost")
		require.Zero(t, st.Items.Retrying, "handed back, not retrying")
		require.Zero(t, st.Items.FailedAttempts)
		require.Zero(t, st.Items.Leased)
		require.Zero(t, st.Failed, "a stopped worker is not a failed one")
	})
}

func TestAReplacedJobStopsItsOldWorkers(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		e.push(t, items(3)...)
		started := make(chan struct{}, 3)
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		ch := runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h, Heartbeat: 100 * time.Millisecond}))
		<-started
		require.NoError(t, e.c.Delete(context.Background(), e.job))
		e.create(t, jobstate.Spec{})
		e.push(t, items(3)...)
		// The old worker hears of the delete (then: vanished) or meets the
		// new incarnation first (then: replaced); it stops either way.
		err := waitErr(t, ch)
		require.True(t, errors.Is(err, queue.ErrReplaced) || errors.Is(err, queue.ErrJobVanished), "%v", err)
		st := e.status(t)
		require.Zero(t, st.Items.Succeeded)
		require.EqualValues(t, 3, st.Items.Pending, "the new Job is untouched")
		require.Zero(t, st.Active)
	})
}

func TestAVanishedJobStopsItsWorkers(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{})
	e.push(t, items(3)...)
	started := make(chan struct{}, 3)
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	ch := runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h, Heartbeat: 100 * time.Millisecond}))
	<-started
	e.mini.FlushAll()
	err := waitErr(t, ch)
	require.ErrorIs(t, err, queue.ErrJobVanished)
	require.False(t, errors.Is(err, queue.ErrNoJob), "a vanished Job is no usage error")
}

func TestSuspendHandsBackItemsNotStarted(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{})
	e.push(t, items(200)...)
	e.seal(t)
	release := make(chan struct{})
	var once sync.Once
	first := make(chan struct{})
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		once.Do(func() { close(first) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	ch := runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h, Concurrency: 2, Heartbeat: 100 * time.Millisecond}))
	<-first
	_, err := e.c.Suspend(context.Background(), e.job)
	require.NoError(t, err)
	eventually(t, "the worker holds only what runs", func() bool {
		st := e.status(t)
		return st.Items.Leased <= 2
	})
	st := e.status(t)
	require.EqualValues(t, 200, st.Items.Pending+st.Items.Returned+st.Items.Leased)
	close(release)
	_, err = e.c.Resume(context.Background(), e.job)
	require.NoError(t, err)
	require.NoError(t, waitErr(t, ch))
	require.EqualValues(t, 200, e.status(t).Items.Succeeded)
}

func TestFencesGrowPerItem(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{MaxAttempts: 3, RetryBackoff: jobstate.Duration(time.Millisecond), RetryBackoffMax: jobstate.Duration(time.Millisecond)})
	e.push(t, "x")
	e.seal(t)
	var fences []int64
	h := queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
		fences = append(fences, it.Fence)
		if it.Attempt < 3 {
			return errors.New("again")
		}
		return nil
	})
	require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h}))))
	require.Len(t, fences, 3)
	require.Less(t, fences[0], fences[1])
	require.Less(t, fences[1], fences[2])
}

func TestResultsAreKept(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{MaxAttempts: 1})
	e.push(t, "a", "b", "c")
	e.seal(t)
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		queue.SetOutput(ctx, []byte("out-"+string(it.Payload)))
		if string(it.Payload) == "b" {
			return exitErr(7)
		}
		return nil
	})
	_ = waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: h, Results: 100})))
	rs, err := e.c.Inspector().Results(context.Background(), e.job, "", 10, 0)
	require.NoError(t, err)
	require.Len(t, rs, 3)
	byID := map[int64]queue.Result{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	require.Equal(t, "out-a", byID[0].Output)
	require.Zero(t, byID[0].Exit)
	require.Equal(t, 7, byID[1].Exit)
	require.Equal(t, "out-c", byID[2].Output)
}

func TestALateWorkerExitsAtOnceUncounted(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{})
	e.push(t, "x")
	e.seal(t)
	var c counter
	require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: c.handler()}))))
	require.Equal(t, jobstate.PhaseComplete, e.status(t).Phase)
	require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{Handler: c.handler()}))))
	st := e.status(t)
	require.EqualValues(t, 1, st.Succeeded, "a worker after Complete does not raise succeeded")
	require.EqualValues(t, 1, st.Items.Succeeded)
}

func TestBatchHandlerGetsWholeBatches(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{BatchSize: 100})
		e.push(t, items(1000)...)
		e.seal(t)
		var total atomic.Int64
		var calls atomic.Int64
		h := queue.BatchHandlerFunc(func(_ context.Context, its []queue.Item) error {
			calls.Add(1)
			total.Add(int64(len(its)))
			require.LessOrEqual(t, len(its), 100)
			return nil
		})
		require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{BatchHandler: h}))))
		require.EqualValues(t, 1000, total.Load())
		require.Less(t, calls.Load(), int64(1000))
		require.EqualValues(t, 1000, e.status(t).Items.Succeeded)
	})
}

func TestIdlePeersGetUnstartedItemsBack(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{})
	e.push(t, items(60)...)
	e.seal(t)
	// The first ten items are instant, the rest take 50ms: worker a,
	// alone at first, judges them fast and leases them all; b arrives idle.
	var mu sync.Mutex
	ran := map[string]int{}
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		j, _ := queue.JobFromContext(ctx)
		mu.Lock()
		ran[j.WorkerID]++
		mu.Unlock()
		if it.ID >= 10 {
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	a := runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "a", Handler: h, Heartbeat: 200 * time.Millisecond}))
	eventually(t, "a holds the whole queue", func() bool {
		st := e.status(t)
		return st.Items.Pending == 0 && st.Items.Leased > 0
	})
	b := runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "b", Handler: h, Heartbeat: 200 * time.Millisecond}))
	require.NoError(t, waitErr(t, a))
	require.NoError(t, waitErr(t, b))
	require.EqualValues(t, 60, e.status(t).Items.Succeeded)
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, ran["b"], "the idle peer got items back: %v", ran)
}

// TestAStoppedWorkerEndsWhileRedisIsDown: a worker told to stop while Redis
// cannot be reached gives up on the outcomes it could not record once
// their leases must have expired, and ends; it does not retry them forever.
func TestAStoppedWorkerEndsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	e := miniEnv(t)
	e.create(t, jobstate.Spec{Lease: jobstate.Duration(time.Second)})
	e.push(t, "a")
	started, finish := make(chan struct{}), make(chan struct{})
	w := e.worker(t, queue.WorkerConfig{Handler: queue.HandlerFunc(func(context.Context, queue.Item) error {
		close(started)
		<-finish
		return nil
	})})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, w)
	<-started
	e.mini.Close()
	cancel()
	close(finish) // the item succeeds, but its ack cannot reach Redis
	require.ErrorIs(t, waitErr(t, done), queue.ErrStopped)
}

// TestAnItemsSuccessIsSettledWhileTheNextOneRuns: outcomes reach Redis
// while the batch still runs, whatever comes next in it: here an item that
// waits until every item before it is counted succeeded. It would wait
// forever if successes were held back until the next item ended (tiny
// items are claimed in chunks, and the one that waits shares a chunk with
// the items before it).
func TestAnItemsSuccessIsSettledWhileTheNextOneRuns(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		its := items(300)
		its[150] = "wait"
		e.push(t, its...)
		e.seal(t)
		h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
			if string(it.Payload) != "wait" {
				return nil
			}
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) {
				if st := e.status(t); st.Items.Succeeded >= 150 {
					return nil
				}
				time.Sleep(10 * time.Millisecond)
			}
			return errors.New("the items before this one were not counted within 20s")
		})
		require.NoError(t, waitErr(t, runAsync(context.Background(), e.worker(t, queue.WorkerConfig{ID: "w", Handler: h}))))
		st := e.status(t)
		require.EqualValues(t, 300, st.Items.Succeeded)
		require.Zero(t, st.Items.Dead+st.Items.FailedAttempts)
	})
}

// calls creates the env's Job with spec, pushes items(n) and seals it,
// runs a worker with h, and returns how many lease and settle calls it
// made to settle all but the last item: that one waits while the worker's
// request slots are read (l<session> holds the number of its last lease
// call, s<session> "seq:reply" of its last settle; its end removes them).
func (e *env) calls(t *testing.T, spec jobstate.Spec, n int, h queue.HandlerFunc, cfg queue.WorkerConfig, tune func(*queue.Worker)) (leases, settles int) {
	t.Helper()
	e.create(t, spec)
	e.push(t, items(n)...)
	e.seal(t)
	var c counter
	last := make(chan struct{})
	lastItem := items(n)[n-1]
	cfg.Handler = queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		if string(it.Payload) == lastItem {
			<-last
		}
		if err := h(ctx, it); err != nil {
			return err
		}
		return c.handler().Handle(ctx, it)
	})
	w := e.worker(t, cfg)
	if tune != nil {
		tune(w)
	}
	done := runAsync(context.Background(), w)
	eventually(t, "every other item settled", func() bool { return e.status(t).Items.Succeeded == int64(n-1) })
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(e.url, "redis://"), "/0")})
	defer rdb.Close()
	reqs, err := rdb.HGetAll(context.Background(), "workq:{"+e.job+"}:reqs").Result()
	require.NoError(t, err)
	close(last)
	require.NoError(t, waitErr(t, done))
	require.Equal(t, n, c.count())
	for f, v := range reqs {
		switch f[0] {
		case 'l':
			leases, err = strconv.Atoi(v)
		case 's':
			settles, err = strconv.Atoi(v[:strings.IndexByte(v, ':')])
		}
		require.NoError(t, err)
	}
	return leases, settles
}

// Leases that finish within the settle gap of the last settle go in one
// settle call, not one call each: leases of tiny items finish thousands of
// times a second, and one call each spent most of Redis's time on what
// every call costs. The gap is widened here, so that the count does not
// hang on the machine's speed.
func TestSettlesOfLeasesThatFinishTogetherGoTogether(t *testing.T) {
	t.Parallel()
	e := realEnv(t)
	var leases atomic.Int64 // one item a lease: a run is a lease
	_, settles := e.calls(t, jobstate.Spec{BatchSize: 1}, 300, func(context.Context, queue.Item) error {
		leases.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}, queue.WorkerConfig{ID: "w", Concurrency: 2}, func(w *queue.Worker) { queue.SetSettleGap(w, 200*time.Millisecond) })
	t.Logf("%d leases, %d settle calls", leases.Load(), settles)
	require.EqualValues(t, 300, leases.Load(), "one item a lease, each run once")
	require.LessOrEqual(t, settles, 30, "leases that finished within the gap of the last settle went together")
}

// A worker of fast items that wants more than a lease holds asks for
// several leases in one call: at batch size 10, 5000 items are 500 leases,
// in far fewer calls.
func TestFastItemsComeSeveralLeasesACall(t *testing.T) {
	t.Parallel()
	e := realEnv(t)
	var fences sync.Map // a lease's items share its fence
	calls, _ := e.calls(t, jobstate.Spec{BatchSize: 10}, 5000, func(_ context.Context, it queue.Item) error {
		fences.Store(it.Fence, true)
		return nil
	}, queue.WorkerConfig{ID: "w", Concurrency: 8}, nil)
	leases := 0
	fences.Range(func(any, any) bool { leases++; return true })
	t.Logf("%d leases (fences) in %d lease calls", leases, calls)
	require.GreaterOrEqual(t, leases, 500, "5000 items in leases of at most 10")
	require.Less(t, calls, leases/2, "several leases a call")
}
