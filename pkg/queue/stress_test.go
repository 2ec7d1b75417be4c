package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestStress runs 8 concurrent workers over 20,000 items with crashes
// (batches abandoned without a word, the worker coming back under a new
// id), late acks from the "crashed" workers, and failures, and checks
// exactly-once accounting: every item is counted succeeded once, and the
// Acked counts returned to the workers add up to the number of items.
func TestStress(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("stress test")
	}
	const (
		nItems   = 20_000
		nWorkers = 8
		lease    = 200 * time.Millisecond
	)
	backends(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		require.NoError(t, e.c.Create(ctx, e.job, jobstate.Spec{
			BatchSize:       50,
			Lease:           jobstate.Duration(lease),
			MaxAttempts:     1_000_000,
			RetryBackoff:    jobstate.Duration(2 * time.Millisecond),
			RetryBackoffMax: jobstate.Duration(10 * time.Millisecond),
		}))
		n, err := e.c.Push(ctx, e.job, items(nItems), queue.PushOptions{})
		require.NoError(t, err)
		require.EqualValues(t, nItems, n)
		require.NoError(t, e.c.Seal(ctx, e.job))

		var (
			counted    [nItems]atomic.Int32 // acks counted per item id
			ackSum     atomic.Int64         // sum of SettleResult.Acked
			refusedSum atomic.Int64
			crashes    atomic.Int64
			revived    atomic.Int64 // crashed batches whose late ack still counted
			clockMu    sync.Mutex
		)
		// idle is what a worker does when the Job has nothing for it now:
		// on miniredis it moves the clock to the hinted wake-up (a lease
		// expiry or a due retry), on real Redis it polls briefly.
		idle := func(wake time.Duration) {
			if e.mini != nil {
				clockMu.Lock()
				defer clockMu.Unlock()
				e.mini.SetTime(e.now().Add(max(wake, 0) + time.Millisecond))
				return
			}
			time.Sleep(min(max(wake, 0), 5*time.Millisecond) + time.Millisecond)
		}
		// ack acks ids of one lease in one call. A single call for one
		// lease is all or nothing (the lease is current or it is not), so
		// the per-call count tells exactly which ids were counted.
		ack := func(token string, ids []int64) (int, error) {
			res, err := e.c.Ack(ctx, e.job, token, ids...)
			if err != nil {
				return 0, err
			}
			switch res.Acked {
			case len(ids):
				for _, id := range ids {
					counted[id].Add(1)
				}
			case 0:
				if res.Refused != len(ids) {
					return 0, fmt.Errorf("ack of %d ids: %+v", len(ids), res)
				}
			default:
				return 0, fmt.Errorf("ack of %d distinct ids of one lease was split: %+v", len(ids), res)
			}
			ackSum.Add(int64(res.Acked))
			refusedSum.Add(int64(res.Refused))
			return res.Acked, nil
		}

		worker := func(g int) error {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			gen := 0
			wid := fmt.Sprintf("w%d-%d", g, gen)
			var zombie *queue.Batch // a batch abandoned by a "crashed" incarnation
			late := false           // the zombie acks only once its lease has expired
			for {
				r, err := e.c.Lease(ctx, e.job, wid, 0)
				if errors.Is(err, queue.ErrDrained) {
					if zombie != nil {
						// Drained: whatever the crashed incarnation held was
						// settled or taken over; its ack must count nothing.
						if n, err := ack(zombie.Token, ids(*zombie)); err != nil || n > 0 {
							return fmt.Errorf("ack of a crashed batch after the drain counted %d (%v)", n, err)
						}
					}
					return nil
				}
				if err != nil {
					return err
				}
				b := r.Batch
				if len(b.Items) == 0 {
					if r.WaitReason != "peers" {
						return fmt.Errorf("sealed Job waits for %q", r.WaitReason)
					}
					idle(r.WakeIn)
					continue
				}
				for _, it := range b.Items {
					if want := fmt.Sprintf("item-%d", it.ID); string(it.Payload) != want {
						return fmt.Errorf("item %d carries %q, want %q", it.ID, it.Payload, want)
					}
				}
				if zombie != nil && late {
					now, err := e.c.Now(ctx)
					if err != nil {
						return err
					}
					late = !now.After(zombie.Expires)
				}
				if zombie != nil && !late && rng.IntN(2) == 0 {
					// The crashed process comes back to life and acks what it
					// held: counted only if its lease is still current.
					n, err := ack(zombie.Token, ids(*zombie))
					if err != nil {
						return err
					}
					if n > 0 {
						revived.Add(1)
					}
					zombie = nil
				}
				switch p := rng.Float64(); {
				case p < 0.03: // crash: abandon the batch, come back as a new worker
					crashes.Add(1)
					bb := b
					zombie = &bb
					late = rng.IntN(2) == 0
					gen++
					wid = fmt.Sprintf("w%d-%d", g, gen)
					continue
				case p < 0.06: // fail a few items, ack the rest
					var fails []queue.Failure
					var rest []int64
					for _, it := range b.Items {
						if rng.IntN(4) == 0 {
							fails = append(fails, queue.Failure{ID: it.ID, Err: "flaky", Jitter: rng.Float64()})
						} else {
							rest = append(rest, it.ID)
						}
					}
					if len(fails) > 0 {
						res, err := e.c.Nack(ctx, e.job, b.Token, fails...)
						if err != nil {
							return err
						}
						if res.Failed+res.Refused != len(fails) {
							return fmt.Errorf("nack of %d: %+v", len(fails), res)
						}
					}
					if len(rest) > 0 {
						if _, err := ack(b.Token, rest); err != nil {
							return err
						}
					}
				default: // ack in chunks of random size, some of one id
					all := ids(b)
					for len(all) > 0 {
						k := 1 + rng.IntN(len(all))
						if _, err := ack(b.Token, all[:k]); err != nil {
							return err
						}
						all = all[k:]
					}
				}
			}
		}

		start := time.Now()
		errs := make(chan error, nWorkers)
		var wg sync.WaitGroup
		for g := range nWorkers {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- worker(g) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		t.Logf("%d items, %d crashes, %d refused acks, %s", nItems, crashes.Load(), refusedSum.Load(), time.Since(start))

		require.EqualValues(t, nItems, ackSum.Load(), "the Acked counts returned to workers add up to the items: exactly-once accounting")
		for id := range counted {
			if c := counted[id].Load(); c != 1 {
				t.Fatalf("item %d was counted %d times", id, c)
			}
		}
		st, err := e.c.Status(ctx, e.job)
		require.NoError(t, err)
		require.EqualValues(t, nItems, st.Items.Succeeded)
		require.EqualValues(t, nItems, st.Items.Total)
		require.Zero(t, st.Items.Pending)
		require.Zero(t, st.Items.Leased)
		require.Zero(t, st.Items.Retrying)
		require.Zero(t, st.Items.Dead)
		require.Zero(t, st.Leases)
		require.True(t, st.Done)
		require.Positive(t, crashes.Load(), "the run exercised crashes")
		require.GreaterOrEqual(t, st.Items.Takeovers, crashes.Load()-revived.Load(),
			"every abandoned lease was taken over, unless its worker came back and settled it in time")
	})
}

// TestPushLargeItemsIsChunkedByBytes pushes items of 100 KB: a script call
// carries at most about DefaultChunkBytes of them (here about 1 MiB, so
// 11 items), not DefaultChunkItems (1000 items, 100 MB), so that a push of
// large items keeps the Pusher's memory and each Redis call bounded.
func TestPushLargeItemsIsChunkedByBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A server of its own: its command counters are this test's.
	srv := redistest.ForTest(t)
	c, err := queue.Open(ctx, queue.Options{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	job := newJobName()
	require.NoError(t, c.Create(ctx, job, jobstate.Spec{}))

	const n, size = 64, 100 << 10
	big := make([][]byte, n)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	calls := func() int {
		info, err := c.Redis().Info(ctx, "commandstats").Result()
		require.NoError(t, err)
		for _, line := range strings.Split(info, "\r\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
				v, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				require.NoError(t, err)
				return v
			}
		}
		return 0
	}
	before := calls()
	pushed, err := c.Push(ctx, job, big, queue.PushOptions{})
	require.NoError(t, err)
	require.EqualValues(t, n, pushed)
	perCall := queue.DefaultChunkBytes/size + 1
	require.GreaterOrEqual(t, calls()-before, (n+perCall-1)/perCall, "chunks of about %d bytes", queue.DefaultChunkBytes)

	got, err := c.Redis().LRange(ctx, queue.PendingKey(job), 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, v := range got {
		require.True(t, v == string(big[i]), "item %d kept its place and bytes", i)
	}
}
