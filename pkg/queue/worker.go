package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workq/workq/pkg/jobstate"
)

// ErrStopped is returned by Worker.Run when its context ended (a signal)
// before the Job did. What the worker held was finished or handed back.
var ErrStopped = errors.New("queue: worker stopped before the job ended")

// Handler processes one item. Returning nil acks the item; an error nacks
// it, and err.Error() is kept as the item's last error. The context ends
// when the worker must stop at once (grace period over, Job failed).
type Handler interface {
	Handle(ctx context.Context, it Item) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, it Item) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, it Item) error { return f(ctx, it) }

// BatchHandler processes all items of one lease at once: nil acks them all,
// an error nacks them all.
type BatchHandler interface {
	HandleBatch(ctx context.Context, items []Item) error
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, items []Item) error

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, items []Item) error { return f(ctx, items) }

// WorkerConfig configures a Worker. Zero fields take their defaults.
type WorkerConfig struct {
	// Job is the Job to work on. Required.
	Job string
	// ID names this worker in Redis; unique per process. Default host-pid-random.
	ID string
	// Concurrency is how many items (or batches) run at once. Default 1.
	Concurrency int
	// BatchSize overrides the Job's batch size. Default 0: the Job's.
	BatchSize int
	// Heartbeat is how often leases are extended. Default: a third of the
	// Job's lease. Must be shorter than the lease.
	Heartbeat time.Duration
	// Grace is how long running items may finish after ctx ends. Default 10s.
	Grace time.Duration
	// Wait is how long to wait for Redis and the Job to exist. Default 5m.
	Wait time.Duration
	// Handler runs one item at a time; set it or BatchHandler.
	Handler Handler
	// BatchHandler runs a whole leased batch; set it or Handler.
	BatchHandler BatchHandler
	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, records the worker's Prometheus metrics.
	Metrics *Metrics
	// Version is reported with the worker's registration.
	Version string
}

// Defaults of WorkerConfig.
const (
	DefaultGrace = 10 * time.Second
	DefaultWait  = 5 * time.Minute
)

func (c WorkerConfig) withDefaults() WorkerConfig {
	c.Concurrency = cmp.Or(c.Concurrency, 1)
	c.Grace = cmp.Or(c.Grace, DefaultGrace)
	c.Wait = cmp.Or(c.Wait, DefaultWait)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	return c
}

func (c WorkerConfig) validate() error {
	switch {
	case c.Job == "":
		return errors.New("worker: no Job given; pass --job NAME or set WORKQ_JOB")
	case c.Concurrency < 1:
		return fmt.Errorf("worker: concurrency (%d) must be at least 1", c.Concurrency)
	case c.BatchSize < 0:
		return fmt.Errorf("worker: batch-size (%d) must not be negative", c.BatchSize)
	case c.Heartbeat < 0:
		return fmt.Errorf("worker: heartbeat (%s) must not be negative", c.Heartbeat)
	case c.Grace < 0:
		return fmt.Errorf("worker: grace (%s) must not be negative", c.Grace)
	case (c.Handler == nil) == (c.BatchHandler == nil):
		return errors.New("worker: set exactly one of Handler and BatchHandler")
	}
	return nil
}

// Worker leases batches of a Job's items, runs them, acks them, heartbeats,
// and ends when the Job is drained. Create it with NewWorker; Run it once.
type Worker struct {
	c   *Client
	cfg WorkerConfig
	log *slog.Logger

	batch     int           // items per lease
	heartbeat time.Duration // heartbeat period
	lease     time.Duration // the Job's lease

	mu     sync.Mutex
	held   map[string]*heldLease // by token
	queued int                   // units waiting for an executor

	freed    chan struct{} // an item started or was settled
	stopping atomic.Bool   // no new item starts; queued ones are handed back
	failed   atomic.Bool   // the Job failed
	deleted  atomic.Bool   // the Job was deleted
}

type heldLease struct {
	remaining int
	lost      bool
}

// unit is what one executor runs: one item, or a whole batch.
type unit struct {
	token string
	items []Item
}

type result struct {
	token   string
	items   []Item
	err     error
	release bool
}

// NewWorker checks cfg and returns a Worker for c.
func NewWorker(c *Client, cfg WorkerConfig) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Worker{c: c, cfg: cfg, log: cfg.Logger.With("job", cfg.Job, "worker", cfg.ID),
		held: map[string]*heldLease{}, freed: make(chan struct{}, 1)}, nil
}

// ID returns the worker's id in Redis.
func (w *Worker) ID() string { return w.cfg.ID }

type endReason int

const (
	endDrained endReason = iota
	endStopped
	endFailed
	endDeleted
)

// Run works until the Job is drained (nil: exit 0), the Job fails
// (ErrJobFailed), the Job is deleted (ErrNoJob), or ctx ends (ErrStopped,
// after running items finished within the grace period and the rest was
// handed back). It first waits up to cfg.Wait for Redis and the Job.
func (w *Worker) Run(ctx context.Context) error {
	spec, err := w.register(ctx)
	switch {
	case errors.Is(err, ErrDrained):
		w.log.Info("job already drained; exiting")
		return nil
	case err != nil:
		return err
	}
	w.lease = spec.Lease.D()
	w.batch = cmp.Or(w.cfg.BatchSize, spec.BatchSize)
	w.heartbeat = cmp.Or(w.cfg.Heartbeat, w.lease/3)
	if w.heartbeat >= w.lease {
		w.finish(OutcomeStopped)
		return fmt.Errorf("worker: heartbeat (%s) must be shorter than the Job's lease (%s)", w.heartbeat, w.lease)
	}

	// runCtx outlives ctx: heartbeats and acks go on during the grace period.
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	itemCtx, killItems := context.WithCancel(context.Background())
	defer killItems()
	leaseCtx, stopLeasing := context.WithCancel(ctx)
	defer stopLeasing()

	wa := newWaiter(w.c, w.cfg.Job)
	var bg sync.WaitGroup
	subscribed := make(chan struct{})
	bg.Add(2)
	go func() { defer bg.Done(); wa.run(runCtx, subscribed) }()
	go func() { defer bg.Done(); w.heartbeatLoop(runCtx, wa, stopLeasing, killItems) }()
	select {
	case <-subscribed:
	case <-ctx.Done():
	}

	units := w.batch + w.cfg.Concurrency + 1
	work := make(chan unit, units)
	results := make(chan result, units)
	var execs sync.WaitGroup
	for range w.cfg.Concurrency {
		execs.Add(1)
		go func() { defer execs.Done(); w.executor(itemCtx, work, results) }()
	}
	acked := make(chan struct{})
	go func() { defer close(acked); w.acker(runCtx, results) }()

	end := w.leaseLoop(leaseCtx, runCtx, wa, work)
	if end != endDrained {
		w.stopping.Store(true)
	}
	close(work)
	execsDone := make(chan struct{})
	go func() { execs.Wait(); close(execsDone) }()
	switch end {
	case endStopped:
		select {
		case <-execsDone:
		case <-time.After(w.cfg.Grace):
			w.log.Warn("grace period over; stopping running items", "grace", w.cfg.Grace)
			killItems()
		}
	case endFailed, endDeleted:
		killItems()
	}
	<-execsDone
	close(results)
	<-acked

	var out error
	outcome := OutcomeStopped
	switch end {
	case endDrained:
		outcome = OutcomeSucceeded
		w.log.Info("job drained; exiting")
	case endStopped:
		out = ErrStopped
	case endFailed:
		out = fmt.Errorf("job %q: %w", w.cfg.Job, ErrJobFailed)
	case endDeleted:
		out = fmt.Errorf("job %q was deleted: %w", w.cfg.Job, ErrNoJob)
	}
	// Heartbeats stop before the end is recorded: one sent after it would
	// register the worker again, alive until its heartbeat expired.
	cancelRun()
	bg.Wait()
	if end != endDeleted {
		w.finish(outcome)
	}
	return out
}

// register waits for Redis and the Job, registers, and returns the spec.
func (w *Worker) register(ctx context.Context) (spec jobstate.Spec, err error) {
	host, _ := os.Hostname()
	info := WorkerInfo{ID: w.cfg.ID, Host: host, PID: os.Getpid(), Started: time.Now().UTC(), Version: w.cfg.Version}
	deadline := time.Now().Add(w.cfg.Wait)
	backoff := 100 * time.Millisecond
	var logged time.Time
	for {
		err = w.c.Register(ctx, w.cfg.Job, info)
		if err == nil {
			s, serr := w.c.Spec(ctx, w.cfg.Job)
			if serr == nil {
				return s.WithDefaults(), nil
			}
			err = serr
		}
		if errors.Is(err, ErrDrained) || errors.Is(err, ErrJobFailed) {
			return jobstate.Spec{}, err
		}
		// Wrong credentials do not pass by waiting; a Redis that is down
		// or a Job not created yet may.
		if errors.Is(err, ErrAuth) || (!errors.Is(err, ErrNoJob) && !errors.Is(err, ErrUnavailable)) {
			return jobstate.Spec{}, err
		}
		if ctx.Err() != nil {
			return jobstate.Spec{}, ErrStopped
		}
		if time.Now().After(deadline) {
			hint := ""
			if errors.Is(err, ErrNoJob) {
				hint = fmt.Sprintf("; create it with `coordinator create %s`, or check --job", w.cfg.Job)
			}
			return jobstate.Spec{}, fmt.Errorf("waited %s (--wait) for job %q: %w%s", w.cfg.Wait, w.cfg.Job, err, hint)
		}
		if time.Since(logged) > 30*time.Second {
			w.log.Info("waiting for redis and the job", "reason", err.Error(), "wait", w.cfg.Wait)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (w *Worker) signalFreed() {
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// hasRoom reports whether the worker should lease more: few enough units
// wait for an executor that a new batch keeps the executors busy.
func (w *Worker) hasRoom() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg.BatchHandler != nil {
		return w.queued == 0
	}
	return w.queued <= min(w.batch/2, w.cfg.Concurrency)
}

func (w *Worker) tokens() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.held))
	for t, h := range w.held {
		if !h.lost {
			out = append(out, t)
		}
	}
	return out
}

func (w *Worker) leaseLoop(ctx, runCtx context.Context, wa *waiter, work chan<- unit) endReason {
	backoff := 50 * time.Millisecond
	reason := func() endReason {
		switch {
		case w.failed.Load():
			return endFailed
		case w.deleted.Load():
			return endDeleted
		}
		return endStopped
	}
	for {
		if ctx.Err() != nil {
			return reason()
		}
		if !w.hasRoom() {
			select {
			case <-ctx.Done():
			case <-w.freed:
			}
			continue
		}
		gen := wa.gen()
		t0 := time.Now()
		res, err := w.c.Lease(ctx, w.cfg.Job, w.cfg.ID, w.batch)
		switch {
		case errors.Is(err, ErrDrained):
			return endDrained
		case errors.Is(err, ErrJobFailed):
			w.failed.Store(true)
			return endFailed
		case errors.Is(err, ErrNoJob):
			w.deleted.Store(true)
			return endDeleted
		case err != nil:
			if ctx.Err() != nil {
				return reason()
			}
			w.cfg.Metrics.redisError(w.cfg.Job)
			w.log.Warn("lease failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		items := res.Batch.Items
		w.cfg.Metrics.lease(w.cfg.Job, time.Since(t0).Seconds(), len(items))
		if len(items) == 0 {
			wa.wait(ctx, gen, w.freed, res.WakeIn, res.WaitReason == "unsealed")
			continue
		}
		w.mu.Lock()
		w.held[res.Batch.Token] = &heldLease{remaining: len(items)}
		if w.cfg.BatchHandler != nil {
			w.queued++
		} else {
			w.queued += len(items)
		}
		w.mu.Unlock()
		if w.cfg.BatchHandler != nil {
			work <- unit{token: res.Batch.Token, items: items}
			continue
		}
		for i := range items {
			work <- unit{token: res.Batch.Token, items: items[i : i+1]}
		}
	}
}

func (w *Worker) executor(ctx context.Context, work <-chan unit, results chan<- result) {
	for u := range work {
		w.mu.Lock()
		w.queued--
		lost := w.held[u.token] == nil || w.held[u.token].lost
		w.mu.Unlock()
		w.signalFreed()
		if w.stopping.Load() || lost {
			results <- result{token: u.token, items: u.items, release: true}
			continue
		}
		start := time.Now()
		err := w.call(ctx, u)
		w.cfg.Metrics.duration(w.cfg.Job, time.Since(start).Seconds())
		// An item cut short because the worker is stopping did not fail:
		// it goes back without using an attempt.
		release := err != nil && ctx.Err() != nil && w.stopping.Load()
		results <- result{token: u.token, items: u.items, err: err, release: release}
	}
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, u unit) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	if w.cfg.BatchHandler != nil {
		return w.cfg.BatchHandler.HandleBatch(ctx, u.items)
	}
	return w.cfg.Handler.Handle(ctx, u.items[0])
}

// acker settles results in batches: everything that is ready is sent in one
// round trip. Failed round trips are retried; results are never dropped
// while their lease can still be current.
func (w *Worker) acker(ctx context.Context, results <-chan result) {
	var batch []result
	for {
		r, ok := <-results
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	more:
		for {
			select {
			case r, ok := <-results:
				if !ok {
					w.settle(ctx, batch, true)
					return
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		w.settle(ctx, batch, false)
	}
}

func (w *Worker) settle(ctx context.Context, batch []result, closing bool) {
	byToken := map[string]*Settlement{}
	var order []string
	for _, r := range batch {
		s := byToken[r.token]
		if s == nil {
			s = &Settlement{Token: r.token}
			byToken[r.token] = s
			order = append(order, r.token)
		}
		for _, it := range r.items {
			switch {
			case r.release:
				s.Released = append(s.Released, it.ID)
			case r.err != nil:
				s.Failed = append(s.Failed, Failure{ID: it.ID, Err: r.err.Error(), Jitter: rand.Float64()})
			default:
				s.Acked = append(s.Acked, it.ID)
			}
		}
	}
	ss := make([]Settlement, 0, len(order))
	for _, t := range order {
		ss = append(ss, *byToken[t])
	}
	backoff := 50 * time.Millisecond
	giveUp := time.Now().Add(max(w.lease, time.Second))
	for {
		res, err := w.c.Settle(ctx, w.cfg.Job, ss)
		if err == nil {
			w.cfg.Metrics.item(w.cfg.Job, outcomeSucceeded, res.Acked)
			w.cfg.Metrics.item(w.cfg.Job, outcomeFailed, res.Failed)
			w.cfg.Metrics.item(w.cfg.Job, outcomeReleased, res.Released)
			w.cfg.Metrics.item(w.cfg.Job, outcomeRefused, res.Refused)
			w.cfg.Metrics.stale(w.cfg.Job, res.Refused)
			if res.Refused > 0 {
				w.log.Warn("stale acks refused: the leases had expired and were taken over", "items", res.Refused)
			}
			break
		}
		if errors.Is(err, ErrNoJob) {
			w.deleted.Store(true)
			break
		}
		w.cfg.Metrics.redisError(w.cfg.Job)
		// While running, retry until Redis answers (a result must not be
		// lost while its lease may be current); when closing, retry for as
		// long as a lease could still be current.
		if closing && time.Now().After(giveUp) {
			w.log.Error("could not record results; their leases will expire and the items will run again", "err", err, "items", len(batch))
			break
		}
		w.log.Warn("settle failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	w.mu.Lock()
	for _, r := range batch {
		if h := w.held[r.token]; h != nil {
			h.remaining -= len(r.items)
			if h.remaining <= 0 {
				delete(w.held, r.token)
			}
		}
	}
	w.mu.Unlock()
	w.signalFreed()
}

// heartbeatLoop extends the worker's leases until ctx ends, and stops the
// worker when the Job fails or is deleted.
func (w *Worker) heartbeatLoop(ctx context.Context, wa *waiter, stopLeasing, killItems context.CancelFunc) {
	t := time.NewTicker(w.heartbeat)
	defer t.Stop()
	var last time.Time
	for {
		// A Job event (failing, deleted, ...) triggers a heartbeat at
		// once, so running items stop without waiting for the ticker;
		// at most one per 100ms however busy the events are.
		gen := wa.gen()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-gen:
			if d := 100*time.Millisecond - time.Since(last); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		last = time.Now()
		hb, err := w.c.Heartbeat(ctx, w.cfg.Job, w.cfg.ID, w.tokens())
		switch {
		case errors.Is(err, ErrNoJob):
			w.log.Warn("job deleted; stopping")
			w.deleted.Store(true)
			w.stopping.Store(true)
			stopLeasing()
			killItems()
			return
		case err != nil:
			if ctx.Err() == nil {
				w.cfg.Metrics.redisError(w.cfg.Job)
				w.log.Warn("heartbeat failed", "err", err)
			}
			continue
		}
		if hb.Rejoined {
			w.log.Warn("this worker had been declared lost (no heartbeat within the lease); rejoined")
		}
		if len(hb.Lost) > 0 {
			w.mu.Lock()
			for _, tok := range hb.Lost {
				if h := w.held[tok]; h != nil {
					h.lost = true
				}
			}
			w.mu.Unlock()
			w.cfg.Metrics.lost(w.cfg.Job, len(hb.Lost))
			w.log.Warn("leases expired and were taken over; their results will be refused", "leases", len(hb.Lost))
		}
		if hb.Phase == "Failing" || hb.Phase == "Failed" {
			w.log.Warn("job failed; stopping running items")
			w.failed.Store(true)
			w.stopping.Store(true)
			stopLeasing()
			killItems()
			return
		}
		if hb.Done {
			wa.fire()
		}
	}
}

// finish records how the worker ended; it uses its own short deadline since
// the caller's context may be over.
func (w *Worker) finish(outcome string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.c.Finish(ctx, w.cfg.Job, w.cfg.ID, outcome); err != nil && !errors.Is(err, ErrNoJob) {
		w.log.Warn("could not record the worker's end", "err", err)
	}
}
