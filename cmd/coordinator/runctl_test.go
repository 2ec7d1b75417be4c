package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// behaviour is what one launched worker does.
type behaviour int

const (
	// crash ends at once with a non-zero exit, recording nothing in Redis
	// (kill -9 before it registered).
	crash behaviour = iota
	// work runs a real queue.Worker with the test's handler until the Job
	// is over for it or it is stopped.
	work
	// recordStopped registers, records its own end as stopped (as a worker
	// stopped by a signal does) and exits non-zero.
	recordStopped
	// slowStart is a worker still starting up (before it registered) when
	// it is stopped: it exits non-zero, recording nothing.
	slowStart
)

// launch is one Launch call, as the fake saw it.
type launch struct {
	id   string
	at   time.Time
	live int // workers launched and not yet ended, this one included
}

// fakeLauncher starts in-process workers for runController: the test
// scripts each one's behaviour by its launch number. Every worker's
// goroutine is owned by the launcher and waited for by the test.
type fakeLauncher struct {
	t       *testing.T
	job     string
	c       *queue.Client
	s       *store.Store
	handler queue.Handler
	behave  func(n int) behaviour
	grace   time.Duration

	done chan struct{} // closed when the test is over: pending exits are dropped
	wg   sync.WaitGroup

	mu            sync.Mutex
	launches      []launch
	live          int
	exitedAt      map[string]time.Time // when each worker's process ended
	stops         map[string]int       // Stop calls per worker
	succeeded     bool                 // a worker has exited 0
	afterSuccess  []string             // launches once a worker had exited 0
	launchedEvent chan string          // every launch, for tests that wait on them
}

// maxLaunches bounds a run that would launch workers without end.
const maxLaunches = 50

func (l *fakeLauncher) Launch(id string, exits chan<- workerExit) (worker, error) {
	l.mu.Lock()
	n := len(l.launches) + 1
	if n > maxLaunches {
		l.mu.Unlock()
		return nil, fmt.Errorf("launch %s: %d workers launched already", id, maxLaunches)
	}
	l.live++
	l.launches = append(l.launches, launch{id: id, at: time.Now(), live: l.live})
	if l.succeeded {
		l.afterSuccess = append(l.afterSuccess, id)
	}
	l.mu.Unlock()
	w := &fakeWorker{l: l, id: id, stop: make(chan struct{})}
	l.wg.Go(func() {
		err := w.run(l.behave(n))
		l.mu.Lock()
		l.live--
		l.exitedAt[id] = time.Now()
		if err == nil {
			l.succeeded = true
		}
		l.mu.Unlock()
		select {
		case exits <- workerExit{id: id, err: err}:
		case <-l.done:
		}
	})
	select {
	case l.launchedEvent <- id:
	default:
	}
	return w, nil
}

// launched returns the ids launched so far.
func (l *fakeLauncher) launched() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, x := range l.launches {
		ids = append(ids, x.id)
	}
	return ids
}

// seen is a copy of what the launcher saw.
type seen struct {
	launches     []launch
	exitedAt     map[string]time.Time
	stops        map[string]int
	afterSuccess []string
}

func (l *fakeLauncher) seen() seen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return seen{launches: slices.Clone(l.launches), exitedAt: maps.Clone(l.exitedAt), stops: maps.Clone(l.stops),
		afterSuccess: slices.Clone(l.afterSuccess)}
}

// afterLaunches calls fn on a goroutine of the launcher's once n workers
// were launched (never, if the test ends first).
func (l *fakeLauncher) afterLaunches(n int, fn func()) {
	l.wg.Go(func() {
		for range n {
			select {
			case <-l.launchedEvent:
			case <-l.done:
				return
			}
		}
		fn()
	})
}

type fakeWorker struct {
	l        *fakeLauncher
	id       string
	stop     chan struct{}
	stopOnce sync.Once
}

func (w *fakeWorker) Stop() {
	w.l.mu.Lock()
	w.l.stops[w.id]++
	w.l.mu.Unlock()
	w.stopOnce.Do(func() { close(w.stop) })
}

// run is the worker's life; its error is its exit (nil for status 0).
func (w *fakeWorker) run(b behaviour) error {
	l := w.l
	switch b {
	case crash:
		return errors.New("signal: killed")
	case recordStopped:
		ctx := context.Background()
		reg, err := l.s.Register(ctx, l.job, "", w.id, []byte(`{"id":"`+w.id+`"}`))
		if err != nil {
			return fmt.Errorf("register: %w", err)
		}
		if _, err := l.s.Finish(ctx, l.job, reg.UID, w.id, reg.Session, store.OutcomeStopped); err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		return errors.New("exit status 1")
	case slowStart:
		<-w.stop
		return errors.New("exit status 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	qw, err := queue.NewWorker(l.c, queue.WorkerConfig{Job: l.job, ID: w.id, Handler: l.handler, Grace: l.grace,
		Wait: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := qw.Run(ctx); err != nil {
		return fmt.Errorf("exit status 1: %w", err)
	}
	return nil
}

// ctlWorld is one runController on its own miniredis.
type ctlWorld struct {
	t    *testing.T
	s    *store.Store
	c    *queue.Client
	job  string
	uid  string
	spec jobstate.Spec
	out  *testkit.Buffer // run's messages (above its progress bar)
	l    *fakeLauncher
	ctl  *runController
}

// setupCtl creates Job job with spec and items on a new miniredis and a
// runController on it whose workers behave as behave says.
func setupCtl(t *testing.T, spec jobstate.Spec, items []string, handler queue.Handler, behave func(n int) behaviour) *ctlWorld {
	t.Helper()
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr() + "/0"
	s, err := store.Open(t.Context(), store.DialOptions{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	c, err := queue.Open(t.Context(), queue.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	const job = "ctl"
	spec = spec.WithDefaults()
	uid, err := s.Create(t.Context(), job, spec)
	require.NoError(t, err)
	if !spec.Counted() {
		payloads := make([][]byte, len(items))
		for i, it := range items {
			payloads[i] = []byte(it)
		}
		_, err := c.Push(t.Context(), job, payloads, queue.PushOptions{})
		require.NoError(t, err)
		_, err = c.Seal(t.Context(), job)
		require.NoError(t, err)
	}
	if handler == nil {
		handler = queue.HandlerFunc(func(context.Context, queue.Item) error { return nil })
	}
	l := &fakeLauncher{t: t, job: job, c: c, s: s, handler: handler, behave: behave, grace: 100 * time.Millisecond,
		done: make(chan struct{}), exitedAt: map[string]time.Time{}, stops: map[string]int{},
		launchedEvent: make(chan string, 100)}
	t.Cleanup(func() {
		close(l.done)
		l.wg.Wait()
	})
	out := &testkit.Buffer{}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctl := &runController{c: s, r: &controller.Reconciler{S: s, Log: log}, job: job, uid: uid, spec: spec,
		launch: l, bar: progress.New(out, -1, job), grace: l.grace, log: log} // tick: run's default
	return &ctlWorld{t: t, s: s, c: c, job: job, uid: uid, spec: spec, out: out, l: l, ctl: ctl}
}

// run runs the controller to its end (at most a minute) and returns how it
// ended.
func (w *ctlWorld) run(ctx context.Context) runOutcome {
	w.t.Helper()
	type result struct {
		o   runOutcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := w.ctl.run(ctx)
		done <- result{o, err}
	}()
	select {
	case r := <-done:
		require.NoError(w.t, r.err)
		return r.o
	case <-time.After(time.Minute):
		w.t.Fatalf("run did not end within a minute; launched %v; output:\n%s", w.l.launched(), w.out.String())
	}
	return runOutcome{}
}

// status reads the Job's status from Redis.
func (w *ctlWorld) status() jobstate.Status {
	w.t.Helper()
	s, err := w.s.Status(w.t.Context(), w.job)
	require.NoError(w.t, err)
	return s
}

// ctrlCOnceAnItemRuns returns a context that ends (as run's does on
// Ctrl-C) once an item runs under g and every worker launched by then has
// registered in Redis (so each records its own end).
func (w *ctlWorld) ctrlCOnceAnItemRuns(g *gate) context.Context {
	ctx, cancel := context.WithCancel(w.t.Context())
	w.t.Cleanup(cancel)
	w.l.wg.Go(func() {
		select {
		case <-g.started:
		case <-ctx.Done():
			return
		}
		for {
			s, err := w.s.Status(ctx, w.job)
			if err == nil && s.Active == int64(s.Spec.Parallelism) {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return ctx
}

func always(b behaviour) func(int) behaviour { return func(int) behaviour { return b } }

// gate is a handler that holds every item until open is closed, and says
// when one has started.
type gate struct {
	open    chan struct{}
	started chan struct{}
}

func newGate() *gate { return &gate{open: make(chan struct{}), started: make(chan struct{}, 100)} }

func (g *gate) Handle(ctx context.Context, _ queue.Item) error {
	g.started <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRunController(t *testing.T) {
	t.Parallel()

	t.Run("StartsParallelismWorkersAndNeverMore", func(t *testing.T) {
		t.Parallel()
		g := newGate()
		w := setupCtl(t, jobstate.Spec{Parallelism: 3}, []string{"a", "b", "c", "d", "e", "f"}, g, always(work))
		// Three workers start before any item may finish.
		w.l.afterLaunches(3, func() { close(g.open) })
		o := w.run(t.Context())
		require.False(t, o.interrupted)
		require.Equal(t, jobstate.PhaseComplete, o.status.Phase, "run ends with the Job's final phase:\n%s", w.out)
		require.EqualValues(t, 6, o.status.Items.Succeeded)
		launches := w.l.seen().launches
		require.GreaterOrEqual(t, len(launches), 3)
		for i, x := range launches[:3] {
			require.Equal(t, fmt.Sprintf("ctl-w%d", i+1), x.id)
			require.Equal(t, i+1, x.live, "the first three start together, none has ended yet")
		}
		for _, x := range launches {
			require.LessOrEqual(t, x.live, 3, "never more than --parallelism workers at once: %+v", launches)
		}
		final := w.status()
		require.Equal(t, final.Phase, o.status.Phase, "run's final status is Redis's")
		require.Equal(t, final.Items, o.status.Items)
		require.Equal(t, final.Conditions, o.status.Conditions)
	})

	t.Run("ReplacesAFailedWorkerAfterABackoff", func(t *testing.T) {
		t.Parallel()
		// The first two crash; the third works until Ctrl-C.
		g := newGate()
		w := setupCtl(t, jobstate.Spec{Parallelism: 1}, []string{"a", "b"}, g, func(n int) behaviour {
			if n <= 2 {
				return crash
			}
			return work
		})
		ctx := w.ctrlCOnceAnItemRuns(g)
		o := w.run(ctx)
		l := w.l.seen()
		require.Len(t, l.launches, 3, "%s", w.out)
		// Replacements wait 100ms, then 200ms, after the crash (a lower
		// bound: a loaded machine only makes them later).
		for i, delay := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} {
			crashed := l.exitedAt[l.launches[i].id]
			waited := l.launches[i+1].at.Sub(crashed)
			require.GreaterOrEqual(t, waited, delay, "replacement %d started %s after the crash", i+1, waited)
		}
		out := w.out.String()
		require.Contains(t, out, "worker ctl-w1 failed (signal: killed); 1 worker failure of backoff limit 6; replacing it in 100ms")
		require.Contains(t, out, "worker ctl-w2 failed (signal: killed); 2 worker failures of backoff limit 6; replacing it in 200ms")
		require.EqualValues(t, 2, o.status.Failed, "both crashes are recorded in Redis")
		require.EqualValues(t, 2, w.status().Failed)
	})

	t.Run("CountsFailuresFromRedis", func(t *testing.T) {
		t.Parallel()
		w := setupCtl(t, jobstate.Spec{Parallelism: 1, BackoffLimit: jobstate.Ptr(2)}, []string{"a"}, nil, always(crash))
		// Two workers that run never started failed already.
		for _, id := range []string{"elsewhere-1", "elsewhere-2"} {
			reg, err := w.s.Register(t.Context(), w.job, "", id, []byte(`{"id":"`+id+`"}`))
			require.NoError(t, err)
			recorded, err := w.s.Finish(t.Context(), w.job, reg.UID, id, reg.Session, store.OutcomeFailed)
			require.NoError(t, err)
			require.True(t, recorded)
		}
		require.EqualValues(t, 2, w.status().Failed)
		o := w.run(t.Context())
		require.Equal(t, []string{"ctl-w1"}, w.l.launched(),
			"its one crash is the Job's third failure, past --backoff-limit 2: no replacement (a count of run's own would allow two)")
		require.Equal(t, jobstate.PhaseFailed, o.status.Phase, "%s", w.out)
		require.EqualValues(t, 3, o.status.Failed)
		require.Equal(t, jobstate.ReasonBackoffLimitExceeded, conditionOf(t, o.status, jobstate.ConditionFailed).Reason)
	})

	t.Run("AWorkerThatRecordedItsOwnEndIsNoFailure", func(t *testing.T) {
		t.Parallel()
		// The first records that it was stopped and exits 1 (a SIGTERM
		// from outside); run replaces it without counting a failure. The
		// second works until Ctrl-C.
		g := newGate()
		w := setupCtl(t, jobstate.Spec{Parallelism: 1, BackoffLimit: jobstate.Ptr(0)}, []string{"a"}, g, func(n int) behaviour {
			if n == 1 {
				return recordStopped
			}
			return work
		})
		o := w.run(w.ctrlCOnceAnItemRuns(g))
		require.Equal(t, []string{"ctl-w1", "ctl-w2"}, w.l.launched(), "backoff limit 0, and no failure: %s", w.out)
		require.Zero(t, o.status.Failed)
		require.NotContains(t, w.out.String(), "ctl-w1 failed")
	})

	t.Run("StopsStartingWorkersPastTheBackoffLimit", func(t *testing.T) {
		t.Parallel()
		w := setupCtl(t, jobstate.Spec{Parallelism: 1, BackoffLimit: jobstate.Ptr(1)}, []string{"a"}, nil, always(crash))
		o := w.run(t.Context())
		require.Equal(t, []string{"ctl-w1", "ctl-w2"}, w.l.launched(), "the second failure is past --backoff-limit 1: %s", w.out)
		require.Equal(t, jobstate.PhaseFailed, o.status.Phase)
		c := conditionOf(t, o.status, jobstate.ConditionFailed)
		require.Equal(t, jobstate.ReasonBackoffLimitExceeded, c.Reason)
		require.Contains(t, c.Message, "2 worker failures exceed the backoff limit of 1")
		require.EqualValues(t, 2, o.status.Failed)
		require.Zero(t, o.status.Active)
		require.Contains(t, w.out.String(), "worker ctl-w1 failed (signal: killed); 1 worker failure of backoff limit 1; replacing it in 100ms")

		t.Run("TheFailurePastTheLimitIsReported", func(t *testing.T) {

			require.Contains(t, w.out.String(), "worker ctl-w2 failed (signal: killed); 2 worker failures of backoff limit 1; the Job fails; no more workers start")
		})
	})

	t.Run("NoWorkerStartsOnceOneExitedZero", func(t *testing.T) {
		t.Parallel()
		g := newGate()
		w := setupCtl(t, jobstate.Spec{Parallelism: 2}, []string{"a", "b"}, g, always(work))
		// A tick long enough for the end of the Job to fall between two
		// of them, as it does for a real run with long items.
		w.ctl.tick = 2 * time.Second
		w.l.afterLaunches(2, func() { close(g.open) })
		o := w.run(t.Context())
		require.Equal(t, jobstate.PhaseComplete, o.status.Phase, "%s", w.out)
		require.EqualValues(t, 2, o.status.Items.Succeeded)

		require.Empty(t, w.l.seen().afterSuccess, "as Kubernetes: once a worker exited 0, no new one starts (launched %v)", w.l.launched())
		require.Len(t, w.l.launched(), 2)
		require.Zero(t, o.status.Failed)
	})

	t.Run("CtrlCStopsEveryWorker", func(t *testing.T) {
		t.Parallel()
		g := newGate() // never opened: items run until stopped
		w := setupCtl(t, jobstate.Spec{Parallelism: 2}, []string{"a", "b", "c", "d"}, g, always(work))
		o := w.run(w.ctrlCOnceAnItemRuns(g))
		require.True(t, o.interrupted)
		l := w.l.seen()
		require.Equal(t, []string{"ctl-w1", "ctl-w2"}, w.l.launched(), "no worker starts after Ctrl-C")
		require.Equal(t, map[string]int{"ctl-w1": 1, "ctl-w2": 1}, l.stops, "each worker was asked to stop, once")
		require.Len(t, l.exitedAt, 2, "run returned once both had exited")
		require.Contains(t, w.out.String(), "stopping 2 workers; running items get 100ms (--grace) to finish, the rest is handed back")
		s := o.status
		require.False(t, s.Phase.Finished(), "a stopped run leaves the Job unfinished: %s", s.Phase)
		require.Zero(t, s.Failed, "workers stopped on purpose are no failures")
		require.Zero(t, s.Active)
		require.Zero(t, s.Items.Succeeded)
		require.Zero(t, s.Items.Leased, "what they held was handed back")
		require.Zero(t, s.Items.FailedAttempts, "items stopped by the shutdown used no attempt")
		require.EqualValues(t, 4, s.Items.Pending+s.Items.Returned)
	})

	t.Run("AWorkerStoppedBeforeItRegisteredIsNoFailure", func(t *testing.T) {
		t.Parallel()
		// The second worker is still starting up when Ctrl-C comes.
		g := newGate()
		w := setupCtl(t, jobstate.Spec{Parallelism: 2}, []string{"a", "b"}, g, func(n int) behaviour {
			if n == 1 {
				return work
			}
			return slowStart
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		w.l.wg.Go(func() {
			<-g.started
			cancel()
		})
		o := w.run(ctx)
		require.True(t, o.interrupted)
		require.Equal(t, []string{"ctl-w1", "ctl-w2"}, w.l.launched())
		require.Zero(t, o.status.Items.Succeeded)

		require.Zero(t, o.status.Failed, "workers run stopped on purpose are no failures")
	})
}

// conditionOf returns s's condition of type ct, or fails the test.
func conditionOf(t *testing.T, s jobstate.Status, ct jobstate.ConditionType) jobstate.Condition {
	t.Helper()
	for _, c := range s.Conditions {
		if c.Type == ct {
			return c
		}
	}
	t.Fatalf("no %s condition in %v", ct, s.Conditions)
	return jobstate.Condition{}
}
