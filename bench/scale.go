package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// The scale section (issue 14): the control plane with many Jobs and one
// giant one, on the real binaries and a real redis-server. It
//   - drains an Indexed Job of completions + dead indexes with queue.Workers
//     in a child process, holding its last index running so that the Job
//     stays live (a Job serve must reconcile every sweep);
//   - creates the small Jobs (each with a few pending items, unsealed:
//     Running, swept every time);
//   - starts `coordinator serve`, measures its CPU per sweep with no HTTP
//     traffic, then times /metrics scrapes and /api/jobs reads;
//   - releases the last index (the Job ends Failed, having dead items),
//     then times `coordinator retry --reopen` and `coordinator delete` of
//     the giant Job;
//   - reads SLOWLOG throughout for the slowest workq command.

// slowlogThreshold is what SLOWLOG records in the scale section: every
// command of 1 ms or more.
const slowlogThreshold = 1000 // µs

// scaleResult is what the scale section measured.
type scaleResult struct {
	Jobs        int `json:"jobs"`
	Completions int `json:"completions"`
	Dead        int `json:"dead"`
	// DrainSeconds is the time the giant Job took to its last index.
	DrainSeconds  float64 `json:"drainSeconds"`
	CreateSeconds float64 `json:"createSeconds"` // creating and loading the small Jobs
	// Serve: CPU seconds per sweep over a window with no HTTP requests;
	// sweeps are counted by serve's workq_controller_sweeps_total.
	ServeIntervalMs    float64 `json:"serveIntervalMs"`
	ServeWindowSeconds float64 `json:"serveWindowSeconds"`
	ServeSweeps        int64   `json:"serveSweeps"`
	ServeCPUPerSweepMs float64 `json:"serveCPUPerSweepMs"`
	// RedisCPUPerSweepMs is Redis's CPU over the window less its CPU over
	// an equal window before serve started (the giant Job's idle workers'
	// heartbeats), per sweep.
	RedisCPUPerSweepMs float64 `json:"redisCPUPerSweepMs"`
	ServePeakRSSMiB    float64 `json:"servePeakRSSMiB"`
	// Read times: each request made more than a second after the one
	// before, so that serve's shared poller reads Redis for it.
	MetricsMs     stat    `json:"metricsScrapeMs"`
	MetricsBytes  int     `json:"metricsBytes"`
	APIJobsMs     stat    `json:"apiJobsMs"`
	APIJobsBytes  int     `json:"apiJobsBytes"`
	APIJobMs      stat    `json:"apiBigJobMs"` // /api/jobs/NAME of the giant Job
	APIJobBytes   int     `json:"apiBigJobBytes"`
	RetrySeconds  float64 `json:"retrySeconds"` // coordinator retry --reopen of the dead items
	DeleteSeconds float64 `json:"deleteSeconds"`
	// Slowest are the slowest workq commands SLOWLOG recorded, slowest
	// first; SlowCount how many took slowlogThreshold or more.
	Slowest []slowEntry `json:"slowest"`
	// SlowestWork is the slowest entry that is not an O(1) command.
	SlowestWork *slowEntry `json:"slowestWork,omitempty"`
	SlowCount   int        `json:"slowCount"`
	SlowOver5   int        `json:"slowOver5ms"`
	SlowKinds   []slowKind `json:"slowByCommand"`
	SlowLost    bool       `json:"slowlogOverflowed,omitempty"`
	// StallMicros is the slowest O(1) command in SLOWLOG (Stall): how long
	// the machine's other work kept Redis off a CPU at least once. Entries
	// up to that long may be such stalls rather than work.
	StallMicros int64  `json:"stallMicros,omitempty"`
	Stall       string `json:"stall,omitempty"`
}

// bigJob is the scale section's giant Job.
const bigJob = "scale-big"

func (b *bench) scale(ctx context.Context) {
	res, err := b.scaleRun(ctx)
	if err != nil {
		b.fail("scale section", err)
	}
	if res != nil {
		b.rep.Scale = res
	}
}

func (b *bench) scaleRun(ctx context.Context) (*scaleResult, error) {
	cfg := b.cfg
	res := &scaleResult{Jobs: cfg.scaleJobs, Completions: cfg.scaleCompletions, Dead: cfg.scaleDead}
	bin, err := b.build(ctx, "coordinator")
	if err != nil {
		return nil, err
	}
	lua, err := loadScriptKeys(b.root)
	if err != nil {
		return nil, err
	}
	if err := b.env.reset(ctx); err != nil {
		return nil, err
	}
	restore, err := b.env.slowlog(ctx, slowlogThreshold, 100_000)
	if err != nil {
		return nil, err
	}
	defer restore()
	var ph phases

	// The giant Job, drained to its last index.
	ph.enter("drain the giant Job")
	k := cfg.scaleCompletions + cfg.scaleDead
	if err := b.c.Create(ctx, bigJob, jobstate.Spec{Completions: &k, MaxAttempts: 1}); err != nil {
		return nil, err
	}
	b.progress("scale: draining an Indexed Job of %s indexes (%s to fail) with 4 queue.Workers", human(float64(k)), human(float64(cfg.scaleDead)))
	start := time.Now()
	ch, err := startChild(ctx, childReq{Kind: "scale", URL: b.env.url, Job: bigJob, Items: k, Dead: cfg.scaleDead, Hold: true,
		Workers: 4, Concurrency: workerConcurrency}, 2*childTimeout)
	if err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	var childErr error
	go func() {
		defer close(exited)
		_, childErr = ch.wait()
	}()
	defer func() {
		ch.release()
		<-exited
	}()
	if err := b.waitSettled(ctx, bigJob, int64(k-1), exited, 2*childTimeout); err != nil {
		if errors.Is(err, errChildExited) {
			<-exited
			return nil, fmt.Errorf("the scale drain child exited early: %w", childErr)
		}
		return nil, err
	}
	res.DrainSeconds = time.Since(start).Seconds()
	b.progress("scale: %s indexes settled in %.1f s (%s/s); the last one is held running", human(float64(k-1)), res.DrainSeconds, human(float64(k-1)/res.DrainSeconds))

	// The small Jobs.
	ph.enter("create the small Jobs")
	start = time.Now()
	if err := b.createJobs(ctx, cfg.scaleJobs); err != nil {
		return nil, err
	}
	res.CreateSeconds = time.Since(start).Seconds()
	b.progress("scale: %d Jobs created and loaded in %.1f s", cfg.scaleJobs, res.CreateSeconds)

	// Redis's CPU and script calls while only the held workers heartbeat.
	ph.enter("baseline (no serve)")
	base, err := b.redisWindow(ctx, nil)
	if err != nil {
		return nil, err
	}

	// serve.
	ph.enter("serve, no HTTP requests")
	const interval = 500 * time.Millisecond
	srv, err := startServe(ctx, bin, b.env.url, interval)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	time.Sleep(3 * interval) // the first sweeps see every Job for the first time
	if err := b.serveCPU(ctx, srv, res, interval, base); err != nil {
		return res, err
	}
	b.progress("scale: serve %.2f ms CPU per sweep (%d sweeps in %.0f s), Redis %.2f ms per sweep", res.ServeCPUPerSweepMs, res.ServeSweeps, res.ServeWindowSeconds, res.RedisCPUPerSweepMs)

	ph.enter("serve, HTTP reads")
	var mt, jt, bt []float64
	for range cfg.scaleSamples {
		for _, r := range []struct {
			path  string
			times *[]float64
			bytes *int
			want  string
		}{{"/metrics", &mt, &res.MetricsBytes, `workq_job_items{job="` + bigJob + `"`}, {"/api/jobs", &jt, &res.APIJobsBytes, `"` + bigJob + `"`},
			{"/api/jobs/" + bigJob, &bt, &res.APIJobBytes, `"` + bigJob + `"`}} {
			time.Sleep(1100 * time.Millisecond) // past the poller's one-second cache
			d, n, err := srv.get(ctx, r.path, r.want)
			if err != nil {
				return res, err
			}
			*r.times = append(*r.times, d.Seconds()*1000)
			*r.bytes = n
		}
	}
	res.MetricsMs, res.APIJobsMs, res.APIJobMs = summarize(mt), summarize(jt), summarize(bt)
	b.progress("scale: /metrics %.0f ms (%d KiB), /api/jobs %.0f ms (%d KiB), /api/jobs/%s %.0f ms (medians)",
		res.MetricsMs.Median, res.MetricsBytes>>10, res.APIJobsMs.Median, res.APIJobsBytes>>10, bigJob, res.APIJobMs.Median)
	if hwm, err := vmHWM(strconv.Itoa(srv.cmd.Process.Pid)); err == nil {
		res.ServePeakRSSMiB = float64(hwm) / (1 << 20)
	}
	if err := srv.stop(); err != nil {
		return res, err
	}

	// The giant Job ends: its last index succeeds, and it fails for its
	// dead indexes.
	ph.enter("the giant Job ends")
	ch.release()
	<-exited
	if childErr != nil {
		return res, childErr
	}
	ph.enter("coordinator retry --reopen")
	d, _, err := runTimed(ctx, []string{bin, "--redis", b.env.url, "retry", bigJob, "--reopen"}, "", 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.RetrySeconds = d.Seconds()
	ph.enter("coordinator delete")
	d, _, err = runTimed(ctx, []string{bin, "--redis", b.env.url, "delete", bigJob}, "", 5*time.Minute)
	if err != nil {
		return res, err
	}
	res.DeleteSeconds = d.Seconds()
	b.progress("scale: retry of %s dead items %.2f s, delete %.2f s", human(float64(cfg.scaleDead)), res.RetrySeconds, res.DeleteSeconds)

	ph.enter("")
	if err := b.readSlowlog(ctx, res, lua, &ph); err != nil {
		return res, err
	}
	return res, nil
}

// errChildExited: a drain child ended before the state waited for.
var errChildExited = errors.New("the drain child exited")

// waitSettled polls the Job's counters until want items are settled
// (succeeded or dead).
func (b *bench) waitSettled(ctx context.Context, job string, want int64, exited <-chan struct{}, timeout time.Duration) error {
	in := b.c.Inspector()
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		jobs, err := in.Jobs(ctx)
		if err != nil {
			return err
		}
		var got int64
		for _, j := range jobs {
			if j.Name == job && j.Err == nil {
				got = j.Status.Items.Succeeded + j.Status.Items.Dead
			}
		}
		if got >= want {
			return nil
		}
		if time.Since(last) > 15*time.Second {
			b.progress("scale: %s of %s settled", human(float64(got)), human(float64(want)))
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s: %d of %d items settled after %s", job, got, want, timeout)
		}
		select {
		case <-exited:
			return errChildExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// createJobs creates n small Jobs, each with ten pending items, unsealed.
func (b *bench) createJobs(ctx context.Context, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 8)
	items := make([][]byte, 10)
	for i := range items {
		items[i] = []byte(payload(i))
	}
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				name := fmt.Sprintf("scale-%05d", i)
				if err := b.c.Create(ctx, name, jobstate.Spec{}); err != nil {
					errs[g] = err
					return
				}
				if _, err := b.c.Push(ctx, name, items, queue.PushOptions{}); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// redisUse is what Redis did over a window: its CPU seconds and script
// calls, and the CPU seconds of a process when one is watched.
type redisUse struct {
	seconds float64
	cpu     float64
	scripts float64
	procCPU float64
}

// redisWindow measures Redis (and the process pid, unless nil) over the
// scale window.
func (b *bench) redisWindow(ctx context.Context, srv *serveProc) (redisUse, error) {
	var u redisUse
	read := func() (cpu, scripts, proc float64, err error) {
		cs, err := b.env.commandStats(ctx)
		if err != nil {
			return 0, 0, 0, err
		}
		if cpu, err = b.env.cpuSeconds(ctx); err != nil {
			return 0, 0, 0, err
		}
		if srv != nil {
			if proc, err = procCPU(srv.cmd.Process.Pid); err != nil {
				return 0, 0, 0, err
			}
		}
		return cpu, cs["evalsha"][0], proc, nil
	}
	c0, s0, p0, err := read()
	if err != nil {
		return u, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return u, ctx.Err()
	case <-time.After(b.cfg.scaleWindow):
	}
	c1, s1, p1, err := read()
	if err != nil {
		return u, err
	}
	return redisUse{seconds: time.Since(t0).Seconds(), cpu: c1 - c0, scripts: s1 - s0, procCPU: p1 - p0}, nil
}

// serveCPU measures serve's CPU and Redis's over the window. Sweeps are
// counted by serve's workq_controller_sweeps_total, read just before and
// after the window (a serve without it: by their script calls, one
// snapshot script per Job per sweep); the held workers' own calls are
// taken out with the baseline.
func (b *bench) serveCPU(ctx context.Context, srv *serveProc, res *scaleResult, interval time.Duration, base redisUse) error {
	before, counted := srv.sweeps(ctx)
	u, err := b.redisWindow(ctx, srv)
	if err != nil {
		return err
	}
	after, _ := srv.sweeps(ctx)
	scale := u.seconds / base.seconds
	calls := u.scripts - base.scripts*scale
	sweeps := int64(math.Round(calls / float64(res.Jobs+1)))
	if counted {
		sweeps = int64(after - before)
	}
	if sweeps < 1 {
		return fmt.Errorf("serve made no sweep in %.1f s (%.0f script calls beyond the baseline); its log: %s", u.seconds, calls, srv.log.String())
	}
	res.ServeIntervalMs = float64(interval.Milliseconds())
	res.ServeWindowSeconds = u.seconds
	res.ServeSweeps = sweeps
	res.ServeCPUPerSweepMs = u.procCPU / float64(sweeps) * 1000
	res.RedisCPUPerSweepMs = max(u.cpu-base.cpu*scale, 0) / float64(sweeps) * 1000
	return nil
}

// procCPU is a process's user + system CPU seconds, from /proc/PID/stat
// (in clock ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return (ut + st) / 100, nil
}

// serveProc is a running `coordinator serve`.
type serveProc struct {
	cmd  *exec.Cmd
	base string
	log  *tailBuffer
	hc   *http.Client
	once sync.Once
	err  error
}

func startServe(ctx context.Context, bin, url string, interval time.Duration) (*serveProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &serveProc{base: "http://" + addr, log: &tailBuffer{max: 8192}, hc: &http.Client{Timeout: 2 * time.Minute}}
	s.cmd = exec.Command(bin, "--redis", url, "serve", "--listen", addr, "--interval", interval.String(), "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start coordinator serve: %w", err)
	}
	if err := waitFor(ctx, 30*time.Second, func() (bool, error) {
		r, err := s.hc.Get(s.base + "/healthz")
		if err != nil {
			return false, err
		}
		_ = r.Body.Close()
		return r.StatusCode == http.StatusOK, fmt.Errorf("/healthz: %s", r.Status)
	}); err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("coordinator serve did not become healthy: %w; its log: %s", err, s.log.String())
	}
	return s, nil
}

// get times one GET of path, read to the end, and checks that the body
// holds want.
func (s *serveProc) get(ctx context.Context, path, want string) (time.Duration, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	r, err := s.hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	d := time.Since(t0)
	switch {
	case err != nil:
		return d, 0, fmt.Errorf("GET %s: %w", path, err)
	case r.StatusCode != http.StatusOK:
		return d, 0, fmt.Errorf("GET %s: %s: %s", path, r.Status, firstLine(body))
	case !strings.Contains(string(body), want):
		return d, 0, fmt.Errorf("GET %s: the answer (%d bytes) does not hold %s", path, len(body), want)
	}
	return d, len(body), nil
}

// sweeps reads serve's workq_controller_sweeps_total from /metrics; false
// when serve has no such metric.
func (s *serveProc) sweeps(ctx context.Context) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	r, err := s.hc.Do(req)
	if err != nil {
		return 0, false
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "workq_controller_sweeps_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return 0, false
}

// stop ends serve with SIGTERM (SIGKILL after 10 s) and waits for it.
func (s *serveProc) stop() error {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				s.err = fmt.Errorf("coordinator serve: %w: %s", err, lastLine(s.log.String()))
			}
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
			s.err = errors.New("coordinator serve did not stop within 10s of SIGTERM")
		}
	})
	return s.err
}

// scaleDrain runs in a child: req.Workers queue.Workers drain the Indexed
// Job; req.Dead indexes fail for good (MaxAttempts 1), spread evenly over
// all but the last; with req.Hold the last index runs until released.
func scaleDrain(ctx context.Context, req childReq, released <-chan struct{}) (time.Duration, int64, error) {
	k, dead := int64(req.Items), int64(req.Dead)
	errPlanned := errors.New("a planned failure")
	fails := func(i int64) bool {
		// Exactly dead of the indexes 0..k-2: floor((i+1)·dead/(k-1)) steps up.
		return i < k-1 && (i+1)*dead/(k-1) > i*dead/(k-1)
	}
	h := queue.HandlerFunc(func(ctx context.Context, it queue.Item) error {
		i := int64(it.Index)
		if req.Hold && i == k-1 {
			select {
			case <-released:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if fails(i) {
			return errPlanned
		}
		return nil
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	var clients []*queue.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	var workers []*queue.Worker
	for i := range req.Workers {
		c, err := queue.Open(ctx, queue.Options{URL: req.URL})
		if err != nil {
			return 0, 0, err
		}
		clients = append(clients, c)
		w, err := queue.NewWorker(c, queue.WorkerConfig{Job: req.Job, ID: fmt.Sprintf("scale-%d-%d", os.Getpid(), i),
			Concurrency: req.Concurrency, Heartbeat: workerHeartbeat, Handler: h, Logger: log})
		if err != nil {
			return 0, 0, err
		}
		workers = append(workers, w)
	}
	start := time.Now()
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Run(ctx) }()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		// A Job with dead items fails: that is this drain's expected end.
		if err != nil && !(dead > 0 && errors.Is(err, queue.ErrJobFailed)) {
			return d, 0, err
		}
	}
	jobs, err := clients[0].Inspector().Jobs(ctx)
	if err != nil {
		return d, 0, err
	}
	for _, j := range jobs {
		if j.Name != req.Job {
			continue
		}
		if j.Err != nil {
			return d, 0, j.Err
		}
		it := j.Status.Items
		if it.Succeeded != k-dead || it.Dead != dead {
			return d, it.Succeeded, fmt.Errorf("job %s: %d succeeded and %d dead, want %d and %d", req.Job, it.Succeeded, it.Dead, k-dead, dead)
		}
		return d, it.Succeeded + it.Dead, nil
	}
	return d, 0, fmt.Errorf("job %s is not listed", req.Job)
}

func (rep *report) writeScale(w io.Writer) {
	s := rep.Scale
	if s == nil {
		return
	}
	fmt.Fprintf(w, "\nscale: %s small Jobs (10 pending items each) and one Indexed Job of %s completions and %s dead indexes, live; coordinator serve on redis-server\n",
		human(float64(s.Jobs)), human(float64(s.Completions)), human(float64(s.Dead)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ms := func(st stat) string {
		if st.Min == st.Max {
			return fmt.Sprintf("%.1f ms", st.Median)
		}
		return fmt.Sprintf("%.1f ms (%.1f–%.1f)", st.Median, st.Min, st.Max)
	}
	fmt.Fprintf(tw, "  giant Job drained to its last index (4 queue.Workers)\t%.1f s\t%s indexes/s\n", s.DrainSeconds, human(float64(s.Completions+s.Dead-1)/max(s.DrainSeconds, 1e-9)))
	fmt.Fprintf(tw, "  small Jobs created and loaded (8 goroutines)\t%.1f s\t\n", s.CreateSeconds)
	if s.ServeSweeps > 0 {
		fmt.Fprintf(tw, "  serve CPU per sweep (--interval %.0fms, %d sweeps in %.1f s)\t%.2f ms\t%.0f%% of a core\n", s.ServeIntervalMs, s.ServeSweeps, s.ServeWindowSeconds,
			s.ServeCPUPerSweepMs, 100*s.ServeCPUPerSweepMs*float64(s.ServeSweeps)/(s.ServeWindowSeconds*1000))
		fmt.Fprintf(tw, "  Redis CPU per sweep (less the idle workers' baseline)\t%.2f ms\t\n", s.RedisCPUPerSweepMs)
		fmt.Fprintf(tw, "  serve peak RSS\t%.1f MiB\t\n", s.ServePeakRSSMiB)
	}
	if s.MetricsMs.Max > 0 {
		fmt.Fprintf(tw, "  GET /metrics\t%s\t%d KiB\n", ms(s.MetricsMs), s.MetricsBytes>>10)
		fmt.Fprintf(tw, "  GET /api/jobs\t%s\t%d KiB\n", ms(s.APIJobsMs), s.APIJobsBytes>>10)
		fmt.Fprintf(tw, "  GET /api/jobs/%s\t%s\t%d KiB\n", bigJob, ms(s.APIJobMs), s.APIJobBytes>>10)
	}
	if s.RetrySeconds > 0 {
		fmt.Fprintf(tw, "  coordinator retry --reopen (%s dead items)\t%.2f s\t\n", human(float64(s.Dead)), s.RetrySeconds)
		fmt.Fprintf(tw, "  coordinator delete (the giant Job)\t%.2f s\t\n", s.DeleteSeconds)
	}
	_ = tw.Flush()
	if len(s.Slowest) > 0 || s.SlowCount == 0 {
		fmt.Fprintf(w, "  SLOWLOG: %d workq commands took %d µs or more, %d of them over 5 ms", s.SlowCount, slowlogThreshold, s.SlowOver5)
		if s.SlowLost {
			fmt.Fprint(w, " (the log overflowed: more were dropped)")
		}
		fmt.Fprintln(w, "; the slowest:")
		for _, e := range s.Slowest {
			fmt.Fprintf(w, "    %8.2f ms  %-60s  during: %s\n", float64(e.Micros)/1000, e.What, e.Phase)
		}
	}
	if len(s.SlowKinds) > 0 {
		fmt.Fprintln(w, "  SLOWLOG by script or command (entries of 1 ms or more: count, median, max); every script, then the commands seen 20 times or more or with a median over 5 ms:")
		left := 0
		for _, k := range s.SlowKinds {
			if !strings.HasPrefix(k.What, "script ") && k.Count < 20 && k.Median <= 5 {
				left++
				continue
			}
			fmt.Fprintf(w, "    %6d  %8.2f ms  %8.2f ms  %s\n", k.Count, k.Median, k.Max, k.What)
		}
		if left > 0 {
			fmt.Fprintf(w, "    (%d more commands in the JSON report)\n", left)
		}
	}
	if s.StallMicros > 0 {
		fmt.Fprintf(w, "  stalls: the slowest O(1) command in SLOWLOG (%s) took %.2f ms: other work on the machine kept Redis off a CPU that long, so entries up to that long may be stalls, not work\n",
			s.Stall, float64(s.StallMicros)/1000)
	}
}

// scaleChecks is issue 14's target. It judges the slowest command that
// does work (a script, or a command whose cost grows with its arguments or
// its key): an O(1) command in SLOWLOG measures a stall of the machine,
// and the line says the slowest of those beside it.
func (b *bench) scaleChecks() {
	s := b.rep.Scale
	name := "scale: the slowest workq command in SLOWLOG ≤ 5 ms (O(1) commands, which only show stalls, aside)"
	switch {
	case s == nil && b.cfg.want("scale"):
		b.add(true, name, "NOT RUN", "the scale section did not finish; see errors")
	case s == nil:
	case s.SlowestWork == nil && s.SlowLost:
		b.add(true, name, "NOT RUN", "SLOWLOG overflowed and kept no command that does work")
	case s.SlowestWork == nil:
		b.add(true, name, "PASS", fmt.Sprintf("no workq command that does work took %d µs or more", slowlogThreshold))
	default:
		e := s.SlowestWork
		detail := fmt.Sprintf("%.2f ms: %s, during %s", float64(e.Micros)/1000, e.What, e.Phase)
		if s.StallMicros > 0 {
			detail += fmt.Sprintf(" (the slowest O(1) command, %s, took %.2f ms: Redis was stalled that long by other work)", strings.Fields(s.Stall)[0], float64(s.StallMicros)/1000)
		}
		b.add(true, name, pass(e.Micros <= 5000), detail)
	}
}

// phases names the stretches of the scale section, for SLOWLOG entries.
type phases struct {
	names  []string
	starts []time.Time
}

func (p *phases) enter(name string) {
	p.names = append(p.names, name)
	p.starts = append(p.starts, time.Now())
}

// at names the phase at unix second t (SLOWLOG's resolution).
func (p *phases) at(t int64) string {
	name := "before the section"
	for i, s := range p.starts {
		if s.Unix() <= t {
			name = p.names[i]
		}
	}
	if name == "" {
		return "reading SLOWLOG"
	}
	return name
}
