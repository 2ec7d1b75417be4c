package main

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// The groups of the table's rows.
const (
	groupCeiling = "ceiling"
	groupWorkq   = "workq (queue.Worker, no-op Handler)"
	groupBinary  = "worker binary (--batch-exec -- true)"
	groupDefault = "scheduling: no --batch-size given, no-op items"
	groupAsynq   = "asynq v0.26.0 (no-op handler)"
	groupPush    = "coordinator push -f FILE (1 run)"
	groupRun     = "one command per item, 2 at a time"
	groupVolume  = "scale row (binaries, B=1000, 1 run)"
)

// defaultBatchSize is the Job's batch size when none is given: the rows
// without one are compared with the ceilings at this N.
const defaultBatchSize = 1000

// find returns the row of group and name that measured something, or nil.
func (b *bench) find(group, name string) *row {
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.Group == group && r.Name == name && (r.DrainRate != nil || r.PushRate != nil) {
			return r
		}
	}
	return nil
}

// ceilingRow returns the ceiling row of a lease kind at batch n, or nil.
func (b *bench) ceilingRow(kind string, n int) *row {
	name := map[string]string{leasePerItem: "per-item lease", leasePerBatch: "per-batch lease", leaseFenced: "fenced per-batch lease"}[kind]
	r := b.find(groupCeiling, fmt.Sprintf("%s N=%d W=%d", name, n, b.cfg.ceilWorkers))
	if r == nil || r.DrainRate == nil {
		return nil
	}
	return r
}

// asynqBest returns asynq's row with the best median drain rate, or nil.
func (b *bench) asynqBest() *row {
	var best *row
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.Group == groupAsynq && r.DrainRate != nil && (best == nil || r.DrainRate.Median > best.DrainRate.Median) {
			best = r
		}
	}
	return best
}

// compare fills the ratio columns: each drain over the ceilings at the
// same batch size (asynq: N=1; no batch size given: the default) and over
// asynq's best.
func (b *bench) compare() {
	best := b.asynqBest()
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.DrainRate == nil || r.Group == groupRun || r.Group == groupVolume {
			continue
		}
		n := r.Batch
		switch {
		case r.Group == groupAsynq:
			n = 1
		case n == 0:
			n = defaultBatchSize
		}
		for _, c := range []struct {
			kind string
			dst  *float64
		}{{leasePerItem, &r.VsItemCeiling}, {leasePerBatch, &r.VsBatchCeiling}, {leaseFenced, &r.VsFencedCeiling}} {
			if c2 := b.ceilingRow(c.kind, n); c2 != nil {
				*c.dst = r.DrainRate.Median / c2.DrainRate.Median
			}
		}
		if best != nil {
			r.VsAsynq = r.DrainRate.Median / best.DrainRate.Median
		}
	}
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (b *bench) add(target bool, name, result, detail string) {
	b.rep.Checks = append(b.rep.Checks, check{Name: name, Result: result, Detail: detail, Target: target})
}

// ratioCheck adds a check that row a's median drain is at least min × row
// b's, or NOT RUN naming what is missing.
func (b *bench) ratioCheck(target bool, name string, a, c *row, need string, min float64, missing string) {
	if a == nil || c == nil {
		if target {
			b.add(target, name, "NOT RUN", "needs "+missing)
		}
		return
	}
	r := a.DrainRate.Median / c.DrainRate.Median
	b.add(target, name, pass(r >= min), fmt.Sprintf("%s/s vs %s/s = %.2f× (%s)", human(a.DrainRate.Median), human(c.DrainRate.Median), r, need))
}

// capacityCheck is ratioCheck on CPU capacity, which other load on the
// machine does not change.
func (b *bench) capacityCheck(name string, a, c *row, min float64) {
	if a == nil || c == nil || a.Capacity == 0 || c.Capacity == 0 {
		return
	}
	r := a.Capacity / c.Capacity
	b.add(false, name, pass(r >= min), fmt.Sprintf("%s/s vs %s/s = %.2f×", human(a.Capacity), human(c.Capacity), r))
}

func (b *bench) checks() {
	if busy(b.rep.Machine.LoadStart) || busy(loadAvg()) {
		b.add(false, "the machine was otherwise idle", "WARN", fmt.Sprintf("load average %s at the start, %s at the end on %d CPUs: other work shared the machine, so the wall-clock targets below are unreliable; the CPU columns and CPU capacity checks are not affected",
			b.rep.Machine.LoadStart, loadAvg(), runtime.NumCPU()))
	}
	b.throughputChecks()
	b.commandChecks()
	b.memoryChecks()
	b.schedulingChecks()
	b.scaleChecks()
}

// throughputChecks are issue 12's drain targets and issue 13's "no
// --batch-size given" ones.
func (b *bench) throughputChecks() {
	w1000 := b.find(groupWorkq, fmt.Sprintf("B=1000 W=%d", profiledWorkers))
	w100 := b.find(groupWorkq, "B=100 W=4")
	c1000 := b.ceilingRow(leasePerBatch, 1000)
	c100 := b.ceilingRow(leasePerBatch, 100)
	f1000 := b.ceilingRow(leaseFenced, 1000)
	f100 := b.ceilingRow(leaseFenced, 100)
	best := b.asynqBest()

	name := "queue.Worker B=1000 W=4 drains ≥ 1.0M items/s"
	if w1000 == nil {
		b.add(true, name, "NOT RUN", "needs the workq B=1000 W=4 row")
	} else {
		b.add(true, name, pass(w1000.DrainRate.Median >= 1e6), fmt.Sprintf("%s items/s (capacity by CPU cost %s/s)", human(w1000.DrainRate.Median), human(w1000.Capacity)))
	}
	b.ratioCheck(true, "queue.Worker B=1000 W=4 ≥ 0.55× the per-batch ceiling at N=1000", w1000, c1000, "need ≥ 0.55×", 0.55, "the workq B=1000 W=4 and per-batch ceiling N=1000 rows")
	name = "queue.Worker B=1000 W=4: Redis CPU ≤ 0.10 s per 100k items"
	if w1000 == nil || w1000.DrainCPU == nil {
		b.add(true, name, "NOT RUN", "needs the workq B=1000 W=4 row")
	} else {
		detail := fmt.Sprintf("%.3f s per 100k", *w1000.DrainCPU)
		if f1000 != nil && f1000.DrainCPU != nil {
			detail += fmt.Sprintf("; fenced ceiling N=1000: %.3f", *f1000.DrainCPU)
		}
		b.add(true, name, pass(*w1000.DrainCPU <= 0.10), detail)
	}
	b.ratioCheck(true, "queue.Worker B=100 W=4 ≥ 0.6× the per-batch ceiling at N=100", w100, c100, "need ≥ 0.6×", 0.6, "the workq B=100 W=4 and per-batch ceiling N=100 rows")
	b.ratioCheck(true, "queue.Worker B=1000 W=4 ≥ 130× asynq's best", w1000, best, "need ≥ 130×", 130, "the workq B=1000 W=4 and asynq rows")
	bin := b.find(groupBinary, fmt.Sprintf("B=1000, %d processes", b.cfg.binaryProcesses))
	b.ratioCheck(true, "worker binary --batch-exec B=1000, 4 processes ≥ 0.7× queue.Worker B=1000 W=4", bin, w1000, "need ≥ 0.7×", 0.7, "the worker binary B=1000 and workq B=1000 W=4 rows")

	// Beside the fenced ceilings, which do workq's fencing work and
	// nothing more, and on CPU cost, which other load does not change.
	b.ratioCheck(false, "queue.Worker B=1000 W=4 against the fenced ceiling at N=1000 (≥ 0.55×)", w1000, f1000, "same bar as the per-batch one", 0.55, "the fenced ceiling N=1000 row")
	b.ratioCheck(false, "queue.Worker B=100 W=4 against the fenced ceiling at N=100 (≥ 0.6×)", w100, f100, "same bar as the per-batch one", 0.6, "the fenced ceiling N=100 row")
	b.capacityCheck("CPU capacity of queue.Worker B=1000 W=4 ≥ 0.55× the per-batch ceiling's at N=1000", w1000, c1000, 0.55)
	b.capacityCheck("CPU capacity of queue.Worker B=1000 W=4 ≥ 0.55× the fenced ceiling's at N=1000", w1000, f1000, 0.55)
	b.capacityCheck("CPU capacity of queue.Worker B=100 W=4 ≥ 0.6× the per-batch ceiling's at N=100", w100, c100, 0.6)
	var asynqCap *row
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.Group == groupAsynq && r.Capacity > 0 && (asynqCap == nil || r.Capacity > asynqCap.Capacity) {
			asynqCap = r
		}
	}
	b.capacityCheck("CPU capacity of queue.Worker B=1000 W=4 ≥ 130× asynq's best", w1000, asynqCap, 130)

	// Issue 13: tiny items with no batch size given reach the same targets.
	dw := b.find(groupDefault, "queue.Worker W=4")
	name = "no --batch-size given, queue.Worker W=4: ≥ 1.0M items/s, ≥ 0.55× the per-batch ceiling at N=1000, Redis CPU ≤ 0.10 s per 100k"
	switch {
	case dw == nil || c1000 == nil || dw.DrainCPU == nil:
		b.add(true, name, "NOT RUN", "needs the scheduling queue.Worker W=4 and per-batch ceiling N=1000 rows")
	default:
		r := dw.DrainRate.Median / c1000.DrainRate.Median
		ok := dw.DrainRate.Median >= 1e6 && r >= 0.55 && *dw.DrainCPU <= 0.10
		b.add(true, name, pass(ok), fmt.Sprintf("%s items/s, %.2f× the ceiling's %s/s, Redis CPU %.3f s per 100k",
			human(dw.DrainRate.Median), r, human(c1000.DrainRate.Median), *dw.DrainCPU))
	}
	db := b.find(groupDefault, fmt.Sprintf("worker --batch-exec -- true, %d processes", b.cfg.binaryProcesses))
	b.ratioCheck(true, "no --batch-size given, worker binary --batch-exec, 4 processes ≥ 0.7× queue.Worker W=4", db, dw, "need ≥ 0.7×", 0.7, "both scheduling throughput rows")
}

// commandChecks are the command-per-item and push targets.
func (b *bench) commandChecks() {
	runs := "1 run each"
	if b.cfg.runRuns > 1 {
		runs = fmt.Sprintf("best of %d runs each", b.cfg.runRuns)
	}
	name := fmt.Sprintf("`coordinator run -p 2 -- true` over %s items within 5%% of `xargs -P 2 -n 1 true` (%s)", human(float64(b.cfg.runItems)), runs)
	run := b.find(groupRun, runEmbedded)
	xargs := b.find(groupRun, runXargs)
	if run == nil || xargs == nil {
		b.add(true, name, "NOT RUN", "needs the coordinator run and xargs rows")
	} else {
		r := run.DrainRate.Max / xargs.DrainRate.Max
		b.add(true, name, pass(r >= 0.95), fmt.Sprintf("%s items/s vs %s items/s = %.1f%%", human(run.DrainRate.Max), human(xargs.DrainRate.Max), 100*r))
	}
	if r2 := b.find(groupRun, runRedis); r2 != nil && xargs != nil {
		r := r2.DrainRate.Max / xargs.DrainRate.Max
		b.add(false, "the same with --redis (the bench's redis-server) within 5% of xargs", pass(r >= 0.95),
			fmt.Sprintf("%s items/s vs %s items/s = %.1f%%", human(r2.DrainRate.Max), human(xargs.DrainRate.Max), 100*r))
	}

	name = "push ≥ 1,000,000 items/s (one `coordinator push -f FILE`)"
	var coord *row
	for i := range b.rep.Rows {
		r := &b.rep.Rows[i]
		if r.Group == groupPush && r.PushRate != nil && (coord == nil || r.Items > coord.Items) {
			coord = r
		}
	}
	if coord == nil {
		detail := "the coordinator push rows did not run"
		for _, r := range b.rep.Rows {
			if r.Group == groupPush && r.NotRun != "" {
				detail = "not run: " + r.NotRun
				break
			}
		}
		b.add(true, name, "NOT RUN", detail)
	} else {
		b.add(true, name, pass(coord.PushRate.Median >= 1e6), fmt.Sprintf("%s items/s pushing %s lines", human(coord.PushRate.Median), human(float64(coord.Items))))
		if coord.PushCPU != nil && coord.ClientCPU != nil {
			c := min(1e5 / *coord.PushCPU, float64(runtime.NumCPU())*1e5/(*coord.PushCPU+*coord.ClientCPU))
			b.add(false, "CPU capacity of `coordinator push` ≥ 1,000,000 items/s", pass(c >= 1e6), fmt.Sprintf("%s items/s: Redis %.2f µs/item, coordinator %.2f µs/item", human(c), *coord.PushCPU*10, *coord.ClientCPU*10))
		}
	}
	if w := b.find(groupWorkq, "B=1000 W=4"); w != nil && w.PushRate != nil {
		b.add(false, fmt.Sprintf("push ≥ 1,000,000 items/s (in-process queue.Pusher, %s items)", human(float64(w.Items))), pass(w.PushRate.Median >= 1e6),
			fmt.Sprintf("%s items/s (B=1000 W=4 row)", human(w.PushRate.Median)))
	}
}

// memoryChecks are the memory and latency targets kept from before.
func (b *bench) memoryChecks() {
	name := "≤ 16 bytes of Redis memory per queued item beyond its payload"
	var worst float64
	var worstName string
	for _, r := range b.rep.Rows {
		if (r.Group == groupWorkq || r.Group == groupPush) && r.BytesPerItem != nil && *r.BytesPerItem > worst {
			worst, worstName = *r.BytesPerItem, r.Group+" "+r.Name
		}
	}
	if worstName == "" {
		b.add(true, name, "NOT RUN", "needs a workq or coordinator push row")
	} else {
		b.add(true, name, pass(worst <= 16), fmt.Sprintf("worst %.1f B/item (%s), payload %d B", worst, worstName, payloadBytes))
	}

	var bounded []string
	var rss []float64
	for _, r := range b.rep.Rows {
		if r.Group == groupPush && r.RSSMiB != nil {
			bounded = append(bounded, fmt.Sprintf("%s: %.1f MiB", r.Name, *r.RSSMiB))
			rss = append(rss, *r.RSSMiB)
		}
	}
	if len(rss) > 0 {
		ok := rss[len(rss)-1] <= 1.5*rss[0]+16 && slices.Max(rss) <= 256
		b.add(false, "coordinator push runs in bounded memory (peak RSS flat as the file grows, ≤ 256 MiB)", pass(ok), strings.Join(bounded, ", "))
	}
	name = "worker RSS flat from 10⁴ to 10⁶ queued items"
	if n := len(b.rep.RSSFlat); n >= 2 {
		first, last := b.rep.RSSFlat[0], b.rep.RSSFlat[n-1]
		ok := last.RSSMiB <= 1.25*first.RSSMiB+8
		detail := fmt.Sprintf("%s items: %.1f MiB → %s items: %.1f MiB", human(float64(first.Items)), first.RSSMiB, human(float64(last.Items)), last.RSSMiB)
		if last.Items < 1_000_000 {
			detail += " (this run stopped below 10⁶ items)"
		}
		b.add(true, name, pass(ok), detail)
	} else if b.cfg.want("rss") {
		b.add(true, name, "NOT RUN", "the worker RSS runs did not finish")
	}
	name = "an item pushed into an idle Job starts within 1 ms (median)"
	if l := b.rep.Latency; l != nil {
		b.add(true, name, pass(l.P50ms <= 1), fmt.Sprintf("p50 %.2f ms, p99 %.2f ms over %d pushes", l.P50ms, l.P99ms, l.Pushes))
	} else if b.cfg.want("latency") {
		b.add(true, name, "NOT RUN", "the latency run did not finish")
	}
	if v := b.rep.Volume; v != nil {
		b.add(true, fmt.Sprintf("scale row: %s items pushed and drained at B=1000 with exact counts", human(float64(v.Items))), pass(v.Succeeded == int64(v.Items)),
			fmt.Sprintf("%d succeeded; wall %.1f s (push %.1f s, drain %.1f s); Redis used_memory_peak %.0f MiB; peak RSS coordinator %.1f MiB, workers %.1f MiB",
				v.Succeeded, v.WallSeconds, v.PushSeconds, v.DrainSeconds, v.RedisPeakMiB, v.CoordinatorRSSMiB, v.WorkerRSSMiB))
	} else if b.cfg.want("volume") {
		b.add(true, "scale row: items pushed and drained at B=1000", "NOT RUN", "the scale row did not finish; see errors")
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

func (b *bench) notes() {
	b.rep.Notes = []string{
		fmt.Sprintf("items are %d-byte strings; push rates include creating no Job (it exists); drain rates run from starting the workers to the last one exiting (workq: Job drained, detected and reconciled; asynq: every task handled and acked)", payloadBytes),
		fmt.Sprintf("ceilings: %d goroutines on one go-redis client, each leasing N items with one Lua call and settling them with one more. per-item lease: LPOP N + one zset entry per item, ack ZREM of the items + INCRBY. per-batch lease: one zset entry per batch, its items in a list under the lease id, ack ZREM + DEL + INCRBY. fenced per-batch lease: workq's fencing work and nothing else: a fencing token from a counter, one lease record per batch in workq's format (count|fence|ids|lengths, then the payloads) in a hash under the token, its expiry in a zset, leased/succeeded counters; the settle checks the token is still leased, reads the count from the record and counts the batch once; the client decodes each record into items. None of them checks a Job's incarnation, keeps idempotent request ids, tracks workers or reclaims leases, as workq does", b.cfg.ceilWorkers),
		fmt.Sprintf("workq: W queue.Workers in one child process, each with its own Client and ID, Concurrency %d, heartbeat %s, lease 30s (default), batch size from the Job spec (B=0: none given, the default 1000 as a maximum); a lease call of fast items makes up to 8 leases of at most B items (2000 items in all, or one lease when B is larger), each with its own token, fence and settle, where a ceiling makes one per call; ×item/×batch/×fenced ceil compare with that ceiling at the same N (asynq: N=1; no batch size given: N=1000)", workerConcurrency, workerHeartbeat),
		"worker binary rows: `worker --redis URL --job NAME --batch-exec -- true` processes, each execs `true` once per leased batch; their CPU includes those execs",
		fmt.Sprintf("one command per item: every row runs `true` once per item, 2 at a time, over the same %d items; the wall time runs from starting the command to its exit (coordinator run: create, push, seal, 2 workers, the end); client CPU is the command's with every process it waited for; the best run counts, runs interleaved", b.cfg.runItems),
		"peak RSS is VmHWM (/proc/PID/status) of the process that drained: for in-process rows the child reports its own at the end of the drain (all W workers of a row share that process, whose binary also holds the ceiling and asynq code); worker and coordinator processes are polled every 5 ms",
		"Redis B/item is the growth of INFO used_memory less the clients' buffers (mem_clients_normal) over the last nine tenths of the push (workq rows; asynq: the whole push), divided by those items, minus the payload; Redis CPU is used_cpu_user+used_cpu_sys over the phase, per 100k items; CPU capacity is min(1 core / Redis CPU per item, all cores / (Redis + client CPU per item)), what the drain's CPU cost allows with nothing else running",
		fmt.Sprintf("asynq: enqueued by %d goroutines with Client.Enqueue (one Lua call per task; asynq has no batch enqueue), drained by one Server", asynqEnqueuers),
	}
}
