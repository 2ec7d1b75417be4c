package queue

import (
	"context"
	"errors"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// leaser asks Redis for items whenever the sizer says the worker can use
// more, and waits (blocking in Redis, not polling) when there are none.
type leaser struct {
	w       *Worker
	wa      *store.Waiter
	seq     int64
	started bool // a lease came: the Job has started
}

// Run leases until the Job is over for this worker or ctx ends; the reason
// is left in the Worker (setEnd).
func (l *leaser) Run(ctx context.Context) error {
	w := l.w
	for {
		if ctx.Err() != nil || w.ended() != endNone {
			return nil
		}
		w.mu.Lock()
		queued := w.queued
		w.mu.Unlock()
		free := w.cfg.Concurrency - int(w.busy.Load())
		n, per, ok, at := w.sizer.want(queued, free, time.Now())
		leases := (n + per - 1) / per
		if !ok {
			var timer <-chan time.Time
			var t *time.Timer
			if !at.IsZero() {
				t = time.NewTimer(time.Until(at))
				timer = t.C
			}
			select {
			case <-ctx.Done():
			case <-w.room:
			case <-timer:
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		gen := l.wa.Gen()
		l.seq++
		r, err := l.lease(ctx, n, per, leases)
		if err != nil {
			if end := jobError(err); end != endNone {
				w.setEnd(end)
			}
			// Anything else: ctx ended while retrying.
			continue
		}
		if r.AvgItem > 0 {
			w.sizer.learn(r.AvgItem)
		}
		if r.Lease == nil {
			if r.Wait == "lost" {
				// The Job's books do not add up: let the policy fail it.
				_, _ = w.rec.Reconcile(context.WithoutCancel(ctx), w.cfg.Job)
			}
			if r.Wait != "repeat" {
				l.wa.Wait(ctx, gen, w.room, r.WakeIn, r.Wait == "unsealed")
			}
			continue
		}
		if l.seq == 1 || !l.started {
			// The Job has started: the policy learns its start (for the
			// active deadline) now, not at the next heartbeat.
			l.started = true
			signal(w.reconcile)
		}
		w.enqueue(w.newBatch(r.Lease))
		for _, l := range r.More {
			w.enqueue(w.newBatch(l))
		}
	}
}

// lease makes one lease call, repeating it with the same sequence number
// while Redis cannot be reached: a lease whose reply was lost is returned
// again, never leased twice.
func (l *leaser) lease(ctx context.Context, n, per, leases int) (store.LeaseReply, error) {
	w := l.w
	backoff := 50 * time.Millisecond
	for {
		t0 := time.Now()
		r, err := w.s.Lease(ctx, w.cfg.Job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: w.cfg.ID,
			Seq: l.seq, Want: n, Max: per, Leases: leases})
		if err == nil {
			d := time.Since(t0)
			items, bytes := 0, 0
			if r.Lease != nil {
				for _, l := range append([]*store.Lease{r.Lease}, r.More...) {
					items += len(l.Items)
					for _, it := range l.Items {
						bytes += len(it.Payload)
					}
				}
			}
			w.sizer.roundTrip(d, items, bytes)
			w.m.lease(w.cfg.Job, d.Seconds(), items)
			return r, nil
		}
		if jobError(err) != endNone || errors.Is(err, store.ErrStale) || ctx.Err() != nil {
			return r, err
		}
		w.m.redisError(w.cfg.Job)
		w.log.Warn("lease failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// newBatch turns a lease into the worker's batch. Its items stay as the
// store decoded them: a handler's Item is made when it runs (see item), so
// a lease is not copied item by item.
func (w *Worker) newBatch(l *store.Lease) *batch {
	b := &batch{token: l.Token, raw: l.Items, fence: l.Fence, index: -1, acked: make([]int64, 0, len(l.Items))}
	if w.spec.Kind() == jobstate.KindIndexed {
		b.index = w.spec.IndexBase
	}
	// Its items stop when the worker kills its items, or when this lease
	// alone is lost.
	b.ctx, b.cancel = context.WithCancel(w.itemCtx)
	return b
}
