package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestStressCrashingWorkers runs 8 Workers on one Job of 20,000 items on a
// real redis-server while workers crash between lease and ack: some are
// abandoned (their connection closed in the middle of an item: nothing is
// acked nor handed back, their leases expire and peers take them over),
// some have their context cancelled abruptly in the middle of an item.
// Every crashed worker is replaced. An independent log of every handler
// call then shows that every item ran, and workq's counts that every item
// succeeded exactly once and none was lost.
func TestStressCrashingWorkers(t *testing.T) {
	t.Parallel()
	const (
		total   = 20_000
		slots   = 8
		crashes = 6
		lease   = 400 * time.Millisecond
	)
	ctx := context.Background()
	e := realEnv(t)
	e.create(t, jobstate.Spec{BatchSize: 100, Lease: jobstate.Duration(lease), MaxAttempts: 1000,
		BackoffLimit: jobstate.Ptr(1000)})
	e.push(t, items(total)...)
	e.seal(t)

	seed := rand.Uint64()
	t.Logf("crash schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	// The handler calls at which a worker crashes, spread over the Job.
	var at []int
	for range crashes {
		at = append(at, 500+rng.IntN(total-2000))
	}
	slices.Sort(at)

	var (
		mu      sync.Mutex
		runs    = map[string]int{} // the independent log: handler calls per item
		calls   int
		crashed []string // the items whose handler call crashed its worker
	)
	// crashNow logs a call and says whether this call crashes its worker,
	// and how: every other crash abandons the worker.
	crashNow := func(item string) (crash, abandon bool) {
		mu.Lock()
		defer mu.Unlock()
		runs[item]++
		calls++
		if len(at) > 0 && calls >= at[0] {
			at = at[1:]
			crashed = append(crashed, item)
			return true, len(crashed)%2 == 1
		}
		return false, false
	}

	// run runs one worker in slot n; a crashed worker is replaced, until
	// a worker ends because the Job is over for it.
	run := func(n int) error {
		for gen := 0; ; gen++ {
			c, err := queue.Open(ctx, queue.Options{URL: e.url})
			if err != nil {
				return err
			}
			wctx, cancel := context.WithCancel(ctx)
			// crash crashes the worker the first time and returns how it
			// crashed (a second crashing call finds it crashed already).
			var once sync.Once
			var abandoned bool
			crash := func(abandon bool) bool {
				once.Do(func() {
					abandoned = abandon
					if abandon {
						_ = c.Close() // nothing more reaches Redis
					}
					cancel()
				})
				return abandoned
			}
			w, err := queue.NewWorker(c, queue.WorkerConfig{
				Job: e.job, ID: fmt.Sprintf("w%d-%d", n, gen), Concurrency: 2, Grace: time.Millisecond,
				Wait: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
				Handler: queue.HandlerFunc(func(ictx context.Context, it queue.Item) error {
					crashes, abandon := crashNow(string(it.Payload))
					if !crashes {
						return nil
					}
					if crash(abandon) {
						return nil // its ack cannot reach Redis
					}
					<-ictx.Done() // killed when the grace period ends
					return ictx.Err()
				}),
			})
			if err != nil {
				cancel()
				_ = c.Close()
				return err
			}
			err = w.Run(wctx)
			stopped := wctx.Err() != nil
			cancel()
			_ = c.Close()
			if !stopped {
				// The worker ended on its own: the Job is over for it.
				return err
			}
		}
	}
	errs := make([]error, slots)
	var wg sync.WaitGroup
	for n := range slots {
		wg.Add(1)
		go func() { defer wg.Done(); errs[n] = run(n) }()
	}
	wg.Wait()
	for n, err := range errs {
		require.NoError(t, err, "the last worker of slot %d", n)
	}

	// Crashed workers stay registered until their heartbeat expires; a
	// controller then marks the Job Complete.
	rec := &controller.Reconciler{S: testkit.RealStore(t), Log: slog.New(slog.DiscardHandler)}
	var st jobstate.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		st, err = rec.Step(ctx, e.job)
		require.NoError(t, err)
		if st.Phase.Finished() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, jobstate.PhaseComplete, st.Phase, "conditions %+v", st.Conditions)

	// workq's counts: every item succeeded exactly once, none is lost.
	require.Equal(t, jobstate.Items{Total: total, Succeeded: total, FailedAttempts: st.Items.FailedAttempts,
		Takeovers: st.Items.Takeovers}, st.Items)
	require.Empty(t, st.StateLost, "the books add up")
	require.Zero(t, st.Leases)

	// The log: every item ran at least once, and nothing else ran.
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, runs, total, "items that ran")
	for _, it := range items(total) {
		require.GreaterOrEqual(t, runs[it], 1, "item %s ran", it)
	}
	// An item whose run crashed its worker was not acked by that run: it
	// succeeded on another.
	require.Len(t, crashed, crashes, "every crash happened")
	for _, it := range crashed {
		require.GreaterOrEqual(t, runs[it], 2, "item %s, whose worker crashed, ran again", it)
	}
	require.Positive(t, st.Items.Takeovers, "abandoned workers' leases were taken over")
	t.Logf("%d handler calls for %d items; %d takeovers, %d failed attempts", calls, total, st.Items.Takeovers,
		st.Items.FailedAttempts)
}
