package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/workq/workq/pkg/queue"
)

// childTimeout bounds one drain.
const childTimeout = 10 * time.Minute

// bench runs the sections and collects the report.
type bench struct {
	cfg    config
	env    *redisEnv
	c      *queue.Client
	tmp    string
	log    io.Writer
	start  time.Time
	rep    report
	root   string // repository root, for building binaries
	rootEr error
}

func newBench(ctx context.Context, cfg config, env *redisEnv, tmp string, log io.Writer) (*bench, error) {
	c, err := queue.Open(ctx, queue.Options{URL: env.url})
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, env: env, c: c, tmp: tmp, log: log, start: time.Now()}
	b.root, b.rootEr = repoRoot()
	b.rep.Machine = describeMachine(ctx, env)
	return b, nil
}

func (b *bench) close() { _ = b.c.Close() }

func (b *bench) progress(format string, a ...any) {
	fmt.Fprintf(b.log, "[%7s] %s\n", elapsed(b.start), fmt.Sprintf(format, a...))
}

func (b *bench) fail(what string, err error) {
	b.progress("ERROR %s: %v", what, err)
	b.rep.Errors = append(b.rep.Errors, fmt.Sprintf("%s: %v", what, err))
}

// matrixCase is one config of the interleaved matrix.
type matrixCase struct {
	row     *row
	run     func(run int) (sample, error)
	samples []sample
	// optional marks a case whose failure means "not run" (an unfinished
	// binary) rather than a bench error.
	optional bool
}

// runMatrix runs every case cfg.runs times, interleaved (run 1 of every
// case, then run 2, ...), so that a busy spell of a shared machine does not
// land on one config only. Failed runs are reported and not counted.
func (b *bench) runMatrix(ctx context.Context, cases []*matrixCase) {
	for i := range b.cfg.runs {
		for _, c := range cases {
			if ctx.Err() != nil {
				break
			}
			r := c.row
			if r.NotRun != "" {
				continue
			}
			s, err := c.run(i)
			if err != nil {
				if c.optional {
					r.NotRun = err.Error()
					b.progress("%s %s: not run: %v", r.Group, r.Name, err)
					continue
				}
				b.fail(fmt.Sprintf("%s %s run %d", r.Group, r.Name, i+1), err)
				continue
			}
			b.progress("%s %s run %d/%d: push %s/s, drain %s/s, peak RSS %.1f MiB", r.Group, r.Name, i+1, b.cfg.runs,
				human(s.pushRate), human(s.drainRate), s.rssBytes/(1<<20))
			c.samples = append(c.samples, s)
		}
	}
	for _, c := range cases {
		if c.row.NotRun == "" {
			c.row.fill(c.samples)
			if len(c.samples) == 0 {
				c.row.NotRun = "every run failed; see errors"
			}
		}
		b.rep.Rows = append(b.rep.Rows, *c.row)
	}
}

func (b *bench) runAll(ctx context.Context) report {
	b.progress("redis %s at %s; %d items per run (B=1 and asynq: %d), %d interleaved runs per config, load average %s",
		b.rep.Machine.Redis, b.env.url, b.cfg.items, b.cfg.slowItems, b.cfg.runs, b.rep.Machine.LoadStart)
	var cases []*matrixCase
	for _, s := range []struct {
		name string
		f    func(context.Context) []*matrixCase
	}{{"ceiling", b.ceiling}, {"workq", b.workq}, {"binary", b.binary}, {"scheduling", b.defaultBatch}, {"asynq", b.asynq}} {
		if b.cfg.want(s.name) {
			cases = append(cases, s.f(ctx)...)
		}
	}
	b.runMatrix(ctx, cases)
	for _, s := range []struct {
		name string
		f    func(context.Context)
	}{{"coordinator", b.coordinator}, {"run", b.commandPerItem}, {"volume", b.volume}, {"rss", b.rssFlat},
		{"latency", b.latency}, {"scheduling", b.scheduling}, {"scale", b.scale}} {
		if ctx.Err() == nil && b.cfg.want(s.name) {
			s.f(ctx)
		}
	}
	b.compare()
	b.checks()
	b.notes()
	b.rep.Machine.LoadEnd = loadAvg()
	b.rep.Duration = time.Since(b.start).Seconds()
	return b.rep
}

func (b *bench) ceiling(ctx context.Context) []*matrixCase {
	type variant struct {
		lease   string
		name    string
		batches []int
	}
	var out []*matrixCase
	for _, v := range []variant{{leasePerItem, "per-item lease", b.cfg.ceilBatches}, {leasePerBatch, "per-batch lease", b.cfg.ceilBatchBatch},
		{leaseFenced, "fenced per-batch lease", b.cfg.ceilBatchBatch}} {
		for _, n := range v.batches {
			items := b.itemsFor(n)
			r := &row{Group: "ceiling", Name: fmt.Sprintf("%s N=%d W=%d", v.name, n, b.cfg.ceilWorkers), Batch: n, Workers: b.cfg.ceilWorkers, Items: items}
			out = append(out, &matrixCase{row: r, run: func(int) (sample, error) { return b.ceilingRun(ctx, n, items, v.lease) }})
		}
	}
	return out
}

// itemsFor is the items of a run at batch size n: B=1 runs are bound by
// one round trip per item and use cfg.slowItems to keep the bench short.
func (b *bench) itemsFor(n int) int {
	if n == 1 {
		return b.cfg.slowItems
	}
	return b.cfg.items
}

func (b *bench) ceilingRun(ctx context.Context, n, items int, lease string) (sample, error) {
	if err := b.env.reset(ctx); err != nil {
		return sample{}, err
	}
	mem0, err := b.env.dataMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	m, err := b.env.meter(ctx)
	if err != nil {
		return sample{}, err
	}
	if err := rawPush(ctx, b.env.rdb, ceilPending, items); err != nil {
		return sample{}, err
	}
	pd, pcpu, err := m.stop(ctx)
	if err != nil {
		return sample{}, err
	}
	mem1, err := b.env.dataMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	if err := b.env.rdb.ConfigResetStat(ctx).Err(); err != nil {
		return sample{}, err
	}
	if m, err = b.env.meter(ctx); err != nil {
		return sample{}, err
	}
	res, err := runChild(ctx, childReq{Kind: "ceiling", URL: b.env.url, Items: items, Batch: n, Workers: b.cfg.ceilWorkers, Lease: lease}, childTimeout)
	if err != nil {
		return sample{}, err
	}
	_, dcpu, err := m.stop(ctx)
	if err != nil {
		return sample{}, err
	}
	if b.cfg.redisStats {
		b.printCommandStats(ctx, fmt.Sprintf("ceiling %s N=%d", lease, n), items)
	}
	return sample{pushRate: float64(items) / pd.Seconds(), drainRate: float64(items) / res.DrainSeconds,
		bytesPerItem: float64(mem1-mem0)/float64(items) - payloadBytes, rssBytes: float64(res.PeakRSSBytes),
		pushCPU: pcpu / float64(items) * 1e5, drainCPU: dcpu / float64(items) * 1e5, clientCPU: res.CPUSeconds / float64(items) * 1e5}, nil
}

// profiledBatch and profiledWorkers pick the workq config --cpuprofile
// profiles: the one the throughput targets are about.
const (
	profiledBatch   = 1000
	profiledWorkers = 4
)

func (b *bench) workq(ctx context.Context) []*matrixCase {
	var out []*matrixCase
	for _, n := range b.cfg.batches {
		for _, w := range b.cfg.workers {
			items := b.itemsFor(n)
			r := &row{Group: groupWorkq, Name: fmt.Sprintf("B=%d W=%d", n, w), Batch: n, Workers: w,
				Concurrency: workerConcurrency, Items: items}
			out = append(out, &matrixCase{row: r, run: func(run int) (sample, error) {
				prof := ""
				if run == 0 && n == profiledBatch && w == profiledWorkers {
					prof = b.cfg.cpuProfile
				}
				s, _, err := b.workqRun(ctx, n, w, items, prof)
				return s, err
			}})
		}
	}
	return out
}

// defaultBatch is the throughput part of the scheduling section: tiny
// no-op items with no batch size given anywhere (the Job's default, 1000,
// is a maximum; leases adapt below it).
func (b *bench) defaultBatch(ctx context.Context) []*matrixCase {
	const w = 4
	items := b.cfg.items
	wr := &row{Group: groupDefault, Name: fmt.Sprintf("queue.Worker W=%d", w), Workers: w, Concurrency: workerConcurrency, Items: items}
	out := []*matrixCase{{row: wr, run: func(int) (sample, error) {
		s, _, err := b.workqRun(ctx, 0, w, items, "")
		return s, err
	}}}
	procs := b.cfg.binaryProcesses
	br := &row{Group: groupDefault, Name: fmt.Sprintf("worker --batch-exec -- true, %d processes", procs), Workers: procs, Items: items}
	bin, err := b.build(ctx, "worker")
	if err != nil {
		br.NotRun = err.Error()
	}
	out = append(out, &matrixCase{row: br, optional: true, run: func(int) (sample, error) { return b.binaryRun(ctx, bin, 0, procs) }})
	return out
}

// workqRun pushes items into a new Job through the Pusher and drains it
// with w in-process queue.Workers in a child process.
func (b *bench) workqRun(ctx context.Context, n, w, items int, cpuProfile string) (sample, childResult, error) {
	if err := b.env.reset(ctx); err != nil {
		return sample{}, childResult{}, err
	}
	job := fmt.Sprintf("bench-b%d-w%d", n, w) // B=0: no batch size given
	p, err := pushWorkq(ctx, b.env, b.c, job, n, items, true)
	if err != nil {
		return sample{}, childResult{}, err
	}
	if err := b.env.rdb.ConfigResetStat(ctx).Err(); err != nil {
		return sample{}, childResult{}, err
	}
	m, err := b.env.meter(ctx)
	if err != nil {
		return sample{}, childResult{}, err
	}
	res, err := runChild(ctx, childReq{Kind: "workq", URL: b.env.url, Job: job, Items: items, Batch: n, Workers: w,
		Concurrency: workerConcurrency, CPUProfile: cpuProfile}, childTimeout)
	if err != nil {
		return sample{}, res, err
	}
	_, dcpu, err := m.stop(ctx)
	if err != nil {
		return sample{}, res, err
	}
	if b.cfg.redisStats {
		b.printCommandStats(ctx, fmt.Sprintf("B=%d W=%d", n, w), items)
	}
	s := sample{pushRate: float64(items) / p.seconds, drainRate: float64(items) / res.DrainSeconds,
		bytesPerItem: p.bytesPerItem, rssBytes: float64(res.PeakRSSBytes), pushCPU: p.redisCPU / float64(items) * 1e5,
		drainCPU: dcpu / float64(items) * 1e5, clientCPU: res.CPUSeconds / float64(items) * 1e5}
	if l := res.Lease; l != nil {
		s.leaseItems, s.leaseRTT = l.MeanItems, l.MeanRTTms
	}
	return s, res, nil
}

// printCommandStats prints, per item drained, the calls and Redis time of
// every command since the last CONFIG RESETSTAT.
func (b *bench) printCommandStats(ctx context.Context, name string, items int) {
	cs, err := b.env.commandStats(ctx)
	if err != nil {
		b.fail("commandstats", err)
		return
	}
	names := make([]string, 0, len(cs))
	for k := range cs {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return cs[names[i]][1] > cs[names[j]][1] })
	var parts []string
	for _, k := range names {
		v := cs[k]
		if v[1] == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.3f calls %.3f µs", k, v[0]/float64(items), v[1]/float64(items)))
	}
	b.progress("commandstats per item, %s: %s", name, strings.Join(parts, "; "))
}

func (b *bench) binary(ctx context.Context) []*matrixCase {
	procs := b.cfg.binaryProcesses
	bin, err := b.build(ctx, "worker")
	if err != nil {
		b.progress("worker binary: not run: %v", err)
	}
	var out []*matrixCase
	for _, n := range b.cfg.binaryBatches {
		r := &row{Group: groupBinary, Name: fmt.Sprintf("B=%d, %d processes", n, procs), Batch: n, Workers: procs, Items: b.cfg.items}
		if err != nil {
			r.NotRun = err.Error()
		}
		// A binary that builds but does not drain is not finished yet: the
		// row says so instead of failing the bench.
		out = append(out, &matrixCase{row: r, optional: true, run: func(int) (sample, error) { return b.binaryRun(ctx, bin, n, procs) }})
	}
	return out
}

func (b *bench) binaryRun(ctx context.Context, bin string, n, procs int) (sample, error) {
	items := b.cfg.items
	if err := b.env.reset(ctx); err != nil {
		return sample{}, err
	}
	job := fmt.Sprintf("bench-binary-b%d", n) // B=0: no batch size given
	p, err := pushWorkq(ctx, b.env, b.c, job, n, items, true)
	if err != nil {
		return sample{}, err
	}
	m, err := b.env.meter(ctx)
	if err != nil {
		return sample{}, err
	}
	d, rss, ccpu, err := binaryDrain(ctx, bin, b.env.url, job, procs, childTimeout)
	if err != nil {
		return sample{}, err
	}
	_, dcpu, err := m.stop(ctx)
	if err != nil {
		return sample{}, err
	}
	st, err := b.c.Inspector().Status(ctx, job)
	if err != nil {
		return sample{}, err
	}
	if st.Items.Succeeded != int64(items) {
		return sample{}, fmt.Errorf("the worker processes exited 0 but %d of %d items succeeded (is cmd/worker finished?)", st.Items.Succeeded, items)
	}
	return sample{pushRate: float64(items) / p.seconds, drainRate: float64(items) / d.Seconds(), bytesPerItem: p.bytesPerItem,
		rssBytes: float64(rss), pushCPU: p.redisCPU / float64(items) * 1e5, drainCPU: dcpu / float64(items) * 1e5,
		clientCPU: ccpu / float64(items) * 1e5}, nil
}

// build builds a binary of the repository once per bench.
func (b *bench) build(ctx context.Context, name string) (string, error) {
	if b.rootEr != nil {
		return "", b.rootEr
	}
	out := filepath.Join(b.tmp, name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	b.progress("building ./cmd/%s", name)
	return buildBinary(ctx, b.root, b.tmp, name)
}

func (b *bench) asynq(ctx context.Context) []*matrixCase {
	var out []*matrixCase
	items := b.cfg.slowItems
	for _, conc := range b.cfg.asynqConc {
		r := &row{Group: groupAsynq, Name: fmt.Sprintf("concurrency %d", conc), Concurrency: conc, Items: items}
		out = append(out, &matrixCase{row: r, run: func(int) (sample, error) {
			if err := b.env.reset(ctx); err != nil {
				return sample{}, err
			}
			p, err := pushAsynq(ctx, b.env, items)
			if err != nil {
				return sample{}, err
			}
			m, err := b.env.meter(ctx)
			if err != nil {
				return sample{}, err
			}
			res, err := runChild(ctx, childReq{Kind: "asynq", URL: b.env.url, Items: items, Concurrency: conc}, childTimeout)
			if err != nil {
				return sample{}, err
			}
			_, dcpu, err := m.stop(ctx)
			if err != nil {
				return sample{}, err
			}
			return sample{pushRate: float64(items) / p.seconds, drainRate: float64(items) / res.DrainSeconds, bytesPerItem: p.bytesPerItem,
				rssBytes: float64(res.PeakRSSBytes), pushCPU: p.redisCPU / float64(items) * 1e5, drainCPU: dcpu / float64(items) * 1e5,
				clientCPU: res.CPUSeconds / float64(items) * 1e5}, nil
		}})
	}
	return out
}

func (b *bench) coordinator(ctx context.Context) {
	bin, berr := b.build(ctx, "coordinator")
	for _, lines := range b.cfg.coordLines {
		r := &row{Group: groupPush, Name: fmt.Sprintf("%s lines", human(float64(lines))), Items: lines}
		if berr != nil {
			r.NotRun = berr.Error()
			b.progress("coordinator push: not run: %v", berr)
			b.rep.Rows = append(b.rep.Rows, *r)
			continue
		}
		s, err := b.coordinatorRun(ctx, bin, lines)
		if err != nil {
			r.NotRun = err.Error()
			b.progress("coordinator push %d lines: not run: %v", lines, err)
			b.rep.Rows = append(b.rep.Rows, *r)
			continue
		}
		b.progress("coordinator push %d lines: %s items/s, peak RSS %.1f MiB", lines, human(s.pushRate), s.rssBytes/(1<<20))
		r.fill([]sample{s})
		b.rep.Rows = append(b.rep.Rows, *r)
	}
}

func (b *bench) coordinatorRun(ctx context.Context, bin string, lines int) (sample, error) {
	if err := b.env.reset(ctx); err != nil {
		return sample{}, err
	}
	file, err := writeLines(b.tmp, lines)
	if err != nil {
		return sample{}, err
	}
	defer os.Remove(file)
	mem0, err := b.env.dataMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	res, err := runCoordinatorPush(ctx, b.env, bin, "bench-coord", file, lines)
	if err != nil {
		return sample{}, err
	}
	mem1, err := b.env.dataMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	return sample{pushRate: float64(lines) / res.seconds, rssBytes: float64(res.maxRSSBytes),
		bytesPerItem: float64(mem1-mem0)/float64(lines) - payloadBytes, pushCPU: res.redisCPU / float64(lines) * 1e5,
		clientCPU: res.cpu / float64(lines) * 1e5}, nil
}

func (b *bench) rssFlat(ctx context.Context) {
	for _, size := range b.cfg.rssSizes {
		s, _, err := b.workqRun(ctx, 100, 4, size, "")
		if err != nil {
			b.fail(fmt.Sprintf("worker RSS with %d items", size), err)
			return
		}
		b.progress("worker RSS, queue of %d items: %.1f MiB", size, s.rssBytes/(1<<20))
		b.rep.RSSFlat = append(b.rep.RSSFlat, rssPoint{Items: size, RSSMiB: s.rssBytes / (1 << 20)})
	}
}

func (b *bench) latency(ctx context.Context) {
	if err := b.env.reset(ctx); err != nil {
		b.fail("latency", err)
		return
	}
	l, err := measureLatency(ctx, b.env.url, b.cfg.latencyPushes, 4)
	if err != nil {
		b.fail("latency", err)
		return
	}
	b.progress("latency: p50 %.2f ms, p99 %.2f ms", l.P50ms, l.P99ms)
	b.rep.Latency = &l
}
