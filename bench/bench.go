package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
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
	}{{"ceiling", b.ceiling}, {"workq", b.workq}, {"binary", b.binary}, {"asynq", b.asynq}} {
		if b.cfg.want(s.name) {
			cases = append(cases, s.f(ctx)...)
		}
	}
	b.runMatrix(ctx, cases)
	for _, s := range []struct {
		name string
		f    func(context.Context)
	}{{"coordinator", b.coordinator}, {"rss", b.rssFlat}, {"latency", b.latency}} {
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
		perBatch bool
		batches  []int
	}
	var out []*matrixCase
	for _, v := range []variant{{false, b.cfg.ceilBatches}, {true, b.cfg.ceilBatchBatch}} {
		for _, n := range v.batches {
			name := fmt.Sprintf("per-item lease N=%d W=%d", n, b.cfg.ceilWorkers)
			if v.perBatch {
				name = fmt.Sprintf("per-batch lease N=%d W=%d", n, b.cfg.ceilWorkers)
			}
			items := b.itemsFor(n)
			r := &row{Group: "ceiling", Name: name, Batch: n, Workers: b.cfg.ceilWorkers, Items: items}
			out = append(out, &matrixCase{row: r, run: func(int) (sample, error) { return b.ceilingRun(ctx, n, items, v.perBatch) }})
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

func (b *bench) ceilingRun(ctx context.Context, n, items int, perBatch bool) (sample, error) {
	if err := b.env.reset(ctx); err != nil {
		return sample{}, err
	}
	mem0, err := b.env.usedMemory(ctx)
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
	mem1, err := b.env.usedMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	if m, err = b.env.meter(ctx); err != nil {
		return sample{}, err
	}
	res, err := runChild(ctx, childReq{Kind: "ceiling", URL: b.env.url, Items: items, Batch: n, Workers: b.cfg.ceilWorkers, PerBatch: perBatch}, childTimeout)
	if err != nil {
		return sample{}, err
	}
	_, dcpu, err := m.stop(ctx)
	if err != nil {
		return sample{}, err
	}
	return sample{pushRate: float64(items) / pd.Seconds(), drainRate: float64(items) / res.DrainSeconds,
		bytesPerItem: float64(mem1-mem0)/float64(items) - payloadBytes, rssBytes: float64(res.PeakRSSBytes),
		pushCPU: pcpu / float64(items) * 1e5, drainCPU: dcpu / float64(items) * 1e5, clientCPU: res.CPUSeconds / float64(items) * 1e5}, nil
}

func (b *bench) workq(ctx context.Context) []*matrixCase {
	var out []*matrixCase
	for _, n := range b.cfg.batches {
		for _, w := range b.cfg.workers {
			items := b.itemsFor(n)
			r := &row{Group: "workq (queue.Worker, no-op Handler)", Name: fmt.Sprintf("B=%d W=%d", n, w), Batch: n, Workers: w,
				Concurrency: workerConcurrency, Items: items}
			out = append(out, &matrixCase{row: r, run: func(run int) (sample, error) {
				prof := ""
				if run == 0 && n == 100 && w == 4 {
					prof = b.cfg.cpuProfile
				}
				s, _, err := b.workqRun(ctx, n, w, items, prof)
				return s, err
			}})
		}
	}
	return out
}

// workqRun pushes items into a new Job through the Pusher and drains it
// with w in-process queue.Workers in a child process.
func (b *bench) workqRun(ctx context.Context, n, w, items int, cpuProfile string) (sample, childResult, error) {
	if err := b.env.reset(ctx); err != nil {
		return sample{}, childResult{}, err
	}
	job := fmt.Sprintf("bench-b%d-w%d", n, w)
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
	return sample{pushRate: float64(items) / p.seconds, drainRate: float64(items) / res.DrainSeconds,
		bytesPerItem: p.bytesPerItem, rssBytes: float64(res.PeakRSSBytes), pushCPU: p.redisCPU / float64(items) * 1e5,
		drainCPU: dcpu / float64(items) * 1e5, clientCPU: res.CPUSeconds / float64(items) * 1e5}, res, nil
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
	const n = 100
	procs := b.cfg.binaryProcesses
	r := &row{Group: "worker binary (--batch-exec -- true)", Name: fmt.Sprintf("B=%d, %d processes", n, procs), Batch: n, Workers: procs, Items: b.cfg.items}
	bin, err := b.build(ctx, "worker")
	if err != nil {
		r.NotRun = err.Error()
		b.progress("worker binary: not run: %v", err)
	}
	// A binary that builds but does not drain is not finished yet: the
	// row says so instead of failing the bench.
	return []*matrixCase{{row: r, optional: true, run: func(int) (sample, error) { return b.binaryRun(ctx, bin, n, procs) }}}
}

func (b *bench) binaryRun(ctx context.Context, bin string, n, procs int) (sample, error) {
	items := b.cfg.items
	if err := b.env.reset(ctx); err != nil {
		return sample{}, err
	}
	job := "bench-binary"
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
	st, err := b.c.Status(ctx, job)
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
		r := &row{Group: "asynq v0.26.0 (no-op handler)", Name: fmt.Sprintf("concurrency %d", conc), Concurrency: conc, Items: items}
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
		r := &row{Group: "coordinator push -f FILE (1 run)", Name: fmt.Sprintf("%s lines", human(float64(lines))), Items: lines}
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
	mem0, err := b.env.usedMemory(ctx)
	if err != nil {
		return sample{}, err
	}
	res, err := runCoordinatorPush(ctx, b.env, bin, "bench-coord", file, lines)
	if err != nil {
		return sample{}, err
	}
	mem1, err := b.env.usedMemory(ctx)
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

// find returns the row of group prefix and name, or nil.
func (b *bench) find(group, name string) *row {
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if strings.HasPrefix(r.Group, group) && r.Name == name && (r.DrainRate != nil || r.PushRate != nil) {
			return r
		}
	}
	return nil
}

// compare fills the ratio columns.
func (b *bench) compare() {
	var asynqBest float64
	for _, r := range b.rep.Rows {
		if strings.HasPrefix(r.Group, "asynq") && r.DrainRate != nil {
			asynqBest = max(asynqBest, r.DrainRate.Median)
		}
	}
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.DrainRate == nil {
			continue
		}
		n := r.Batch
		if strings.HasPrefix(r.Group, "asynq") {
			n = 1
		}
		if c := b.find("ceiling", fmt.Sprintf("per-item lease N=%d W=%d", n, b.cfg.ceilWorkers)); c != nil && c.DrainRate != nil {
			r.VsCeiling = r.DrainRate.Median / c.DrainRate.Median
		}
		if asynqBest > 0 {
			r.VsAsynq = r.DrainRate.Median / asynqBest
		}
	}
}

func (b *bench) checks() {
	add := func(target bool, name, result, detail string) {
		b.rep.Checks = append(b.rep.Checks, check{Name: name, Result: result, Detail: detail, Target: target})
	}
	if busy(b.rep.Machine.LoadStart) || busy(loadAvg()) {
		add(false, "the machine was otherwise idle", "WARN", fmt.Sprintf("load average %s at the start, %s at the end on %d CPUs: other work shared the machine, so the wall-clock targets below are unreliable; the CPU capacity checks are not affected",
			b.rep.Machine.LoadStart, loadAvg(), runtime.NumCPU()))
	}
	pass := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	head := b.find("workq", "B=100 W=4")
	ceil := b.find("ceiling", fmt.Sprintf("per-item lease N=100 W=%d", b.cfg.ceilWorkers))
	var asynqBest *row
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if strings.HasPrefix(r.Group, "asynq") && r.DrainRate != nil && (asynqBest == nil || r.DrainRate.Median > asynqBest.DrainRate.Median) {
			asynqBest = r
		}
	}

	name := "drain at B=100, W=4 ≥ 60% of the ceiling (per-item lease, N=100)"
	switch {
	case head == nil || ceil == nil:
		add(true, name, "NOT RUN", "needs the workq B=100 W=4 and ceiling N=100 rows")
	default:
		r := head.DrainRate.Median / ceil.DrainRate.Median
		add(true, name, pass(r >= 0.6), fmt.Sprintf("%s/s vs %s/s = %.0f%%", human(head.DrainRate.Median), human(ceil.DrainRate.Median), 100*r))
	}
	name = "drain at B=100, W=4 ≥ 20× asynq's best"
	switch {
	case head == nil || asynqBest == nil:
		add(true, name, "NOT RUN", "needs the workq B=100 W=4 and asynq rows")
	default:
		r := head.DrainRate.Median / asynqBest.DrainRate.Median
		add(true, name, pass(r >= 20), fmt.Sprintf("%s/s vs asynq %s %s/s = %.1f×", human(head.DrainRate.Median), asynqBest.Name, human(asynqBest.DrainRate.Median), r))
	}
	// The same two comparisons on CPU cost: independent of other work on
	// a shared machine, which the wall-clock rates are not.
	if head != nil && ceil != nil && head.Capacity > 0 && ceil.Capacity > 0 {
		r := head.Capacity / ceil.Capacity
		add(false, "CPU capacity at B=100, W=4 ≥ 60% of the ceiling's", pass(r >= 0.6), fmt.Sprintf("%s/s vs %s/s = %.0f%%", human(head.Capacity), human(ceil.Capacity), 100*r))
	}
	var asynqCap float64
	for _, r := range b.rep.Rows {
		if strings.HasPrefix(r.Group, "asynq") {
			asynqCap = max(asynqCap, r.Capacity)
		}
	}
	if head != nil && head.Capacity > 0 && asynqCap > 0 {
		r := head.Capacity / asynqCap
		add(false, "CPU capacity at B=100, W=4 ≥ 20× asynq's best", pass(r >= 20), fmt.Sprintf("%s/s vs %s/s = %.1f×", human(head.Capacity), human(asynqCap), r))
	}
	name = "push ≥ 1,000,000 items/s (one `coordinator push -f FILE`)"
	var coord *row
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if strings.HasPrefix(r.Group, "coordinator") && r.PushRate != nil && (coord == nil || r.Items > coord.Items) {
			coord = r
		}
	}
	if coord == nil {
		detail := "the coordinator push rows did not run"
		for _, r := range b.rep.Rows {
			if strings.HasPrefix(r.Group, "coordinator") && r.NotRun != "" {
				detail = "not run: " + r.NotRun
				break
			}
		}
		if head != nil && head.PushRate != nil {
			detail += fmt.Sprintf("; in-process queue.Pusher: %s items/s", human(head.PushRate.Median))
		}
		add(true, name, "NOT RUN", detail)
	} else {
		add(true, name, pass(coord.PushRate.Median >= 1e6), fmt.Sprintf("%s items/s pushing %s lines", human(coord.PushRate.Median), human(float64(coord.Items))))
		if coord.PushCPU != nil && coord.ClientCPU != nil {
			c := min(1e5 / *coord.PushCPU, float64(runtime.NumCPU())*1e5/(*coord.PushCPU+*coord.ClientCPU))
			add(false, "CPU capacity of `coordinator push` ≥ 1,000,000 items/s", pass(c >= 1e6), fmt.Sprintf("%s items/s: Redis %.2f µs/item, coordinator %.2f µs/item", human(c), *coord.PushCPU*10, *coord.ClientCPU*10))
		}
	}
	if head != nil && head.PushRate != nil {
		add(false, "push ≥ 1,000,000 items/s (in-process queue.Pusher, 200k items)", pass(head.PushRate.Median >= 1e6),
			fmt.Sprintf("%s items/s (B=100 W=4 row)", human(head.PushRate.Median)))
	}
	name = "≤ 64 bytes of Redis memory per queued item beyond its payload"
	var worst float64
	var worstName string
	for _, r := range b.rep.Rows {
		if (strings.HasPrefix(r.Group, "workq") || strings.HasPrefix(r.Group, "coordinator")) && r.BytesPerItem != nil && *r.BytesPerItem > worst {
			worst, worstName = *r.BytesPerItem, r.Group+" "+r.Name
		}
	}
	if worstName == "" {
		add(true, name, "NOT RUN", "needs a workq or coordinator row")
	} else {
		add(true, name, pass(worst <= 64), fmt.Sprintf("worst %.1f B/item (%s), payload %d B", worst, worstName, payloadBytes))
	}

	var bounded []string
	var rssOK = true
	var rss []float64
	for _, r := range b.rep.Rows {
		if strings.HasPrefix(r.Group, "coordinator") && r.RSSMiB != nil {
			bounded = append(bounded, fmt.Sprintf("%s: %.1f MiB", r.Name, *r.RSSMiB))
			rss = append(rss, *r.RSSMiB)
		}
	}
	if len(rss) > 0 {
		rssOK = rss[len(rss)-1] <= 1.5*rss[0]+16 && slices.Max(rss) <= 256
		add(false, "coordinator push runs in bounded memory (peak RSS flat as the file grows, ≤ 256 MiB)", pass(rssOK), strings.Join(bounded, ", "))
	} else {
		add(false, "coordinator push runs in bounded memory", "NOT RUN", "the coordinator push rows did not run")
	}
	if n := len(b.rep.RSSFlat); n >= 2 {
		first, last := b.rep.RSSFlat[0], b.rep.RSSFlat[n-1]
		ok := last.RSSMiB <= 1.25*first.RSSMiB+8
		add(false, "worker RSS flat as the queue grows", pass(ok), fmt.Sprintf("%s items: %.1f MiB → %s items: %.1f MiB",
			human(float64(first.Items)), first.RSSMiB, human(float64(last.Items)), last.RSSMiB))
	}
	if l := b.rep.Latency; l != nil {
		add(false, "an item pushed into an idle Job starts within 10 ms (median)", pass(l.P50ms <= 10), fmt.Sprintf("p50 %.2f ms, p99 %.2f ms over %d pushes", l.P50ms, l.P99ms, l.Pushes))
	}
}

func (b *bench) notes() {
	b.rep.Notes = []string{
		fmt.Sprintf("items are %d-byte strings; push rates include creating no Job (it exists), drain rates run from starting the workers to the last one exiting (workq: Job drained and detected; asynq: every task handled and acked)", payloadBytes),
		fmt.Sprintf("ceiling: %d goroutines on one go-redis client, one Lua call to lease N (LPOP N + ZADD) and one to ack (ZREM + INCRBY); per-item lease = one zset entry per item, per-batch = one zset entry per batch, its items in a list under the lease id", b.cfg.ceilWorkers),
		fmt.Sprintf("workq: W queue.Workers in one child process, each with its own Client and ID, Concurrency %d, heartbeat %s, lease 30s (default), batch size from the Job spec; ×ceiling compares with the per-item ceiling at the same N (asynq: N=1)", workerConcurrency, workerHeartbeat),
		"peak RSS is VmHWM (/proc/PID/status) of the process that drained: for in-process rows the child reports its own at the end of the drain (all W workers of a row share that process, whose binary also holds the ceiling and asynq code); worker and coordinator processes are polled every 5 ms",
		"Redis B/item is the growth of INFO used_memory over the push divided by the items, minus the payload; Redis CPU is used_cpu_user+used_cpu_sys over the phase, per 100k items",
		fmt.Sprintf("asynq: enqueued by %d goroutines with Client.Enqueue (one Lua call per task; asynq has no batch enqueue), drained by one Server", asynqEnqueuers),
	}
}

// busy reports whether a load average line ("1m 5m 15m") shows more
// runnable work than CPUs in the last minute.
func busy(load string) bool {
	f := strings.Fields(load)
	if len(f) == 0 {
		return false
	}
	l, err := strconv.ParseFloat(f[0], 64)
	return err == nil && l > float64(runtime.NumCPU())
}
