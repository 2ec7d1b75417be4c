package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// batch is one lease the worker holds. Executors claim its items in lease
// order, so the items that started are always a prefix: that prefix is what
// Redis charges an attempt for if this worker dies.
type batch struct {
	token  string
	raw    []store.Item
	fence  int64
	index  int             // an Indexed Job's first index (a shard's base); -1: not indexed
	ctx    context.Context // its items' context: cancelled when the lease is lost
	cancel context.CancelFunc

	next int // items claimed by executors; guarded by Worker.mu

	mu       sync.Mutex
	done     int // items whose outcome is known
	sent     int // items whose outcome Redis has recorded (gone from its record)
	acked    []int64
	failed   []store.Failure
	released []int64
	results  []store.Result
	since    time.Time // the oldest outcome not sent yet
	reported int       // started items Redis knows of (after sent ones)
	startAt  time.Time // when an item started that Redis does not know of
	// lost: the lease was taken over. Set under mu (with what goes with
	// it), read without: executors look at it before every item.
	lost atomic.Bool
}

// len is how many items the lease holds.
func (b *batch) len() int { return len(b.raw) }

// item is the i-th item as a handler receives it.
func (b *batch) item(i int) Item {
	r := b.raw[i]
	it := Item{ID: r.ID, Attempt: r.Attempt, Payload: r.Payload, Fence: b.fence, Index: -1}
	if b.index >= 0 {
		it.Index = int(r.ID) + b.index
		if b.index > 0 {
			// A shard's ids count from 0; its indexes from its base.
			it.Payload = strconv.AppendInt(nil, int64(it.Index), 10)
		}
	}
	return it
}

// items returns items lo..hi as a handler receives them.
func (b *batch) items(lo, hi int) []Item {
	out := make([]Item, hi-lo)
	for i := range out {
		out[i] = b.item(lo + i)
	}
	return out
}

// outcome is what one item's run came to.
type outcome struct {
	err     error
	release bool // back without using an attempt
	action  store.Action
	output  []byte
	exit    int
}

// claimChunk is how many items of tiny duration an executor takes at once;
// once one of them takes longer than chunkItemLimit, the rest of the chunk
// is handed back.
const (
	claimChunk     = 64
	chunkItemLimit = time.Millisecond
)

// take claims up to n items of the first queued lease, waiting until one
// is there; ok is false once the queue is closed and empty.
func (w *Worker) take(n int) (b *batch, lo, hi int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) == 0 {
		if w.closed {
			return nil, 0, 0, false
		}
		w.claim.Wait()
	}
	b = w.queue[0]
	lo = b.next
	hi = min(b.len(), lo+n)
	b.next = hi
	w.queued -= hi - lo
	if hi == b.len() {
		w.queue[0] = nil
		w.queue = w.queue[1:]
	}
	return b, lo, hi, true
}

// enqueue adds a leased batch for the executors.
func (w *Worker) enqueue(b *batch) {
	w.mu.Lock()
	w.held[b.token] = b
	w.queue = append(w.queue, b)
	w.queued += b.len()
	w.mu.Unlock()
	w.claim.Broadcast()
}

func (w *Worker) closeQueue() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.claim.Broadcast()
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// execute is one executor: it claims items and runs them until the queue
// closes.
func (w *Worker) execute(ctx context.Context) {
	for {
		n := 1
		if w.cfg.BatchHandler != nil {
			n = w.maxBatch
		} else if w.sizer.tiny() {
			n = claimChunk
		}
		b, lo, hi, ok := w.take(n)
		if !ok {
			return
		}
		signal(w.room)
		b.noteStart()
		w.busy.Add(1)
		t0 := time.Now()
		w.sizer.started(t0)
		ran := 0
		// Items of a chunk are tiny: the clock is read once per item, as
		// the time since t0.
		var el time.Duration // since t0, when the last item ended
		for i := lo; i < hi; {
			if w.stopping.Load() || b.isLost() {
				b.record(w, i, hi, outcome{release: true})
				break
			}
			end := i + 1
			if w.cfg.BatchHandler != nil {
				end = hi
			}
			o := w.run(ctx, b, i, end)
			b.record(w, i, end, o)
			ran += end - i
			i = end
			prev := el
			el = time.Since(t0)
			if i < hi && w.cfg.BatchHandler == nil && el-prev > chunkItemLimit {
				// Items are no longer tiny: the rest of the chunk goes
				// back at once, for whoever is free.
				b.record(w, i, hi, outcome{release: true})
				break
			}
		}
		w.busy.Add(-1)
		w.sizer.ended(t0)
		if ran > 0 {
			d := el
			w.sizer.observe(d, ran)
			if w.cfg.BatchHandler != nil {
				w.m.duration(w.cfg.Job, d.Seconds())
			} else {
				w.m.duration(w.cfg.Job, d.Seconds()/float64(ran))
			}
		}
		signal(w.room)
	}
}

// exitCoder is an error that carries a command's exit status.
type exitCoder interface{ ExitCode() int }

// run runs items lo..hi of b (one, or the whole batch) and classifies the
// outcome by the Job's failure policy.
func (w *Worker) run(ctx context.Context, b *batch, lo, hi int) outcome {
	ictx := b.ctx
	var out []byte
	if w.cfg.Results > 0 {
		ictx = context.WithValue(ictx, outputKey{}, &out)
	}
	err := w.call(ictx, b, lo, hi)
	if err == nil {
		return outcome{output: out}
	}
	f := jobstate.ItemFailure{ExitCode: -1}
	var ec exitCoder
	if errors.As(err, &ec) {
		f.ExitCode = ec.ExitCode()
	}
	f.TimedOut = errors.Is(err, ErrItemTimeout)
	// Cut short because the worker is stopping (its grace is over, the Job
	// failed or its lease was lost): not the item's fault.
	f.Shutdown = ctx.Err() != nil || b.ctx.Err() != nil
	action, rule := w.spec.FailureAction(f)
	if f.Shutdown && action == jobstate.ActionIgnore {
		return outcome{err: err, release: true}
	}
	if rule != "" {
		err = errors.Join(err, errors.New("failure policy rule "+rule+" applied"))
	}
	exit := 1
	if f.ExitCode > 0 {
		exit = f.ExitCode
	}
	return outcome{err: err, action: store.ActionOf(action), output: out, exit: exit}
}

// noteStart remembers that items of b started that Redis does not know of.
func (b *batch) noteStart() {
	b.mu.Lock()
	if b.startAt.IsZero() {
		b.startAt = time.Now()
	}
	b.mu.Unlock()
}

func (b *batch) isLost() bool { return b.lost.Load() }

// record notes the outcome of items lo..hi and hands the batch to the acker
// once every item has one.
func (b *batch) record(w *Worker, lo, hi int, o outcome) {
	b.mu.Lock()
	for i := lo; i < hi; i++ {
		id := b.raw[i].ID
		switch {
		case o.release:
			b.released = append(b.released, id)
		case o.err != nil:
			b.failed = append(b.failed, store.Failure{ID: id, Action: o.action, Jitter: rand.Float64(), Err: o.err.Error()})
		default:
			b.acked = append(b.acked, id)
		}
		if w.cfg.Results > 0 && !o.release {
			b.results = append(b.results, store.Result{ID: id, Attempt: b.raw[i].Attempt, Exit: o.exit, Output: o.output})
		}
	}
	if b.since.IsZero() {
		b.since = time.Now()
	}
	b.done += hi - lo
	complete := b.done == b.len()
	b.mu.Unlock()
	// Only a finished batch wakes the acker: outcomes of one still
	// running wait partialAfter anyway, and its tick finds them.
	if complete {
		w.ready <- b
	}
}

// handBack takes every unclaimed item out of the queue and releases it, so
// that peers (or this worker's next incarnation) run it without an attempt
// used.
func (w *Worker) handBack() int {
	w.mu.Lock()
	q := w.queue
	w.queue = nil
	w.queued = 0
	type span struct {
		b      *batch
		lo, hi int
	}
	spans := make([]span, 0, len(q))
	for _, b := range q {
		if b.next < b.len() {
			spans = append(spans, span{b, b.next, b.len()})
			b.next = b.len()
		}
	}
	w.mu.Unlock()
	// The leaser may wait for the executors to claim what was queued: it
	// is gone, so it must look again (or it waits for nothing).
	signal(w.room)
	n := 0
	for _, s := range spans {
		s.b.record(w, s.lo, s.hi, outcome{release: true})
		n += s.hi - s.lo
	}
	return n
}
