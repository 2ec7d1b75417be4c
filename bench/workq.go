package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// payloadBytes is the size of every bench item.
const payloadBytes = 16

// payload is item i: 16 bytes, never a number (Redis would store a number
// as an integer, which would flatter the memory figures).
func payload(i int) string {
	s := strconv.Itoa(i)
	b := make([]byte, payloadBytes)
	copy(b, "item-00000000000")
	copy(b[payloadBytes-len(s):], s)
	return string(b)
}

// workerConcurrency is each in-process queue.Worker's Concurrency: eight
// executor goroutines; a no-op handler needs no more.
const workerConcurrency = 8

// workerHeartbeat is the in-process workers' heartbeat period: shorter
// than the default (a third of the 30 s lease) so that heartbeats happen
// during a drain of a few seconds.
const workerHeartbeat = time.Second

// pushed is what a push phase measured.
type pushed struct {
	seconds      float64
	redisCPU     float64
	bytesPerItem float64 // Redis memory per item beyond its payload
}

// pushWorkq creates job with batch size batch and pushes items through
// queue.Client.NewPusher, measuring speed, Redis CPU and Redis memory. It
// seals the Job when seal is set. Memory per item is the growth over the
// last nine tenths of the push (a pusher of their own), so that what the
// first items bring once (the Job's first chunk records, the push script's
// first run) is not spread over the items of a small row.
func pushWorkq(ctx context.Context, e *redisEnv, c *queue.Client, job string, batch, items int, seal bool) (pushed, error) {
	if err := c.Create(ctx, job, jobstate.Spec{BatchSize: batch}); err != nil {
		return pushed{}, err
	}
	m, err := e.meter(ctx)
	if err != nil {
		return pushed{}, err
	}
	first := items / 10
	var mem0 int64
	var n int64
	buf := make([]byte, 0, payloadBytes)
	for _, part := range [][2]int{{0, first}, {first, items}} {
		if part[0] == first {
			if mem0, err = e.dataMemory(ctx); err != nil {
				return pushed{}, err
			}
		}
		p, err := c.NewPusher(ctx, job, queue.PushOptions{})
		if err != nil {
			return pushed{}, err
		}
		for i := part[0]; i < part[1]; i++ {
			buf = append(buf[:0], payload(i)...)
			if err := p.Add(buf); err != nil {
				break
			}
		}
		k, err := p.Close()
		if err != nil {
			return pushed{}, err
		}
		n += k
	}
	if n != int64(items) {
		return pushed{}, fmt.Errorf("pushed %d items, want %d", n, items)
	}
	d, cpu, err := m.stop(ctx)
	if err != nil {
		return pushed{}, err
	}
	mem1, err := e.dataMemory(ctx)
	if err != nil {
		return pushed{}, err
	}
	if seal {
		if _, err := c.Seal(ctx, job); err != nil {
			return pushed{}, err
		}
	}
	return pushed{seconds: d.Seconds(), redisCPU: cpu,
		bytesPerItem: float64(mem1-mem0)/float64(items-first) - payloadBytes}, nil
}

// leaseStats are the workers' lease calls, from their metrics.
type leaseStats struct {
	Calls     uint64  `json:"calls"`     // lease calls, answered with items or not
	Leases    uint64  `json:"leases"`    // calls that returned items
	MeanItems float64 `json:"meanItems"` // items per lease that returned items
	MeanRTTms float64 `json:"meanRTTms"` // round trip of a lease call
}

// leaseStatsOf reads the lease histograms of queue.NewMetrics.
func leaseStatsOf(reg *prometheus.Registry) leaseStats {
	var ls leaseStats
	fams, err := reg.Gather()
	if err != nil {
		return ls
	}
	for _, f := range fams {
		var n uint64
		var sum float64
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
		if n == 0 {
			continue
		}
		switch f.GetName() {
		case "workq_worker_lease_roundtrip_seconds":
			ls.Calls, ls.MeanRTTms = n, sum/float64(n)*1000
		case "workq_worker_lease_batch_items":
			ls.Leases, ls.MeanItems = n, sum/float64(n)
		}
	}
	return ls
}

// workqDrain runs in a child: req.Workers queue.Workers, each with its own
// Client and ID, drain the sealed Job with no-op handlers.
// The workers' lease figures go into resp.
func workqDrain(ctx context.Context, req childReq, resp *childResp) (time.Duration, int64, error) {
	clients := make([]*queue.Client, req.Workers)
	workers := make([]*queue.Worker, req.Workers)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	metrics := queue.NewMetrics(reg)
	for i := range workers {
		c, err := queue.Open(ctx, queue.Options{URL: req.URL})
		if err != nil {
			return 0, 0, err
		}
		defer c.Close()
		clients[i] = c
		w, err := queue.NewWorker(c, queue.WorkerConfig{
			Job:         req.Job,
			ID:          fmt.Sprintf("bench-%d-%d", os.Getpid(), i),
			Concurrency: req.Concurrency,
			Heartbeat:   workerHeartbeat,
			Handler:     queue.HandlerFunc(func(context.Context, queue.Item) error { return nil }),
			Logger:      log,
			Metrics:     metrics,
		})
		if err != nil {
			return 0, 0, err
		}
		workers[i] = w
	}
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Run(ctx) }()
	}
	wg.Wait()
	d := time.Since(start)
	ls := leaseStatsOf(reg)
	resp.Lease = &ls
	if err := errors.Join(errs...); err != nil {
		return d, 0, err
	}
	st, err := clients[0].Inspector().Status(ctx, req.Job)
	if err != nil {
		return d, 0, err
	}
	if st.Items.Succeeded != int64(req.Items) {
		return d, st.Items.Succeeded, fmt.Errorf("job %s: %d items succeeded, want %d", req.Job, st.Items.Succeeded, req.Items)
	}
	return d, st.Items.Succeeded, nil
}

// binaryDrain runs `worker --redis URL --job JOB --batch-exec -- true` in
// procs processes and waits for them all to exit. It returns the wall time,
// the largest peak RSS (VmHWM) of the processes and their CPU seconds,
// added up.
func binaryDrain(ctx context.Context, bin, url, job string, procs int, timeout time.Duration) (time.Duration, int64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmds := make([]*exec.Cmd, procs)
	logs := make([]*tailBuffer, procs)
	watches := make([]*hwmWatch, procs)
	start := time.Now()
	for i := range cmds {
		logs[i] = &tailBuffer{max: 4096}
		cmds[i] = exec.CommandContext(ctx, bin, "--redis", url, "--job", job, "--batch-exec", "--", "true")
		cmds[i].Stdout, cmds[i].Stderr = io.Discard, logs[i]
		if err := cmds[i].Start(); err != nil {
			for _, c := range cmds[:i] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return 0, 0, 0, fmt.Errorf("start %s: %w", bin, err)
		}
		watches[i] = watchHWM(cmds[i].Process.Pid)
	}
	var rss int64
	var cpu float64
	var errs []error
	for i, cmd := range cmds {
		err := cmd.Wait()
		rss = max(rss, watches[i].Stop())
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w: %s", i, err, logs[i].String()))
		}
	}
	return time.Since(start), rss, cpu, errors.Join(errs...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// latencyResult is the time from a push into an idle Job to the start of
// the item's handler.
type latencyResult struct {
	Pushes  int     `json:"pushes"`
	Workers int     `json:"workers"`
	P50ms   float64 `json:"p50ms"`
	P99ms   float64 `json:"p99ms"`
	MaxMs   float64 `json:"maxMs"`
}

// measureLatency starts workers on an empty, unsealed Job, then pushes
// one item at a time (waiting for each to start, then letting the workers
// go idle again) and records push-to-handler-start times.
func measureLatency(ctx context.Context, url string, pushes, workers int) (latencyResult, error) {
	c, err := queue.Open(ctx, queue.Options{URL: url})
	if err != nil {
		return latencyResult{}, err
	}
	defer c.Close()
	job := "bench-latency"
	if err := c.Create(ctx, job, jobstate.Spec{BatchSize: 100}); err != nil {
		return latencyResult{}, err
	}
	started := make(chan time.Time, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range workers {
		wc, err := queue.Open(ctx, queue.Options{URL: url})
		if err != nil {
			return latencyResult{}, err
		}
		defer wc.Close()
		w, err := queue.NewWorker(wc, queue.WorkerConfig{Job: job, ID: fmt.Sprintf("latency-%d", i), Concurrency: workerConcurrency,
			Logger: log, Handler: queue.HandlerFunc(func(context.Context, queue.Item) error {
				started <- time.Now()
				return nil
			})})
		if err != nil {
			return latencyResult{}, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Run(runCtx) }()
	}
	// Wait until every worker has registered and gone idle.
	if err := waitFor(ctx, 10*time.Second, func() (bool, error) {
		st, err := c.Inspector().Status(ctx, job)
		return err == nil && st.Active == int64(workers), err
	}); err != nil {
		return latencyResult{}, fmt.Errorf("workers did not register: %w", err)
	}
	time.Sleep(100 * time.Millisecond)
	lat := make([]float64, 0, pushes)
	for i := range pushes {
		t0 := time.Now()
		if _, err := c.Push(ctx, job, [][]byte{[]byte(payload(i))}, queue.PushOptions{}); err != nil {
			return latencyResult{}, err
		}
		select {
		case t := <-started:
			lat = append(lat, float64(t.Sub(t0).Microseconds())/1000)
		case <-time.After(10 * time.Second):
			return latencyResult{}, fmt.Errorf("item %d did not start within 10s", i)
		}
		// Let the ack land and the workers wait again before the next push.
		time.Sleep(15 * time.Millisecond)
	}
	if _, err := c.Seal(ctx, job); err != nil {
		return latencyResult{}, err
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return latencyResult{}, errors.New("latency workers did not exit after the seal")
	}
	if err := errors.Join(errs...); err != nil {
		return latencyResult{}, err
	}
	slices.Sort(lat)
	return latencyResult{Pushes: pushes, Workers: workers, P50ms: quantile(lat, 0.5), P99ms: quantile(lat, 0.99), MaxMs: lat[len(lat)-1]}, nil
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if last != nil {
		return last
	}
	return errors.New("timed out")
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// tempDir is where the bench keeps binaries, files and profiles.
func tempDir() (string, error) {
	return os.MkdirTemp("", "workq-bench-*")
}
