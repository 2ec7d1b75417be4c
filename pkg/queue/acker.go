package queue

import (
	"context"
	"errors"
	"time"

	"github.com/workq/workq/internal/store"
)

// Settling: a lease whose items have all finished is settled at once (or
// within settleGap of the last settle), in one small write ("all of lease
// T, except these"); outcomes of a lease that
// is still running are sent once the oldest has waited partialAfter, and
// items that started are made known to Redis within startReportAfter (a
// worker that dies is charged an attempt for those only).
const (
	flushTick        = 25 * time.Millisecond
	partialAfter     = 100 * time.Millisecond
	startReportAfter = 50 * time.Millisecond
	// settleGap spaces settle calls: a lease that finishes within it of
	// the last settle waits for the rest of the gap, and goes with every
	// other lease that finishes meanwhile. Leases of tiny items finish
	// thousands of times a second; one settle each spent most of Redis's
	// time on what every call costs. A worker whose leases finish further
	// apart never waits.
	settleGap = 2 * time.Millisecond
	// settleWeight caps the work of one settle call: what Redis does per
	// listed outcome (a failure, a hand-back, a result, an ack of a lease
	// still running), and one for each lease. A lease whose items all
	// succeeded weighs one; a lease of 1000 items of which 90 failed,
	// about 90 (a millisecond of Redis). Leases that finish together go
	// in as few calls as this allows, so that no call keeps Redis from
	// other clients for long.
	settleWeight = 128
)

// acker sends the outcomes of items to Redis, batching everything that is
// ready into one round trip.
type acker struct {
	w       *Worker
	seq     int64
	closing chan struct{}
	// giveUp is when a closing acker stops retrying what Redis does not
	// take: a lease after it began closing, when those leases must have
	// expired anyway. Set once, by the first closing call that fails.
	giveUp time.Time
}

func (a *acker) giveUpAt() time.Time {
	if a.giveUp.IsZero() {
		a.giveUp = time.Now().Add(max(a.w.spec.Lease.D(), time.Second))
	}
	return a.giveUp
}

func (a *acker) close() { close(a.closing) }

func newAcker(w *Worker) *acker { return &acker{w: w, closing: make(chan struct{})} }

// Run settles until close is called and everything held is sent. It
// returns nil.
func (a *acker) Run(ctx context.Context) error {
	w := a.w
	t := time.NewTicker(flushTick)
	defer t.Stop()
	closing := false
	var last time.Time // the last settle call
	for {
		complete := map[*batch]bool{}
		select {
		case b := <-w.ready:
			complete[b] = true
			if wait := w.settleGap - time.Since(last); wait > 0 && !closing {
				closing = a.gather(complete, wait)
			}
		case <-t.C:
		case <-a.closing:
			closing = true
		}
	drain:
		for {
			select {
			case b := <-w.ready:
				complete[b] = true
			default:
				break drain
			}
		}
		for _, ps := range splitSettle(a.collect(complete, closing)) {
			last = time.Now()
			if res, ok := a.send(ctx, ps, closing); ok {
				a.apply(ps, res)
			}
		}
		if closing {
			return nil
		}
	}
}

// splitSettle cuts the leases of one settle into calls of at most
// settleWeight each (a heavier lease goes alone).
func splitSettle(ps []pending) [][]pending {
	var out [][]pending
	from, weight := 0, 0
	for i, p := range ps {
		wt := 1 + len(p.s.Failed) + len(p.s.Released) + len(p.s.Results) + len(p.s.Acked)
		if i > from && weight+wt > settleWeight {
			out = append(out, ps[from:i])
			from, weight = i, 0
		}
		weight += wt
	}
	if from < len(ps) {
		out = append(out, ps[from:])
	}
	return out
}

// gather adds to complete the batches that finish within wait, and says
// whether the acker was closed meanwhile.
func (a *acker) gather(complete map[*batch]bool, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case b := <-a.w.ready:
			complete[b] = true
		case <-t.C:
			return false
		case <-a.closing:
			return true
		}
	}
}

// pending is one batch's part of a settle call, with what it took.
type pending struct {
	b                *batch
	s                store.Settlement
	nA, nF, nR, nRes int
	claimed          int
	complete         bool
}

// collect builds a settle call from the batches in complete and from held
// batches whose outcomes or starts are due (all of them when final).
func (a *acker) collect(complete map[*batch]bool, final bool) []pending {
	w := a.w
	now := time.Now()
	w.mu.Lock()
	type cand struct {
		b       *batch
		claimed int
	}
	cands := make([]cand, 0, len(w.held))
	for _, b := range w.held {
		cands = append(cands, cand{b, b.next})
	}
	w.mu.Unlock()
	var out []pending
	for _, c := range cands {
		b := c.b
		b.mu.Lock()
		p := pending{b: b, claimed: c.claimed, complete: complete[b] || b.done == b.len()}
		p.nA, p.nF, p.nR, p.nRes = len(b.acked), len(b.failed), len(b.released), len(b.results)
		outcomes := p.nA + p.nF + p.nR
		started := c.claimed - (b.sent + outcomes)
		startDue := started != b.reported && (final || b.startAt.IsZero() || now.Sub(b.startAt) >= startReportAfter)
		due := p.complete || final || (outcomes > 0 && now.Sub(b.since) >= partialAfter) || startDue
		if !due || (outcomes == 0 && !startDue && !p.complete) {
			b.mu.Unlock()
			continue
		}
		s := store.Settlement{Token: b.token, Started: -1}
		if p.complete {
			s.All, s.AckCount = true, p.nA
		} else {
			s.Acked = append([]int64(nil), b.acked...)
		}
		s.Failed = append([]store.Failure(nil), b.failed...)
		s.Released = append([]int64(nil), b.released...)
		s.Results = append([]store.Result(nil), b.results...)
		if !p.complete && started != b.reported {
			s.Started = started
		}
		b.mu.Unlock()
		p.s = s
		out = append(out, p)
	}
	return out
}

// apply takes what Redis recorded out of the batches.
func (a *acker) apply(ps []pending, res store.SettleResult) {
	w := a.w
	gone := map[string]bool{}
	for _, t := range res.Gone {
		gone[t] = true
	}
	var finished []*batch
	newlyLost := 0
	for _, p := range ps {
		b := p.b
		b.mu.Lock()
		b.acked = b.acked[p.nA:]
		b.failed = b.failed[p.nF:]
		b.released = b.released[p.nR:]
		b.results = b.results[p.nRes:]
		b.sent += p.nA + p.nF + p.nR
		if p.s.Started >= 0 {
			b.reported = p.s.Started
			b.startAt = time.Time{}
		}
		if b.sent < b.done {
			b.since = time.Now()
		} else {
			b.since = time.Time{}
		}
		if gone[b.token] && !b.lost.Load() {
			b.lost.Store(true)
			newlyLost++
			b.cancel() // its running items are refused anyway: stop them
		}
		end := b.sent == b.len() || (b.lost.Load() && b.done == b.len())
		b.mu.Unlock()
		if end {
			finished = append(finished, b)
		}
	}
	if len(finished) > 0 {
		w.mu.Lock()
		for _, b := range finished {
			delete(w.held, b.token)
		}
		w.mu.Unlock()
		for _, b := range finished {
			b.cancel()
		}
	}
	w.m.item(w.cfg.Job, outcomeSucceeded, res.Acked)
	w.m.item(w.cfg.Job, outcomeFailed, res.Failed)
	w.m.item(w.cfg.Job, outcomeReleased, res.Released)
	if newlyLost > 0 {
		// The settle learnt it before a heartbeat did: the same news.
		w.m.lost(w.cfg.Job, newlyLost)
		w.log.Warn(leasesLostMsg, "leases", newlyLost)
	}
	w.m.item(w.cfg.Job, outcomeRefused, res.Refused)
	w.m.stale(w.cfg.Job, res.Refused)
	if res.Refused > 0 {
		w.log.Warn("stale results refused: their leases had expired and were taken over", "items", res.Refused, "leases", len(res.Gone))
	}
	if res.FailJob {
		w.log.Warn("a failure policy rule with action FailJob matched; the Job fails")
	}
	if res.Dead > 0 || res.FailJob {
		// The Job may have to fail now (max-failed-items, a FailJob rule):
		// the policy runs at once, not at the next heartbeat.
		signal(w.reconcile)
	}
}

// send makes one settle call, repeating it with the same sequence number
// until Redis answers: a settle whose reply was lost is answered again from
// the first one, never applied twice. While closing it gives up once the
// leases must have expired anyway.
func (a *acker) send(ctx context.Context, ps []pending, closing bool) (store.SettleResult, bool) {
	w := a.w
	a.seq++
	q := store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: a.seq, ResultsMax: w.cfg.Results,
		WaitReplicas: w.cfg.AckReplicas, WaitTimeout: w.cfg.AckTimeout}
	q.Timed, q.TimedTotal = w.sizer.takeTimed()
	for _, p := range ps {
		q.Leases = append(q.Leases, p.s)
	}
	backoff := 50 * time.Millisecond
	for {
		r, err := w.s.Settle(ctx, w.cfg.Job, q)
		if err == nil {
			if q.WaitReplicas > 0 && r.Replicas < q.WaitReplicas {
				w.log.Warn("replicas did not confirm results in time; they stand on the primary", "replicas", r.Replicas,
					"want", q.WaitReplicas, "timeout", q.WaitTimeout)
			}
			return r, true
		}
		if end := jobError(err); end != endNone {
			w.setEnd(end)
			return r, false
		}
		if errors.Is(err, store.ErrStale) {
			return r, false
		}
		w.m.redisError(w.cfg.Job)
		if closing && time.Now().After(a.giveUpAt()) {
			w.log.Error("could not record results; their leases will expire and the items will run again", "err", err)
			return r, false
		}
		w.log.Warn("settle failed; retrying", "err", err, "in", backoff)
		// A close while this call retries makes it a closing one: the
		// worker is ending, and must not wait for Redis forever.
		closeReq, wait := a.closing, backoff
		if closing {
			// The last try comes at the give-up time, not a backoff later.
			closeReq, wait = nil, min(backoff, time.Until(a.giveUpAt())+time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return r, false
		case <-closeReq:
			closing = true
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
