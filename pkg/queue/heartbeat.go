package queue

import (
	"context"
	"errors"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// evictionCheckEvery is how often a worker checks that Redis still will not
// evict workq's keys.
const evictionCheckEvery = 5 * time.Minute

// heartbeater extends the worker's leases, and acts on what the Job says:
// it stops the worker when the Job fails, succeeds, is replaced or
// vanishes, hands back unstarted items when the Job is suspended or a peer
// is idle, and applies the Job's lifecycle policy on every beat, so a Job
// needs no controller to be marked.
type heartbeater struct {
	w           *Worker
	wa          *store.Waiter
	stopLeasing context.CancelFunc
	killItems   context.CancelFunc
}

// leasesLostMsg is what a worker logs when it learns that leases of its
// were taken over, from a heartbeat or a settle.
const leasesLostMsg = "leases expired and were taken over (or a speculative copy finished first); their items were stopped and their results will be refused"

// Run beats until ctx ends; it returns nil.
func (h *heartbeater) Run(ctx context.Context) error {
	w := h.w
	t := time.NewTicker(w.heartbeat)
	defer t.Stop()
	var last time.Time
	checked := time.Now()
	var deadline *time.Timer // the Job's active deadline, once known
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	for {
		// A Job event (failing, hungry, suspended, ...) brings a beat at
		// once, at most one per 100ms however busy the events are.
		gen := h.wa.Gen()
		tick := false
		var due <-chan time.Time
		if deadline != nil {
			due = deadline.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			tick = true
		case <-w.reconcile:
			tick = true
		case <-due:
			deadline = nil
			tick = true
		case <-gen:
			if d := 100*time.Millisecond - time.Since(last); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		if !h.beat(ctx) {
			return nil
		}
		if tick {
			snap, err := w.rec.Reconcile(ctx, w.cfg.Job)
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoJob) {
				w.log.Debug("reconcile failed", "err", err)
			}
			if err == nil {
				if snap.Observed.Stored.Stopping() {
					// The policy just ended the Job: stop now.
					if !h.beat(ctx) {
						return nil
					}
				}
				if d := w.spec.ActiveDeadline.D(); d > 0 && deadline == nil && !snap.Observed.StartTime.IsZero() && !snap.Observed.Suspended {
					// Wake when the active deadline passes, to fail the Job
					// then, whoever else is there.
					deadline = time.NewTimer(max(snap.Observed.StartTime.Add(d).Sub(snap.Observed.Now), 0) + 10*time.Millisecond)
				}
			}
			if time.Since(checked) > evictionCheckEvery {
				checked = time.Now()
				if err := w.s.CheckEviction(ctx); errors.Is(err, ErrEviction) {
					w.log.Error("redis may now evict workq's keys; stopping", "err", err)
					h.stop(endEviction)
					return nil
				}
			}
		}
	}
}

// stop ends the worker: no more leases, running items stopped.
func (h *heartbeater) stop(end endReason) {
	h.w.setEnd(end)
	h.w.stopping.Store(true)
	h.stopLeasing()
	h.killItems()
}

// beat makes one heartbeat; it returns false when the worker must stop.
func (h *heartbeater) beat(ctx context.Context) bool {
	w := h.w
	hb, err := w.s.Heartbeat(ctx, w.cfg.Job, w.reg.UID, w.cfg.ID, w.tokens())
	if err != nil {
		if end := jobError(err); end != endNone {
			h.stop(end)
			return false
		}
		if ctx.Err() == nil {
			w.m.redisError(w.cfg.Job)
			w.log.Warn("heartbeat failed", "err", err)
		}
		return true
	}
	if hb.Rejoined {
		w.log.Warn("this worker had been declared lost (no heartbeat within the lease); rejoined")
	}
	if n := w.markLost(hb.Lost); n > 0 {
		w.m.lost(w.cfg.Job, n)
		w.log.Warn(leasesLostMsg, "leases", n)
	}
	switch hb.Phase {
	case jobstate.PhaseFailing, jobstate.PhaseFailed:
		w.log.Warn("job failed; stopping running items")
		h.stop(endFailed)
		return false
	case jobstate.PhaseSucceeding, jobstate.PhaseComplete:
		w.log.Info("job succeeded; stopping")
		h.stop(endDrained)
		return false
	}
	if hb.LostReason != "" {
		_, _ = w.rec.Reconcile(ctx, w.cfg.Job)
	}
	if hb.Done {
		h.wa.Fire()
	}
	w.mu.Lock()
	queued := w.queued
	w.mu.Unlock()
	switch {
	case hb.Suspended && queued > 0:
		// As Kubernetes deletes a suspended Job's pods: what has not
		// started goes back.
		n := w.handBack()
		w.log.Info("job suspended; handed back the items not started", "items", n)
	case hb.HungryAgo >= 0 && hb.HungryAgo < 2*w.heartbeat && w.sizer.worthHandingBack(queued):
		// A peer is idle while this worker holds items it has not
		// started: they go back, for the peer to take.
		n := w.handBack()
		w.log.Debug("handed back unstarted items to idle peers", "items", n)
	}
	return true
}

// tokens are the leases to extend: held and not known lost.
func (w *Worker) tokens() []string {
	w.mu.Lock()
	bs := make([]*batch, 0, len(w.held))
	for _, b := range w.held {
		bs = append(bs, b)
	}
	w.mu.Unlock()
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		if !b.isLost() {
			out = append(out, b.token)
		}
	}
	return out
}

// markLost marks leases taken over by peers and stops their items.
func (w *Worker) markLost(tokens []string) int {
	if len(tokens) == 0 {
		return 0
	}
	n := 0
	for _, t := range tokens {
		w.mu.Lock()
		b := w.held[t]
		w.mu.Unlock()
		if b == nil {
			continue
		}
		b.mu.Lock()
		if !b.lost.Load() {
			b.lost.Store(true)
			n++
		}
		b.mu.Unlock()
		b.cancel()
	}
	return n
}
