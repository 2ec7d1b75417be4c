package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxWait caps one wait of an idle worker, so that a lost pub/sub message
// costs at most this long. It is not polling: an idle worker makes one
// cheap call per maxWait.
const maxWait = 5 * time.Second

// watchTimeout is the server-side timeout of one blocking watch on the
// pending list; the watch is renewed while the worker waits.
const watchTimeout = time.Second

// Waiter wakes a worker that has nothing to lease: on a Job event published
// by a script (seal, done, drained, reclaim, resume, ...), on new pending
// items (a blocking BLMOVE of the list onto itself, which notices even a
// plain RPUSH from any client and changes nothing), or when a known
// deadline passes. Its goroutines are owned by run.
type Waiter struct {
	s   *Store
	job string

	mu       sync.Mutex
	ch       chan struct{} // closed and replaced on every event
	watching chan struct{} // non-nil while a pending watch runs; closed when it ends
	wg       sync.WaitGroup
}

// NewWaiter returns a Waiter for job; Run it before waiting.
func (s *Store) NewWaiter(job string) *Waiter {
	return &Waiter{s: s, job: job, ch: make(chan struct{})}
}

// Gen returns the channel that the next event closes. Take it before the
// call whose answer you will wait on, so no event in between is missed.
func (w *Waiter) Gen() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *Waiter) Fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// Run listens to the Job's events until ctx ends, then waits for any
// pending watch to finish. It closes subscribed once events published from
// then on reach it.
func (w *Waiter) Run(ctx context.Context, subscribed chan<- struct{}) {
	defer w.wg.Wait()
	if err := w.s.ready(ctx); err != nil {
		close(subscribed)
		return
	}
	ps := w.s.rdb().Subscribe(ctx, w.s.keysOf(w.job).Key("events"))
	defer ps.Close()
	// Receive the subscription confirmation so that events published
	// after run started are not missed.
	if _, err := ps.Receive(ctx); err != nil && ctx.Err() == nil {
		w.Fire()
	}
	close(subscribed)
	msgs := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-msgs:
			if !ok {
				return
			}
			w.Fire()
		}
	}
}

// watch makes sure one blocking watch on the pending list runs and returns
// the channel closed when it ends.
func (w *Waiter) watch(ctx context.Context) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watching != nil {
		return w.watching
	}
	done := make(chan struct{})
	w.watching = done
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		pending := w.s.keysOf(w.job).Key("pending")
		err := w.s.rdb().BLMove(ctx, pending, pending, "LEFT", "LEFT", watchTimeout).Err()
		if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			// Redis trouble: do not spin. The watch ends only after the
			// pause, or the caller would renew it at once; the caller's
			// timer still runs.
			select {
			case <-ctx.Done():
			case <-time.After(watchTimeout):
			}
		}
		w.mu.Lock()
		w.watching = nil
		close(done)
		w.mu.Unlock()
		if err == nil {
			w.Fire()
		}
	}()
	return done
}

// Wait blocks until an event closes gen, local fires, the wake hint (plus
// a margin, so a lease has really expired) passes, maxWait passes, or ctx
// ends. With watchPending it also wakes on new pending items.
func (w *Waiter) Wait(ctx context.Context, gen <-chan struct{}, local <-chan struct{}, wake time.Duration, watchPending bool) {
	d := maxWait
	if wake >= 0 && wake+5*time.Millisecond < d {
		d = wake + 5*time.Millisecond
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		var watchDone <-chan struct{}
		if watchPending {
			watchDone = w.watch(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-gen:
			return
		case <-local:
			return
		case <-timer.C:
			return
		case <-watchDone:
			// The watch timed out without items: renew it.
		}
	}
}
