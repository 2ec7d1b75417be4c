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
	"github.com/workq/workq/internal/workercmd"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// runController is run's Job controller: it keeps --parallelism worker
// processes going, replaces failed ones, and ends when the Job does.
type runController struct {
	c    *queue.Client
	r    *controller.Reconciler
	job  string
	spec jobstate.Spec
	self string
	argv []string
	url  string
	rf   runFlags
	d    deps
	log  *slog.Logger

	out  sync.Mutex // serialises whole item outputs with the progress bar
	bar  *progress.Bar
	seq  int
	fail int // worker failures seen here
}

type workerProc struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{} // closed when its output is copied
}

type workerExit struct {
	w   *workerProc
	err error
}

func (r *runController) start(exits chan<- workerExit) (*workerProc, error) {
	r.seq++
	id := fmt.Sprintf("%s-w%d", r.job, r.seq)
	cmd := exec.Command(r.self, r.workerArgs(id)...)
	// The URL (and any password in it) goes through the environment, not
	// the command line that ps shows.
	cmd.Env = append(os.Environ(), "WORKQ_REDIS_URL="+r.url)
	if r.d.redis.CA != "" {
		cmd.Env = append(cmd.Env, "WORKQ_REDIS_CA="+r.d.redis.CA)
	}
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
	w := &workerProc{id: id, cmd: cmd, done: make(chan struct{})}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); r.copyFrames(stdout) }()
	prefix := fmt.Sprintf("worker %d: ", r.seq) // not in the goroutine: the next start changes r.seq
	go func() { defer copies.Done(); r.copyLines(stderr, prefix) }()
	go func() {
		copies.Wait()
		err := cmd.Wait()
		close(w.done)
		exits <- workerExit{w: w, err: err}
	}()
	return w, nil
}

// copyFrames writes each framed output of a worker whole.
func (r *runController) copyFrames(rd io.Reader) {
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
		dst := r.d.stdout
		if hdr[0] == workercmd.FrameStderr {
			dst = r.d.stderr
		}
		r.out.Lock()
		r.bar.Clear()
		_, _ = dst.Write(buf)
		r.out.Unlock()
	}
}

func (r *runController) copyLines(rd io.Reader, prefix string) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		r.out.Lock()
		r.bar.Clear()
		fmt.Fprintln(r.d.stderr, prefix+sc.Text())
		r.out.Unlock()
	}
}

func (r *runController) run(ctx context.Context) error {
	begin := time.Now()
	r.bar = progress.New(r.d.stderr, -1, r.job)
	exits := make(chan workerExit)
	active := map[string]*workerProc{}
	succeeded, stopping := false, false
	var nextStart time.Time
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last jobstate.Status
	stopAll := func() {
		for _, w := range active {
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for {
		canStart := !succeeded && !stopping && !last.Phase.Stopping() && !last.Suspended && time.Now().After(nextStart) &&
			r.fail <= *r.spec.BackoffLimit
		for canStart && len(active) < r.spec.Parallelism {
			w, err := r.start(exits)
			if err != nil {
				stopAll()
				stopping = true
				r.log.Error("cannot start a worker", "err", err)
				break
			}
			active[w.id] = w
		}
		if (stopping || last.Phase.Finished()) && len(active) == 0 {
			break
		}
		select {
		case e := <-exits:
			delete(active, e.w.id)
			if e.err == nil {
				succeeded = true
				continue
			}
			if stopping || last.Phase.Stopping() {
				continue
			}
			// A crash (kill -9) leaves no record; one recorded here counts
			// once, whatever the worker recorded itself.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if _, err := r.c.Finish(fctx, r.job, e.w.id, queue.OutcomeFailed); err != nil {
				r.log.Warn("could not record a worker failure", "err", err)
			}
			cancel()
			r.fail++
			delay := min(100*time.Millisecond<<min(r.fail-1, 6), 5*time.Second)
			nextStart = time.Now().Add(delay)
			next := fmt.Sprintf("replacing it in %s", delay)
			if r.fail > *r.spec.BackoffLimit {
				next = "the Job fails; no more workers start"
			}
			r.out.Lock()
			r.bar.Clear()
			fmt.Fprintf(r.d.stderr, "worker %s failed (%v); %d worker failures of backoff limit %d; %s\n",
				e.w.id, e.err, r.fail, *r.spec.BackoffLimit, next)
			r.out.Unlock()
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
				r.out.Lock()
				r.bar.Clear()
				fmt.Fprintf(r.d.stderr, "\nstopping %d workers; running items get %s (--grace) to finish\n", len(active), r.rf.grace)
				r.out.Unlock()
				stopAll()
			}
			ctx = context.WithoutCancel(ctx)
		}
	}
	// One last step records the end; the workers have all exited.
	s, err := r.settle(context.WithoutCancel(ctx), stopping)
	r.bar.Finish()
	if err != nil {
		return err
	}
	wall := time.Since(begin)
	fmt.Fprintln(r.d.stderr, summaryLine(s, wall))
	r.showDead(context.WithoutCancel(ctx), s)
	switch {
	case stopping && !s.Phase.Finished():
		left := s.Items.Total - s.Items.Succeeded - s.Items.Dead
		return fmt.Errorf("%w: %d of %d items left undone (%d pending, %d retrying, %d leased); job %s was not finished",
			errInterrupted, left, s.Items.Total, s.Items.Pending, s.Items.Retrying, s.Items.Leased, r.job)
	case s.Phase == jobstate.PhaseFailed:
		return fmt.Errorf("job %s failed: %s", r.job, failureOf(s))
	}
	return nil
}

// settle reconciles until the Job has its final phase (all workers are
// gone, so Complete or Failed follows at once), or returns the status as
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
	if errors.Is(err, queue.ErrNoJob) {
		return s, err
	}
	return s, nil
}

func (r *runController) show(s jobstate.Status) {
	r.out.Lock()
	defer r.out.Unlock()
	r.bar.SetTotal(s.Items.Total)
	desc := fmt.Sprintf("%s %s", r.job, s.Phase)
	if n := s.Items.FailedAttempts; n > 0 {
		desc += fmt.Sprintf(" (%d failed attempts, %d dead)", n, s.Items.Dead)
	}
	r.bar.Describe(desc)
	r.bar.Set(s.Items.Succeeded)
}

// showDead lists the first dead items: with the embedded Redis they are
// gone once run ends, so `coordinator dead` could not show them later.
func (r *runController) showDead(ctx context.Context, s jobstate.Status) {
	if s.Items.Dead == 0 {
		return
	}
	dead, err := r.c.Dead(ctx, r.job, 10)
	if err != nil {
		return
	}
	fmt.Fprintf(r.d.stderr, "dead items (%d):\n", s.Items.Dead)
	t := newTable(r.d.stderr)
	t.row("  ID", "ATTEMPTS", "ITEM", "LAST ERROR")
	for _, it := range dead {
		t.row(fmt.Sprintf("  %d", it.ID), fmt.Sprint(it.Attempts), clip(strconv.Quote(it.Item), 40), clip(oneLine(it.LastError), 100))
	}
	t.flush()
	if s.Items.Dead > int64(len(dead)) {
		fmt.Fprintf(r.d.stderr, "  ... and %d more\n", s.Items.Dead-int64(len(dead)))
	}
}
