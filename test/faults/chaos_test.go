//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// The randomized fault schedule's settings. WORKQ_CHAOS_DURATION (a Go
// duration) runs it longer than the suite's default; WORKQ_CHAOS_SEED
// replays a schedule (the faults and their parameters; the timing of the
// processes is the machine's).
const (
	chaosDurationEnv = "WORKQ_CHAOS_DURATION"
	chaosSeedEnv     = "WORKQ_CHAOS_SEED"
	chaosDefault     = 60 * time.Second
	chaosWorkers     = 4  // workers kept running for the current incarnation
	chaosMaxProcs    = 12 // workers alive at once, stopped ones included
	chaosMaxAttempts = 3  // --max-attempts of every incarnation
	chaosSettle      = 2 * time.Minute
	chaosJob         = "chaos"
)

// Fault kinds, the keys of the schedule's counts.
const (
	faultKill      = "worker kill -9"
	faultStop      = "worker SIGSTOP (0.5-4s)"
	faultDrop      = "all worker connections dropped"
	faultPartition = "workers cut off from Redis (0.5-3s)"
	faultDelay     = "replies delayed 10-80 ms (1-4s)"
	faultPause     = "CLIENT PAUSE (0.5-4s)"
	faultRestart   = "Redis kill -9 and restart (AOF always)"
	faultRecreate  = "Job deleted and created again, same name"
)

// chaosWorker is one worker process of the schedule.
type chaosWorker struct {
	p       *testkit.Proc
	id      string
	killed  bool
	stopped bool
	resume  time.Time // when a stopped worker gets SIGCONT
}

// chaosInc is one incarnation of the Job and what became of it.
type chaosInc struct {
	incarnation
	created  time.Time
	finished bool // seen Complete or Failed (then checked)
	ended    time.Time
	last     jobstate.Status // the last status read
	replaced bool            // deleted while it ran
	st       jobstate.Status
	verdict  verdict
}

// chaos is the state of one run of the schedule; it is used by the test
// goroutine alone.
type chaos struct {
	t       *testing.T
	e       *env
	px      *proxy
	rng     *rand.Rand
	seed    uint64
	faults  map[string]int
	workers []*chaosWorker
	incs    []*chaosInc
	byUID   map[string]*chaosInc
	wseq    int

	delayUntil, cutUntil time.Time
}

// scenarioChaos is the randomized fault schedule (Jepsen-style): for a
// bounded time, faults are picked at random and injected into a running
// system — workers killed with kill -9 and frozen with SIGSTOP, their
// connections dropped, cut and delayed through the proxy, Redis paused
// (CLIENT PAUSE) and killed and restarted with AOF (appendfsync always),
// and the Job deleted and created again under the same name — while
// incarnations of the Job run one after another (a finished one is
// deleted and its name reused). Every incarnation that finished is checked
// against the execution log (incarnation.check); every worker's exit is
// checked against how its incarnation ended. The seed is printed, and a
// failure says how to replay it.
func scenarioChaos(t *testing.T) []row {
	dur := chaosDefault
	if v := os.Getenv(chaosDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "%s must be a duration such as 10m", chaosDurationEnv)
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(chaosSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "%s must be a number", chaosSeedEnv)
		seed = s
	}
	t.Logf("chaos: %s, seed %d (replay the schedule with %s=%d)", dur, seed, chaosSeedEnv, seed)
	fmt.Printf("chaos: %s, seed %d\n", dur, seed)

	redistest.Available(t)
	srv, err := redistest.Start(t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	e := newEnvOn(t, srv.URL(), srv)
	c := &chaos{t: t, e: e, px: newProxy(t, srv.Addr), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed,
		faults: map[string]int{}, byUID: map[string]*chaosInc{}}
	e.serve("serve")
	c.newIncarnation()

	start := time.Now()
	next := start.Add(c.interval())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(start.Add(dur)) {
		c.heal(false)
		c.follow()
		c.replenish(true)
		if time.Now().After(next) {
			c.inject()
			next = time.Now().Add(c.interval())
		}
		<-tick.C
	}

	// No more faults: everything heals, and the last incarnation must
	// finish with every worker.
	c.heal(true)
	settle := time.Now()
	for !c.cur().finished {
		require.Less(t, time.Since(settle), chaosSettle, "seed %d: the last incarnation did not finish within %s of the faults' end: %+v", seed, chaosSettle, c.status())
		c.follow()
		c.replenish(false)
		<-tick.C
	}
	tail := time.Since(settle)
	exits, ends := c.checkWorkers()

	var violations []string
	r := row{Bound: -1, TimeToComplete: tail}
	finished, failed, replaced := 0, 0, 0
	for _, inc := range c.incs {
		switch {
		case inc.finished:
			finished++
			if inc.st.Phase == jobstate.PhaseFailed {
				failed++
			}
			for _, v := range inc.verdict.Violations {
				violations = append(violations, fmt.Sprintf("%s (uid %s): %s", inc.Items[0][:4], inc.UID, v))
			}
			r.Items += int64(len(inc.Items))
			r.Succeeded += inc.st.Items.Succeeded
			r.Dead += inc.st.Items.Dead
			r.ExecutedTwice += int64(inc.verdict.ExecutedTwice)
		case inc.replaced:
			replaced++
		}
	}
	violations = append(violations, exits...)
	require.Empty(t, violations, "seed %d (replay the schedule with %s=%d)", seed, chaosSeedEnv, seed)
	for _, n := range c.faults {
		r.Faults += n
	}
	r.Scenario = fmt.Sprintf("II.chaos. randomized fault schedule for %s (seed %d)", dur.Round(time.Second), seed)
	r.Note = fmt.Sprintf("%d incarnations finished and checked (%d Failed with dead items, as allowed), %d replaced mid-run; %d workers started, %d killed, the others: %s; faults: %s; 0 invariant violations; time to end: after the last fault, until the last incarnation finished",
		finished, failed, replaced, c.wseq, c.count(func(w *chaosWorker) bool { return w.killed }), countList(ends), countList(c.faults))
	if os.Getenv("WORKQ_WRITE_DOCS") == "1" && os.Getenv(chaosDurationEnv) != "" {
		require.NoError(t, writeDocBlock("chaos-long", fmt.Sprintf("Produced by `%s=%s WORKQ_REQUIRE_REDIS=1 WORKQ_WRITE_DOCS=1 go test -tags faults -count=1 -timeout 60m ./test/faults/ -run TestFaultSuite/RandomFaultSchedule -v`\non %s (%d CPUs, %s/%s), %s:\n\n%s",
			chaosDurationEnv, os.Getenv(chaosDurationEnv), time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, redisVersion(), renderTable([]row{r}))))
	}
	return []row{r}
}

func (c *chaos) cur() *chaosInc { return c.incs[len(c.incs)-1] }

// interval is the time to the next fault: 0.3 to 1.5s.
func (c *chaos) interval() time.Duration {
	return 300*time.Millisecond + time.Duration(c.rng.Int64N(int64(1200*time.Millisecond)))
}

// newIncarnation deletes the Job (whatever incarnation is there) and
// creates the next one under the same name, with 200 to 600 items of its
// own.
func (c *chaos) newIncarnation() {
	t, e := c.t, c.e
	k := len(c.incs)
	n := 200 + c.rng.IntN(401)
	file, items := writeItems(t, fmt.Sprintf("i%03d", k), n)
	if r := e.runCoord(time.Minute, "delete", chaosJob); r.Code != 0 {
		require.Contains(t, r.Stderr, "no such job", "seed %d: delete: %s", c.seed, r)
	}
	e.coord("create", chaosJob, "-f", file, "--seal", "--lease", "2s", "--batch-size", "20",
		"--max-attempts", strconv.Itoa(chaosMaxAttempts), "--backoff-limit", "1000000", "--retry-backoff", "100ms")
	st := e.status(chaosJob)
	inc := &chaosInc{incarnation: incarnation{Job: chaosJob, UID: st.UID, Items: items, MaxAttempts: chaosMaxAttempts,
		FailReasons: []string{jobstate.ReasonFailedItems}}, created: time.Now()}
	c.incs = append(c.incs, inc)
	c.byUID[inc.UID] = inc
}

// follow checks the current incarnation once it has finished, and then
// starts the next one.
func (c *chaos) follow() {
	inc := c.cur()
	if inc.finished {
		return
	}
	st, err := c.e.tryStatus(chaosJob)
	if err != nil || st.UID != inc.UID {
		return // Redis restarting or paused: the next tick sees
	}
	inc.last = st
	if !st.Phase.Finished() {
		return
	}
	// Complete and Failed are final: the status and dead items read now
	// are the incarnation's last.
	dead := c.e.dead(chaosJob)
	inc.st, inc.finished, inc.ended = st, true, time.Now()
	inc.verdict = inc.check(st, dead, readRuns(c.t, c.e.out))
	c.t.Logf("chaos: %s finished %s after %s: %+v", inc.Items[0][:4], st.Phase, time.Since(inc.created).Round(time.Millisecond), st.Items)
}

// replenish keeps chaosWorkers workers running for the current
// incarnation, and with next starts the next incarnation once it has
// finished.
func (c *chaos) replenish(next bool) {
	if inc := c.cur(); inc.finished {
		if !next {
			return
		}
		// Its workers end by themselves; the name is reused once they
		// have, or after 10s (a straggler then finds its Job replaced).
		idle := c.count(func(w *chaosWorker) bool { return !w.killed && !w.p.Exited() && !w.stopped }) == 0
		if idle || time.Since(inc.ended) > 10*time.Second {
			c.newIncarnation()
		}
		return
	}
	if st := c.cur().last; st.Done || st.Phase.Stopping() {
		return // drained: its workers are ending; a new one would exit at once
	}
	running := c.count(func(w *chaosWorker) bool { return !w.killed && !w.stopped && !w.p.Exited() })
	alive := c.count(func(w *chaosWorker) bool { return !w.killed && !w.p.Exited() })
	for ; running < chaosWorkers && alive < chaosMaxProcs; running, alive = running+1, alive+1 {
		c.wseq++
		id := fmt.Sprintf("w%03d", c.wseq)
		p := c.e.worker(id, chaosJob, c.px.URL(), []string{"--concurrency", "2", "--grace", "2s"},
			chaosCmd)
		c.workers = append(c.workers, &chaosWorker{p: p, id: id})
	}
}

func (c *chaos) count(ok func(*chaosWorker) bool) int {
	n := 0
	for _, w := range c.workers {
		if ok(w) {
			n++
		}
	}
	return n
}

// pick returns a random worker that runs (not stopped, not exited), or nil.
func (c *chaos) pick() *chaosWorker {
	var ws []*chaosWorker
	for _, w := range c.workers {
		if !w.killed && !w.stopped && !w.p.Exited() {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	return ws[c.rng.IntN(len(ws))]
}

// inject picks a fault at random and injects it.
func (c *chaos) inject() {
	kinds := []struct {
		name   string
		weight int
	}{{faultKill, 5}, {faultStop, 3}, {faultDrop, 3}, {faultPartition, 2}, {faultDelay, 2}, {faultPause, 2}, {faultRestart, 2}, {faultRecreate, 1}}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	x := c.rng.IntN(total)
	var kind string
	for _, k := range kinds {
		if x < k.weight {
			kind = k.name
			break
		}
		x -= k.weight
	}
	// Every parameter is drawn whether it is used or not, so that a seed
	// replays the same schedule whatever the processes did meanwhile.
	d := time.Duration(c.rng.Int64N(int64(3500*time.Millisecond))) + 500*time.Millisecond
	ms := 10 + c.rng.IntN(71)
	w := c.pick()
	if w == nil && (kind == faultKill || kind == faultStop) {
		return
	}
	switch kind {
	case faultKill:
		w.p.Kill()
		w.killed = true
	case faultStop:
		if w.p.TrySignal(syscall.SIGSTOP) != nil {
			return // it ended meanwhile
		}
		w.stopped, w.resume = true, time.Now().Add(d)
	case faultDrop:
		c.px.Drop()
	case faultPartition:
		c.px.Cut()
		c.cutUntil = time.Now().Add(min(d, 3*time.Second))
	case faultDelay:
		c.px.Delay(time.Duration(ms) * time.Millisecond)
		c.delayUntil = time.Now().Add(min(d, 4*time.Second))
	case faultPause:
		_, err := call(func(ctx context.Context) (bool, error) { return c.e.rdb.ClientPause(ctx, d).Result() })
		require.NoError(c.t, err, "seed %d: CLIENT PAUSE", c.seed)
	case faultRestart:
		require.NoError(c.t, c.e.srv.Restart(), "seed %d: restart Redis", c.seed)
	case faultRecreate:
		if inc := c.cur(); !inc.finished {
			inc.replaced = true
		}
		c.newIncarnation()
	}
	c.faults[kind]++
}

// heal ends the faults whose time is over (all of them with all).
func (c *chaos) heal(all bool) {
	now := time.Now()
	for _, w := range c.workers {
		if w.stopped && (all || now.After(w.resume)) {
			_ = w.p.TrySignal(syscall.SIGCONT) // fails only if it was killed meanwhile
			w.stopped = false
		}
	}
	if !c.cutUntil.IsZero() && (all || now.After(c.cutUntil)) {
		c.px.Restore()
		c.cutUntil = time.Time{}
	}
	if !c.delayUntil.IsZero() && (all || now.After(c.delayUntil)) {
		c.px.Delay(0)
		c.delayUntil = time.Time{}
	}
}

// chaosCmd runs an item for 0 to 30 ms; every twentieth item fails its
// first attempt.
var chaosCmd = itemCmd(`sleep 0.0$((WORKQ_ITEM_ID % 4)); [ "$WORKQ_ATTEMPT" -gt 1 ] || [ $((WORKQ_ITEM_ID % 20)) -ne 7 ] || exit 1`)

// uidRE finds the incarnation a worker bound to, in its log.
var uidRE = regexp.MustCompile(`uid=([0-9a-f]+)`)

// checkWorkers waits for every worker that was not killed and checks its
// exit against its incarnation: 0 only if that one did not fail, 1 with
// a reason (replaced, vanished, failed), and failed only if it failed or
// was replaced; never anything else.
func (c *chaos) checkWorkers() (out []string, ends map[string]int) {
	ends = map[string]int{}
	for _, w := range c.workers {
		if w.killed {
			continue
		}
		code := w.p.Wait(c.t, time.Minute)
		lines := strings.Split(strings.TrimSpace(w.p.Stderr()), "\n")
		last := lines[len(lines)-1]
		var inc *chaosInc
		if m := uidRE.FindAllStringSubmatch(w.p.Stderr(), -1); m != nil {
			inc = c.byUID[m[len(m)-1][1]]
		}
		bad := func(why string) { out = append(out, fmt.Sprintf("worker %s: %s: exit %d: %s", w.id, why, code, last)) }
		ends[endOf(code, last)]++
		switch {
		case code == 0 && inc == nil:
			if !strings.Contains(w.p.Stderr(), "job already drained") {
				bad("exit 0 without an incarnation it worked on")
			}
		case code == 0:
			if inc.finished && inc.st.Phase == jobstate.PhaseFailed {
				bad("exit 0 although its incarnation failed")
			}
		case code == 1:
			switch {
			case strings.Contains(last, replaceMsg), strings.Contains(last, "job vanished"):
				if inc != nil && !inc.replaced && inc == c.cur() {
					bad("says its Job was replaced or vanished, but it is the last incarnation and ran to its end")
				}
			case strings.Contains(last, "job failed"):
				switch {
				case inc == nil || !inc.finished || inc.st.Phase == jobstate.PhaseFailed:
				default:
					bad("says the Job failed, but its incarnation ended " + string(inc.st.Phase))
				}
			default:
				bad("exit 1 without a known reason")
			}
		default:
			bad("unexpected exit code")
		}
	}
	return out, ends
}

// endOf names how a worker ended, for the schedule's summary.
func endOf(code int, last string) string {
	switch {
	case code == 0 && strings.Contains(last, "already drained"):
		return "exit 0 (joined a drained Job)"
	case code == 0:
		return "exit 0"
	case strings.Contains(last, replaceMsg):
		return "exit 1 (replaced)"
	case strings.Contains(last, "job vanished"):
		return "exit 1 (vanished)"
	case strings.Contains(last, "job failed"):
		return "exit 1 (failed)"
	}
	return fmt.Sprintf("exit %d", code)
}

// countList renders counts by kind, sorted by kind.
func countList(m map[string]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%d × %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (c *chaos) status() string {
	st, err := c.e.tryStatus(chaosJob)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s %+v", st.Phase, st.Items)
}
