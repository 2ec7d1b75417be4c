package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/progress"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/workercmd"
	"github.com/workq/workq/pkg/jobstate"
)

// launcher starts worker processes for run; tests replace it.
type launcher interface {
	// Launch starts worker id; its exit (nil for status 0) arrives on exits.
	Launch(id string, exits chan<- workerExit) (worker, error)
}

// worker is a started worker process.
type worker interface {
	// Stop asks it to stop gracefully (SIGTERM): running items finish
	// within its grace period, the rest is handed back.
	Stop()
}

type workerExit struct {
	id  string
	err error
}

// runController is run's Job controller: it keeps --parallelism workers
// going, replaces failed ones, and ends when the Job does. Every count it
// decides on (worker successes and failures) is Redis's, read through the
// Job's status, and every phase change is jobstate's, applied by the
// Reconciler: it keeps no books of its own.
type runController struct {
	c      *store.Store
	r      *controller.Reconciler
	job    string
	uid    string
	spec   jobstate.Spec
	launch launcher
	out    io.Writer // item output and messages go above the bar
	bar    *progress.Bar
	grace  time.Duration
	log    *slog.Logger
	tick   time.Duration // how often the Job is reconciled; default 200ms

	seq int
}

// runOutcome is how run ended.
type runOutcome struct {
	status      jobstate.Status
	interrupted bool
}

func (r *runController) printf(format string, a ...any) {
	r.bar.Println(fmt.Sprintf(format, a...))
}

func (r *runController) run(ctx context.Context) (runOutcome, error) {
	exits := make(chan workerExit)
	active := map[string]worker{}
	stopping := false
	var nextStart time.Time
	every := r.tick
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, err := r.r.Step(context.WithoutCancel(ctx), r.job)
	if err != nil {
		return runOutcome{}, err
	}
	failures := 0 // consecutive, for the restart delay only
	stopAll := func() {
		for _, w := range active {
			w.Stop()
		}
	}
	for {
		// As Kubernetes for a Job: no new worker once one exited 0, while
		// the Job is suspended or ending, or past the backoff limit.
		canStart := !stopping && last.Succeeded == 0 && !last.Phase.Stopping() && !last.Suspended &&
			last.Failed <= int64(*r.spec.BackoffLimit) && !time.Now().Before(nextStart)
		for canStart && len(active) < r.spec.Parallelism {
			r.seq++
			id := fmt.Sprintf("%s-w%d", r.job, r.seq)
			w, err := r.launch.Launch(id, exits)
			if err != nil {
				stopAll()
				stopping = true
				r.log.Error("cannot start a worker", "err", err)
				break
			}
			active[id] = w
		}
		if (stopping || last.Phase.Finished()) && len(active) == 0 {
			break
		}
		if !stopping && len(active) == 0 && !canStart && (last.Succeeded > 0 || last.Failed > int64(*r.spec.BackoffLimit)) &&
			!last.Phase.Stopping() && !last.Suspended {
			// Every worker is gone and none may start: the Job's end
			// follows at the next reconcile.
			if last, err = r.r.Step(context.WithoutCancel(ctx), r.job); err == nil && last.Phase.Finished() {
				break
			}
		}
		select {
		case e := <-exits:
			delete(active, e.id)
			if e.err != nil && !stopping && !last.Phase.Stopping() {
				// A crash (kill -9) leaves no record of its own; a worker
				// that recorded its end already (the Job failed, say) keeps
				// that record: only the first one counts. A worker run
				// stopped itself is no failure.
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				recorded, ferr := r.c.Finish(fctx, r.job, r.uid, e.id, "", store.OutcomeFailed)
				cancel()
				if ferr != nil && !errors.Is(ferr, store.ErrNoJob) {
					r.log.Warn("could not record a worker failure", "err", ferr)
				}
				if recorded {
					failures++
					delay := min(100*time.Millisecond<<min(failures-1, 6), 5*time.Second)
					nextStart = time.Now().Add(delay)
					r.reportFailure(ctx, e, delay)
				}
			} else if e.err == nil {
				failures = 0
			}
			// Every decision is Redis's: read the Job again (a worker that
			// exited 0 means no new one starts).
			if s, err := r.r.Step(context.WithoutCancel(ctx), r.job); err == nil {
				last = s
			} else {
				r.log.Warn("reconcile failed", "err", err)
			}
		case <-tick.C:
			s, err := r.r.Step(context.WithoutCancel(ctx), r.job)
			if err != nil {
				r.log.Warn("reconcile failed", "err", err)
				continue
			}
			last = s
			r.show(s)
			if s.Phase.Stopping() {
				stopAll()
			}
		case <-ctx.Done():
			if !stopping {
				stopping = true
				r.printf("stopping %s; running items get %s (--grace) to finish, the rest is handed back",
					plural(len(active), "worker"), r.grace)
				stopAll()
			}
			ctx = context.WithoutCancel(ctx)
		}
	}
	// One last step records the end; the workers have all exited.
	s, err := r.settle(context.WithoutCancel(ctx), stopping)
	return runOutcome{status: s, interrupted: stopping}, err
}

// reportFailure says that a worker failed, how many failures the Job has
// against its backoff limit (Redis's count, read again), and what follows.
func (r *runController) reportFailure(ctx context.Context, e workerExit, delay time.Duration) {
	s, err := r.r.Step(context.WithoutCancel(ctx), r.job)
	if err != nil {
		r.log.Warn("reconcile failed", "err", err)
		return
	}
	next := fmt.Sprintf("replacing it in %s", delay)
	if s.Failed > int64(*r.spec.BackoffLimit) {
		next = "the Job fails; no more workers start"
	} else if s.Phase.Stopping() {
		return // the Job is ending for another reason, said elsewhere
	}
	r.printf("worker %s failed (%v); %s of backoff limit %d; %s", e.id, e.err,
		plural(s.Failed, "worker failure"), *r.spec.BackoffLimit, next)
}

// settle reconciles until the Job has its final phase (every worker is
// gone, so Complete or Failed follows at once), or returns the status as it
// is when run was stopped.
func (r *runController) settle(ctx context.Context, stopping bool) (jobstate.Status, error) {
	var s jobstate.Status
	var err error
	for range 50 {
		if s, err = r.r.Step(ctx, r.job); err != nil {
			return s, err
		}
		if s.Phase.Finished() || stopping {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

func (r *runController) show(s jobstate.Status) {
	r.bar.SetTotal(s.Items.Total)
	r.bar.Describe(fmt.Sprintf("%s %s", r.job, s.Phase), failures(s))
	r.bar.SetETA("ETA " + jobstate.FormatETA(jobstate.EstimateETA(s)))
	r.bar.Set(s.Items.Succeeded)
}

// processLauncher starts workers as processes of this very binary, with
// one shared Options value (workercmd.ConfigEnv), their output framed and
// written whole above the progress bar.
type processLauncher struct {
	self string
	argv []string
	opts workercmd.Options
	env  []string // WORKQ_REDIS_URL (with the password) and friends
	out  io.Writer
	err  io.Writer
	mu   *sync.Mutex
	seq  int
}

type procWorker struct{ cmd *exec.Cmd }

func (p procWorker) Stop() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }

func (l *processLauncher) Launch(id string, exits chan<- workerExit) (worker, error) {
	o := l.opts
	o.ID = id
	cfg, err := o.Environ()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(l.self, append([]string{"worker", "--"}, l.argv...)...)
	// Settings, the Redis URL and any password travel in the environment,
	// never on the command line that ps shows.
	cmd.Env = append(append(os.Environ(), l.env...), cfg)
	cmd.SysProcAttr = workerProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	l.seq++
	prefix := "worker " + strconv.Itoa(l.seq) + ": "
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); l.copyFrames(stdout) }()
	go func() { defer copies.Done(); l.copyLines(stderr, prefix) }()
	go func() {
		copies.Wait()
		exits <- workerExit{id: id, err: cmd.Wait()}
	}()
	return procWorker{cmd}, nil
}

// copyFrames writes each framed output of a worker whole.
func (l *processLauncher) copyFrames(rd io.Reader) {
	br := bufio.NewReaderSize(rd, 64*1024)
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		dst := l.out
		if hdr[0] == workercmd.FrameStderr {
			dst = l.err
		}
		l.mu.Lock()
		_, _ = dst.Write(buf)
		l.mu.Unlock()
	}
}

// copyLines writes a worker's own messages, prefixed with which worker.
func (l *processLauncher) copyLines(rd io.Reader, prefix string) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		_, _ = fmt.Fprintln(l.err, prefix+sc.Text())
		l.mu.Unlock()
	}
}
