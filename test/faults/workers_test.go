//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
)

// scenarioKill9: 100,000 items, 8 workers, a random one killed with
// SIGKILL every 300ms and replaced at once.
func scenarioKill9(t *testing.T) []row {
	// In flight at a kill: the batch running and the one leased next.
	r := killEvery300ms(t, "kill9", 100_000, 2*kill9Batch, nil)
	r.Scenario = fmt.Sprintf("1. %d workers, a random one `kill -9`ed every 300 ms and replaced", kill9Workers)
	return []row{r}
}

// scenarioKill9Sharded: scenario 1 on a Job sharded over 3 slots, whose
// workers each work on every shard.
func scenarioKill9Sharded(t *testing.T) []row {
	r := killEvery300ms(t, "kill9s", 60_000, 2*kill9Batch, nil, "--shards", "3")
	r.Scenario = fmt.Sprintf("1s. as 1, on a Job of 3 shards (`--shards 3`), %d items", r.Items)
	return []row{r}
}

// scenarioKill9Fast: scenario 1 with workers of fast items (fastworker,
// a queue.Worker process whose items take microseconds), which lease
// several batches a call and settle those that end together in one call.
func scenarioKill9Fast(t *testing.T) []row {
	bin := fastWorker(t)
	r := killEvery300ms(t, "kill9f", 300_000, heldAtKill, func(e *env, name, job string) *testkit.Proc {
		return testkit.Start(e.t, testkit.Command{Name: name, Bin: bin, Args: []string{job, name},
			Env: []string{"WORKQ_REDIS_URL=" + e.url, "OUT=" + e.out}})
	})
	r.Scenario = fmt.Sprintf("1f. as 1, with workers of fast items (a `queue.Worker` process each): several leases a call, %d items", r.Items)
	r.Note = fmt.Sprintf("batch %d, lease 2s, up to 8 leases a call; executed twice: items that had run but were not yet settled when their worker was killed (done leases are settled within 2 ms, so this is the work of a few ms per kill, not a fixed number of batches); bound: what the killed workers held, read while each was frozen before its kill", kill9Batch)
	return []row{r}
}

// fastWorker builds test/faults/fastworker once and returns its path.
var fastWorker = func() func(t *testing.T) string {
	var once sync.Once
	var bin string
	var err error
	return func(t *testing.T) string {
		t.Helper()
		once.Do(func() {
			dir, derr := os.MkdirTemp("", "workq-fastworker-*")
			if derr != nil {
				err = derr
				return
			}
			bin = filepath.Join(dir, "fastworker")
			out, berr := exec.Command("go", "build", "-o", bin, "github.com/workq/workq/test/faults/fastworker").CombinedOutput()
			if berr != nil {
				err = fmt.Errorf("build fastworker: %v\n%s", berr, out)
			}
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
		return bin
	}
}()

const (
	kill9Workers = 8
	kill9Batch   = 50
	// heldAtKill (for killEvery300ms) bounds re-runs by what each killed
	// worker held.
	heldAtKill = -1
)

// killEvery300ms runs n items through kill9Workers workers, a random one
// killed with SIGKILL every 300ms and replaced at once, and accounts for
// every item against the execution log. startWorker starts a worker (nil:
// the worker binary with batchCmd).
//
// inFlight bounds the items a worker may have run but not yet settled at
// its kill (they run again); heldAtKill: what the worker held in Redis,
// read while it is frozen just before the kill (a Job of one shard).
func killEvery300ms(t *testing.T, job string, n int, inFlight int, startWorker func(e *env, name, job string) *testkit.Proc, create ...string) row {
	e := newEnv(t)
	const batch, workers = kill9Batch, kill9Workers
	if startWorker == nil {
		startWorker = func(e *env, name, job string) *testkit.Proc { return e.worker(name, job, "", nil, nil) }
	}
	file, items := writeItems(t, job, n)
	e.coord(append([]string{"create", job, "--batch-size", strconv.Itoa(batch), "--lease", "2s", "--backoff-limit", "1000000"}, create...)...)
	e.coord("push", job, "-f", file, "--seal")
	e.serve("serve")

	start := time.Now()
	var all []*testkit.Proc
	live := map[*testkit.Proc]bool{}
	names := map[*testkit.Proc]string{}
	spawn := func() {
		name := fmt.Sprintf("worker-%d", len(all)+1)
		p := startWorker(e, name, job)
		all = append(all, p)
		live[p] = true
		names[p] = name
	}
	for range workers {
		spawn()
	}
	killed := map[*testkit.Proc]bool{}
	var held int64 // what the killed workers held (heldAtKill)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		<-tick.C
		require.True(t, time.Now().Before(deadline), "the Job was not drained within 2 minutes: %+v", e.status(job).Items)
		if s := e.status(job); s.Done || s.Phase.Finished() {
			break
		}
		var cands []*testkit.Proc
		for p := range live {
			if p.Exited() {
				delete(live, p)
				continue
			}
			cands = append(cands, p)
		}
		if len(cands) == 0 {
			continue
		}
		victim := cands[rand.IntN(len(cands))]
		if inFlight == heldAtKill && victim.TrySignal(syscall.SIGSTOP) == nil {
			held += e.heldBy(job, names[victim])
		}
		victim.Kill()
		killed[victim] = true
		delete(live, victim)
		spawn()
	}
	done := e.waitComplete(job, time.Minute)
	for _, p := range all {
		if !killed[p] {
			require.Equal(t, 0, p.Wait(t, 30*time.Second), "a worker that was not killed exits 0: %s", p)
		}
	}
	bound := held
	if inFlight != heldAtKill {
		bound = int64(len(killed) * inFlight)
	}
	r := e.account(job, items, bound)
	r.Faults = len(killed)
	r.TimeToComplete = done.Sub(start)
	r.Note = fmt.Sprintf("batch %d, lease 2s, `--batch-exec`", batch)
	return r
}

// slowBatch records a batch, waits while hold.<worker> exists (see
// env.hold; meanwhile the file waiting.<worker> says so) and then takes
// 300ms.
var slowBatch = []string{"--batch-exec", "--", "sh", "-c",
	`awk -v w="$WORKQ_WORKER_ID" -v f="$WORKQ_FENCE" '{ print $0, w, f }' >> "$OUT/out.$WORKQ_WORKER_ID.$$"; ` +
		`while [ -e "$OUT/hold.$WORKQ_WORKER_ID" ]; do : > "$OUT/waiting.$WORKQ_WORKER_ID"; sleep 0.05; done; sleep 0.3`}

// What a worker logs when Redis refused results of leases that had been
// taken over (staleLog), and when a heartbeat told it that leases it held
// were taken over (lostLog).
const (
	staleLog = "stale results refused"
	lostLog  = "leases expired and were taken over"
)

// scrape reads one counter from a worker's /metrics; ok is false when the
// endpoint does not answer.
func scrape(addr, metric string) (float64, bool) {
	_, body, err := testkit.HTTP(http.MethodGet, "http://"+addr+"/metrics", "")
	if err != nil {
		return 0, false
	}
	re := regexp.MustCompile(`(?m)^` + metric + `\{[^}]*\} ([0-9.e+]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, true
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v, true
}

// takeoverScenario runs the shape shared by the frozen and the cut-off
// worker: worker A (metrics on) works alone until it has run batches, the
// fault hits it (freeze or cut) while it runs a batch, two peers start,
// the fault heals once A's leases have been taken over, and A's late
// results must be refused or dropped while the Job is still unsealed (so
// A is still there to ask). Then the Job is sealed and must complete with
// every item counted once.
func takeoverScenario(t *testing.T, e *env, job, urlA string, hit, heal func(a *testkit.Proc)) row {
	const n, batch, lease = 1200, 10, 3 * time.Second
	file, items := writeItems(t, job, n)
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", lease.String(), "--backoff-limit", "1000")
	e.coord("push", job, "-f", file)
	e.serve("serve")
	metrics := testkit.FreeAddr(t)
	start := time.Now()
	a := e.worker("worker-A", job, urlA, []string{"--metrics-listen", metrics}, slowBatch)
	testkit.Eventually(t, 30*time.Second, "worker A runs batches", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded >= 2*batch, fmt.Sprintf("%+v", s.Items)
	})
	// The fault hits while A runs a batch: A holds it, and its command
	// ends while A is frozen or cut off, so A has late results to send.
	e.hold("worker-A")
	testkit.Eventually(t, 30*time.Second, "a batch of worker A waits at the hold", func() (bool, string) {
		_, err := os.Stat(filepath.Join(e.out, "waiting.worker-A"))
		return err == nil, fmt.Sprint(err)
	})
	hit(a)
	faultAt := time.Now()
	aTokens := e.leaseTokens(job)
	require.NotEmpty(t, aTokens, "worker A holds leases when the fault hits")
	e.release("worker-A")
	held := e.status(job).Items.Leased
	b := e.worker("worker-B", job, "", nil, slowBatch)
	c := e.worker("worker-C", job, "", nil, slowBatch)
	// The fault lasts until A's leases have been taken over: they expire
	// about a lease after A's last heartbeat, and a peer or the controller
	// takes them over.
	testkit.Eventually(t, time.Minute, "A's leases taken over", func() (bool, string) {
		lost, err := call(func(ctx context.Context) ([]string, error) {
			return e.rdb.ZRange(ctx, store.KeysFor(job).Key("lost"), 0, -1).Result()
		})
		require.NoError(t, err)
		for _, tok := range aTokens {
			if !slices.Contains(lost, tok) {
				return false, fmt.Sprintf("A's leases %v, taken over %v", aTokens, lost)
			}
		}
		return true, ""
	})
	fault := time.Since(faultAt)
	takeovers := e.status(job).Items.Takeovers
	heal(a)

	// A's late results must not count (account checks it). A should also
	// say that its lease was taken over: Redis refuses its late results,
	// or a heartbeat tells it first and it drops them.
	t.Run("TheWorkerReportsItsLeaseTakenOver", func(t *testing.T) {
		testkit.Eventually(t, 30*time.Second, "worker A reports its late results refused or dropped", func() (bool, string) {
			stale, ok1 := scrape(metrics, "workq_worker_stale_acks_total")
			lost, ok2 := scrape(metrics, "workq_worker_leases_lost_total")
			refused := stale > 0 && outputHas(a, staleLog)
			dropped := lost > 0 && outputHas(a, lostLog)
			return ok1 && ok2 && (refused || dropped), fmt.Sprintf("stale %v, lost %v (answered %v %v); A's output:\n%s", stale, lost, ok1, ok2, a.Output())
		})
	})
	stale, _ := scrape(metrics, "workq_worker_stale_acks_total")
	lost, _ := scrape(metrics, "workq_worker_leases_lost_total")
	e.coord("seal", job)
	done := e.waitComplete(job, 2*time.Minute)
	for _, p := range []*testkit.Proc{a, b, c} {
		require.Equal(t, 0, p.Wait(t, 30*time.Second), "exits 0 once the Job is drained: %s", p)
	}
	// A's running batch and the one it had leased next may run twice.
	r := e.account(job, items, 2*batch)
	r.Faults = 1
	r.TimeToComplete = done.Sub(start)
	r.Note = fmt.Sprintf("batch %d, lease %s; the fault lasted until A's leases were taken over (%s); %d items held by A, %d leases taken over; A's late results not counted; when the Job was sealed A had reported %.0f refused by Redis (`workq_worker_stale_acks_total`) and %.0f leases taken over (`workq_worker_leases_lost_total`)",
		batch, lease, fault.Round(100*time.Millisecond), held, takeovers, stale, lost)
	return r
}

// scenarioSIGSTOP: a worker frozen with SIGSTOP for longer than its lease,
// then SIGCONT.
func scenarioSIGSTOP(t *testing.T) []row {
	e := newEnv(t)
	r := takeoverScenario(t, e, "frozen", "",
		func(a *testkit.Proc) { a.Signal(t, syscall.SIGSTOP) },
		func(a *testkit.Proc) { a.Signal(t, syscall.SIGCONT) })
	r.Scenario = "2. a worker frozen (SIGSTOP) past its lease, then SIGCONT"
	return []row{r}
}

// scenarioPartition: a worker cut off from Redis by a TCP proxy for longer
// than its lease, then reconnected.
func scenarioPartition(t *testing.T) []row {
	e := newEnv(t)
	px := newProxy(t, e.srv.Addr)
	r := takeoverScenario(t, e, "cutoff", px.URL(),
		func(*testkit.Proc) { px.Cut() },
		func(*testkit.Proc) { px.Restore() })
	r.Scenario = "4. a worker cut off from Redis (TCP proxy drops its connections) past its lease, then reconnected"
	require.Positive(t, px.Cuts(), "the proxy cut the worker off")
	return []row{r}
}

// scenarioPushCut: the connections between `coordinator push` and Redis
// are dropped every 100ms while it loads; the Redis client sends again what
// lost its reply, and no item may be appended twice.
func scenarioPushCut(t *testing.T) []row {
	e := newEnv(t)
	px := newProxy(t, e.srv.Addr)
	const n, batch = 300_000, 500
	file, items := writeItems(t, "p", n)
	job := "push-cut"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch))
	push := e.startCoord("push", px.URL(), "push", job, "-f", file, "--seal")
	// 100ms apart, a drop hits at most one or two of the client's quick
	// retries of a round trip, so the push itself goes through.
	stop := testkit.Repeat(t, 100*time.Millisecond, px.Drop)
	push.Wait(t, time.Minute)
	stop()
	cuts := px.Cuts()
	require.Equal(t, 0, push.Wait(t, time.Minute), "the push retries through dropped connections: %s", push)
	require.Contains(t, push.Output(), fmt.Sprintf("pushed %d items", n))
	require.Equal(t, int64(n), e.llen(job), "each item appended once")
	e.requireWhole(job, items, n)
	e.serve("serve")
	start := time.Now()
	w1 := e.worker("worker-1", job, "", nil, nil)
	w2 := e.worker("worker-2", job, "", nil, nil)
	done := e.waitComplete(job, time.Minute)
	require.Equal(t, 0, w1.Wait(t, 30*time.Second), w1)
	require.Equal(t, 0, w2.Wait(t, 30*time.Second), w2)
	r := e.account(job, items, 0)
	r.Scenario = "4b. `coordinator push` with its Redis connections dropped every 100 ms"
	r.Faults = cuts
	r.TimeToComplete = done.Sub(start)
	r.Note = "push exit 0, each item once in Redis, whole and in order (before chunk ids, chunks were appended twice: tens of thousands of extra items)"
	return []row{r}
}

// scenarioServeKill: the controller killed with SIGKILL mid-run, twice,
// and restarted.
func scenarioServeKill(t *testing.T) []row {
	e := newEnv(t)
	const n, batch = 20_000, 20
	file, items := writeItems(t, "s", n)
	job := "serve-kill"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "2s")
	e.coord("push", job, "-f", file, "--seal")
	srv := e.serve("serve-1")
	start := time.Now()
	var ws []*testkit.Proc
	for i := range 4 {
		ws = append(ws, e.worker(fmt.Sprintf("worker-%d", i), job, "", nil, nil))
	}
	kills := 0
	for _, frac := range []int64{4, 2} {
		testkit.Eventually(t, time.Minute, "progress before killing serve", func() (bool, string) {
			s := e.status(job)
			return s.Items.Succeeded >= n/frac, fmt.Sprintf("%+v", s.Items)
		})
		srv.Kill()
		kills++
		time.Sleep(300 * time.Millisecond) // the controller stays dead a moment
		srv = e.serve(fmt.Sprintf("serve-%d", kills+1))
	}
	done := e.waitComplete(job, time.Minute)
	for _, p := range ws {
		require.Equal(t, 0, p.Wait(t, 30*time.Second), p)
	}
	r := e.account(job, items, 0)
	r.Scenario = "5. the coordinator (`serve`) `kill -9`ed and restarted mid-run"
	r.Faults = kills
	r.TimeToComplete = done.Sub(start)
	r.Note = "4 workers, batch 20; nothing runs twice: workers do not need the controller"
	return []row{r}
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "redis-server (version unknown)"
	}
	f := strings.Fields(string(out))
	for _, x := range f {
		if strings.HasPrefix(x, "v=") {
			return "redis-server " + strings.TrimPrefix(x, "v=")
		}
	}
	return strings.TrimSpace(string(out))
}
