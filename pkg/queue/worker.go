package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// WorkerConfig configures a Worker. Zero fields take their defaults.
type WorkerConfig struct {
	// Job is the Job to work on. Required.
	Job string
	// ID names this worker in Redis; unique per process. Default
	// host-pid-random.
	ID string
	// Concurrency is how many items (or batches) run at once. Default 1.
	Concurrency int
	// BatchSize caps the items of one lease below the Job's batch size.
	// Leases adapt below the cap: many small items go in big batches, slow
	// items one per free executor. Default 0: the Job's.
	BatchSize int
	// Heartbeat is how often leases are extended. Default: a third of the
	// Job's lease; at most half of it.
	Heartbeat time.Duration
	// Grace is how long running items may finish after ctx ends. Default 10s.
	Grace time.Duration
	// Wait is how long to wait for Redis and the Job to exist. Default 5m.
	Wait time.Duration
	// Handler runs one item at a time; set it or BatchHandler.
	Handler Handler
	// BatchHandler runs a whole leased batch; set it or Handler.
	BatchHandler BatchHandler
	// Results keeps each item's exit status and output (see SetOutput) in
	// the Job's results stream, capped at this many entries. Default 0: off.
	Results int
	// AckReplicas, when above 0, records outcomes only once that many
	// Redis replicas have them too (WAIT), so a failover to a replica does
	// not lose acks (their items would run again). It costs a replication
	// round trip per settle. Default 0.
	AckReplicas int
	// AckTimeout bounds that wait; an ack the replicas do not confirm in
	// time is logged (it stands on the primary). Default 1s.
	AckTimeout time.Duration
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
	c.AckTimeout = cmp.Or(c.AckTimeout, time.Second)
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
		return errors.New("worker: no Job given")
	case c.Concurrency < 1:
		return fmt.Errorf("worker: concurrency (%d) must be at least 1", c.Concurrency)
	case c.BatchSize < 0 || c.BatchSize > jobstate.MaxBatchSize:
		return fmt.Errorf("worker: batch size (%d) must be between 0 (the Job's) and %d", c.BatchSize, jobstate.MaxBatchSize)
	case c.Heartbeat < 0:
		return fmt.Errorf("worker: heartbeat (%s) must not be negative", c.Heartbeat)
	case c.Grace < 0:
		return fmt.Errorf("worker: grace (%s) must not be negative", c.Grace)
	case c.Results < 0:
		return fmt.Errorf("worker: results (%d) must not be negative", c.Results)
	case c.AckReplicas < 0:
		return fmt.Errorf("worker: ack replicas (%d) must not be negative", c.AckReplicas)
	case (c.Handler == nil) == (c.BatchHandler == nil):
		return errors.New("worker: set exactly one of Handler and BatchHandler")
	}
	return jobstate.ValidateName(c.Job)
}

// CheckHeartbeat reports whether heartbeat suits a Job's lease: workers
// heartbeat at least twice per lease, so that a Redis stall is told from a
// dead worker.
func CheckHeartbeat(heartbeat, lease time.Duration) error {
	if heartbeat > lease/2 {
		return fmt.Errorf("heartbeat (%s) must be at most half the Job's lease (%s)", heartbeat, lease)
	}
	return nil
}

// Worker leases batches of a Job's items, runs them, acks them, heartbeats,
// and ends when the Job is drained. Create it with NewWorker; Run it once.
type Worker struct {
	c   *Client
	s   *store.Store
	cfg WorkerConfig
	log *slog.Logger
	m   *Metrics

	reg       store.Registration
	info      *JobInfo
	spec      jobstate.Spec
	heartbeat time.Duration
	maxBatch  int
	rec       *controller.Reconciler

	mu     sync.Mutex
	held   map[string]*batch // by token
	queue  []*batch          // leases with unclaimed items, in lease order
	queued int               // unclaimed items in queue
	closed bool              // no more claims: executors end
	claim  *sync.Cond        // signalled when queue gains items or closes

	busy      atomic.Int32  // executors running an item
	room      chan struct{} // the leaser may want more
	ready     chan *batch   // batches whose every item finished
	settleGap time.Duration // see settleGap (tests change it)
	reconcile chan struct{} // the Job may have to end now (an item died, a FailJob rule)

	itemCtx  context.Context // the parent of every item's context
	stopping atomic.Bool     // no new item starts; unclaimed ones go back
	end      atomic.Int32
	sizer    sizer
}

// NewWorker checks cfg and returns a Worker for c. It does not contact
// Redis.
func NewWorker(c *Client, cfg WorkerConfig) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{c: c, cfg: cfg, log: cfg.Logger.With("job", cfg.Job, "worker", cfg.ID), m: cfg.Metrics,
		held: map[string]*batch{}, room: make(chan struct{}, 1), reconcile: make(chan struct{}, 1),
		ready: make(chan *batch, 64), settleGap: settleGap}
	w.claim = sync.NewCond(&w.mu)
	return w, nil
}

// ID returns the worker's id in Redis.
func (w *Worker) ID() string { return w.cfg.ID }

// endReason is why the worker's lease loop ended; the first one set wins.
type endReason int32

const (
	endNone endReason = iota
	endDrained
	endStopped
	endFailed
	endVanished
	endReplaced
	endStateLost
	endEviction
)

func (w *Worker) setEnd(r endReason) { w.end.CompareAndSwap(int32(endNone), int32(r)) }
func (w *Worker) ended() endReason   { return endReason(w.end.Load()) }

// Run works until the Job is over for this worker and reports how:
//   - nil: the Job succeeded (drained, or its success policy is met): exit 0;
//   - ErrJobFailed: the Job failed (its reason is in the message);
//   - ErrJobVanished, ErrReplaced, ErrStateLost: the Job is gone, was
//     replaced by a new one of the same name, or its state was lost;
//   - ErrStopped: ctx ended first; running items finished within the grace
//     period (or were stopped), and the rest was handed back.
//
// It first waits up to cfg.Wait for Redis and the Job. On a sharded Job
// it works on every shard (see runGroup), and returns nil only once every
// shard succeeded.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.register(ctx); err != nil {
		var gf *groupFound
		switch {
		case errors.Is(err, errDrainedAtStart):
			return w.lateEnd(ctx)
		case errors.As(err, &gf):
			return w.runGroup(ctx, gf.g)
		}
		return err
	}
	w.m.start(w.cfg.Job)

	// runCtx outlives ctx: heartbeats and acks go on during the grace period.
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	itemCtx, killItems := context.WithCancel(context.WithValue(context.Background(), jobInfoKey{}, w.info))
	defer killItems()
	w.itemCtx = itemCtx
	leaseCtx, stopLeasing := context.WithCancel(ctx)
	defer stopLeasing()

	wa := w.s.NewWaiter(w.cfg.Job)
	var bg sync.WaitGroup
	subscribed := make(chan struct{})
	hb := &heartbeater{w: w, wa: wa, stopLeasing: stopLeasing, killItems: killItems}
	bg.Add(2)
	go func() { defer bg.Done(); wa.Run(runCtx, subscribed) }()
	go func() { defer bg.Done(); _ = hb.Run(runCtx) }()
	select {
	case <-subscribed:
	case <-ctx.Done():
	}

	var execs sync.WaitGroup
	for range w.cfg.Concurrency {
		execs.Add(1)
		go func() { defer execs.Done(); w.execute(itemCtx) }()
	}
	ak := newAcker(w)
	acked := make(chan struct{})
	go func() { defer close(acked); _ = ak.Run(runCtx) }()

	ls := &leaser{w: w, wa: wa}
	_ = ls.Run(leaseCtx)
	if ctx.Err() != nil {
		w.setEnd(endStopped)
	}
	end := w.ended()
	if end != endDrained {
		w.stopping.Store(true)
		w.handBack()
	}
	w.closeQueue()
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
	case endDrained:
	default:
		killItems()
	}
	<-execsDone
	ak.close()
	<-acked

	// Heartbeats stop before the end is recorded: one sent after it would
	// register the worker again, alive until its heartbeat expired.
	cancelRun()
	bg.Wait()
	return w.finish(ctx, end)
}

// lateEnd is Run's answer for a worker that joined a Job already drained:
// it touched nothing, and exits as the Job ends (0, or 1 if it fails: a
// drained Job with dead items, say).
func (w *Worker) lateEnd(ctx context.Context) error {
	rec := &controller.Reconciler{S: w.s, Log: w.log}
	var snap store.Snapshot
	err := w.whileUnreachable(ctx, "read the job's outcome", func(ctx context.Context) (err error) {
		snap, err = rec.Reconcile(ctx, w.cfg.Job)
		return err
	})
	if err != nil {
		return fmt.Errorf("job %q: read its outcome: %w", w.cfg.Job, err)
	}
	if ok, known := snap.Observed.Stored.Outcome(); known && !ok {
		reason := snap.Status.Failure()
		w.log.Warn("job failed before this worker joined; exiting non-zero", "reason", reason)
		return fmt.Errorf("job %q: %w: %s", w.cfg.Job, ErrJobFailed, reason)
	}
	w.log.Info("job already drained; exiting")
	return nil
}

// WaitError is Run's error when Redis or the Job did not appear within
// WorkerConfig.Wait; Err says which (ErrUnavailable, ErrNoJob).
type WaitError struct {
	Wait time.Duration
	Job  string
	Err  error
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("waited %s for job %q: %v", e.Wait, e.Job, e.Err)
}
func (e *WaitError) Unwrap() error { return e.Err }

// errDrainedAtStart: the Job was drained before this worker joined; it exits
// 0 at once without touching an item.
var errDrainedAtStart = errors.New("job drained before the worker started")

// register waits for Redis and the Job, then binds to the Job's current
// incarnation.
func (w *Worker) register(ctx context.Context) error {
	host, _ := os.Hostname()
	info, err := json.Marshal(WorkerInfo{ID: w.cfg.ID, Host: host, PID: os.Getpid(), Started: time.Now().UTC(), Version: w.cfg.Version})
	if err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	deadline := time.Now().Add(w.cfg.Wait)
	backoff := 100 * time.Millisecond
	var logged time.Time
	for {
		var s *store.Store
		s, err = w.c.store(ctx)
		if err == nil {
			w.s = s
			w.reg, err = s.Register(ctx, w.cfg.Job, "", w.cfg.ID, info)
			if err == nil {
				return w.bind(ctx)
			}
			if errors.Is(err, ErrNoJob) {
				if g, gerr := s.Group(ctx, w.cfg.Job); gerr == nil {
					return &groupFound{g: g}
				}
			}
		}
		switch {
		case errors.Is(err, store.ErrDrained):
			return errDrainedAtStart
		case errors.Is(err, store.ErrJobFailed):
			return fmt.Errorf("job %q: %w", w.cfg.Job, ErrJobFailed)
		case errors.Is(err, ErrAuth), !errors.Is(err, ErrNoJob) && !errors.Is(err, ErrUnavailable):
			// Wrong credentials, a bad URL or an evicting Redis do not pass
			// by waiting; a Redis that is down or a Job not created yet may.
			return fmt.Errorf("register with job %q: %w", w.cfg.Job, err)
		case ctx.Err() != nil:
			return ErrStopped
		case time.Now().After(deadline):
			return &WaitError{Wait: w.cfg.Wait, Job: w.cfg.Job, Err: err}
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

// bind takes the settings of the incarnation the worker registered with.
func (w *Worker) bind(ctx context.Context) error {
	w.spec = w.reg.Spec
	lease := w.spec.Lease.D()
	w.heartbeat = cmp.Or(w.cfg.Heartbeat, lease/3)
	if err := CheckHeartbeat(w.heartbeat, lease); err != nil {
		w.recordEnd(ctx, store.OutcomeStopped)
		return fmt.Errorf("worker: %w", err)
	}
	w.maxBatch = w.spec.BatchSize
	if w.cfg.BatchSize > 0 {
		w.maxBatch = min(w.maxBatch, w.cfg.BatchSize)
	}
	w.info = &JobInfo{Name: w.cfg.Job, UID: w.reg.UID, WorkerID: w.cfg.ID, Spec: w.spec}
	w.rec = &controller.Reconciler{S: w.s, Log: w.log}
	w.sizer.init(w.cfg.Concurrency, w.maxBatch, w.cfg.BatchHandler != nil)
	w.log = w.log.With("uid", w.reg.UID)
	return nil
}

// finish records how the worker ended, lets the Job's lifecycle policy
// mark the Job if this was its last worker, and returns Run's error.
func (w *Worker) finish(ctx context.Context, end endReason) error {
	switch end {
	case endVanished:
		w.log.Error("job vanished while it ran (deleted, flushed, expired, or lost in a Redis restart); stopping")
		return fmt.Errorf("job %q: %w: it was deleted, flushed, expired or lost in a Redis restart while this worker ran", w.cfg.Job, ErrJobVanished)
	case endReplaced:
		return w.replaced()
	case endEviction:
		w.recordEnd(ctx, store.OutcomeStopped)
		return fmt.Errorf("job %q: %w; set maxmemory-policy noeviction", w.cfg.Job, ErrEviction)
	case endStopped:
		w.recordEnd(ctx, store.OutcomeStopped)
		return ErrStopped
	}
	// The Job is over for this worker: the one policy decides how, from
	// what Redis holds. The worker is still registered, so the Job moves
	// to Succeeding or Failing; the last worker's second pass makes it
	// Complete or Failed.
	var snap store.Snapshot
	err := w.whileUnreachable(ctx, "read the job's outcome", func(ctx context.Context) (err error) {
		snap, err = w.rec.Reconcile(ctx, w.cfg.Job)
		return err
	})
	switch {
	case err == nil && snap.Status.UID != w.reg.UID,
		errors.Is(err, ErrNoJob):
		// The incarnation this worker ran for ended and its name was
		// deleted or taken by a new Job meanwhile: its outcome is not
		// known here, and the new Job's is not this worker's.
		w.log.Error("job ended and was deleted or replaced before its outcome could be read", "now", snap.Status.UID)
		return fmt.Errorf("job %q: %w before this worker could read how it ended", w.cfg.Job, ErrReplaced)
	case err != nil:
		return fmt.Errorf("job %q: read its outcome: %w", w.cfg.Job, err)
	}
	phase := snap.Observed.Stored
	ok, _ := phase.Outcome()
	// A worker that exits non-zero because its Job failed is stopped, not
	// failed: the Job's failure is counted once, in its condition, not
	// again against --backoff-limit for every worker it ended.
	outcome := store.OutcomeStopped
	if ok {
		outcome = store.OutcomeSucceeded
	}
	w.recordEnd(ctx, outcome)
	if _, err := w.rec.Reconcile(ctx, w.cfg.Job); err == nil {
		w.log.Debug("job reconciled at the worker's end")
	}
	if end == endStateLost || phase.Failed() || !ok {
		reason := snap.Status.Failure()
		w.log.Warn("job failed; exiting non-zero", "reason", reason)
		return fmt.Errorf("job %q: %w: %s", w.cfg.Job, ErrJobFailed, reason)
	}
	w.log.Info("job succeeded; exiting", "phase", phase)
	return nil
}

func (w *Worker) replaced() error {
	w.log.Error("job was replaced by a new job of the same name; stopping")
	return fmt.Errorf("job %q: %w; this worker's items were stopped and its results dropped", w.cfg.Job, ErrReplaced)
}

// endBudget bounds how long a worker that is done keeps trying to reach
// Redis to read and record how its Job ended.
const endBudget = 2 * time.Minute

// whileUnreachable calls f until it returns anything but ErrUnavailable,
// with a backoff, for at most endBudget and until ctx (the worker's run:
// its stop signal) is done. Each call gets 10 seconds. It is for the
// worker's last calls, after its items: a Redis restarting at that moment
// must not turn a Job that succeeded into a failed worker.
func (w *Worker) whileUnreachable(ctx context.Context, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(endBudget)
	backoff := 100 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := f(cctx)
		cancel()
		if !errors.Is(err, ErrUnavailable) || time.Now().Add(backoff).After(deadline) {
			return err
		}
		w.m.redisError(w.cfg.Job)
		w.log.Warn("redis unreachable; retrying", "to", what, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// recordEnd records the worker's end, retrying while Redis is unreachable:
// a worker whose end is not recorded is taken for lost, a failure.
func (w *Worker) recordEnd(ctx context.Context, outcome string) {
	err := w.whileUnreachable(ctx, "record the worker's end", func(ctx context.Context) error {
		_, err := w.s.Finish(ctx, w.cfg.Job, w.reg.UID, w.cfg.ID, w.reg.Session, outcome)
		return err
	})
	if err != nil && !errors.Is(err, ErrNoJob) && !errors.Is(err, ErrReplaced) {
		w.log.Warn("could not record the worker's end", "err", err)
	}
}

// jobError maps an error of a worker-side call to how the worker ends, or
// endNone when the call may be retried.
func jobError(err error) endReason {
	switch {
	case errors.Is(err, store.ErrDrained):
		return endDrained
	case errors.Is(err, store.ErrJobFailed):
		return endFailed
	case errors.Is(err, ErrReplaced):
		return endReplaced
	case errors.Is(err, ErrNoJob):
		return endVanished
	case errors.Is(err, ErrStateLost):
		return endStateLost
	case errors.Is(err, ErrEviction):
		return endEviction
	}
	return endNone
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, b *batch, lo, hi int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())
		}
	}()
	if w.cfg.BatchHandler != nil {
		return w.cfg.BatchHandler.HandleBatch(ctx, b.items(lo, hi))
	}
	return w.cfg.Handler.Handle(ctx, b.item(lo))
}
