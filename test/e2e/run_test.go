package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// summaryRE is run's last line on stderr.
var summaryRE = regexp.MustCompile(`(?m)^(Complete|Failed|Running|Pending|Failing|Suspended): (\d+)/(\d+) items succeeded, (\d+) retried, (\d+) dead, in [0-9.]+(ms|s|m[0-9.]*s) \((\d+) items/s\)$`)

// run runs `coordinator run ARGS` against this env's Redis (--redis)
// in the repository root.
func (e *env) run(args ...string) testkit.Result {
	e.t.Helper()
	return testkit.Run(e.t, 2*time.Minute, e.runCommand(args...))
}

// runCommand is `coordinator run ARGS` against this env's Redis (--redis)
// in the repository root.
func (e *env) runCommand(args ...string) testkit.Command {
	return testkit.Command{Bin: e.bins.Coordinator, Args: append([]string{"run", "--redis", e.url}, args...), Dir: repoRoot(e.t)}
}

// runEmbedded runs `coordinator run ARGS` with its own Redis in dir, with
// stdin as its input (none when empty).
func runEmbedded(t *testing.T, dir, stdin string, args ...string) testkit.Result {
	t.Helper()
	c := testkit.Command{Bin: testkit.Build(t).Coordinator, Args: append([]string{"run"}, args...), Dir: dir}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	return testkit.Run(t, 2*time.Minute, c)
}

// TestRunEmbedded: `coordinator run` without --redis brings its own Redis.
func TestRunEmbedded(t *testing.T) {
	t.Parallel()

	t.Run("ExampleFromTheRepositoryRoot", func(t *testing.T) {
		t.Parallel()
		root := repoRoot(t)
		r := runEmbedded(t, root, "", "-p", "4", "-f", "examples/words.txt", "--", "sh", "examples/wordlen.sh")
		require.Equal(t, 0, r.Code, r)
		words := readLines(t, filepath.Join(root, "examples", "words.txt"))
		var want []string
		for _, w := range words {
			want = append(want, fmt.Sprintf("%s: %d letters", w, len(w)))
		}
		require.Equal(t, sorted(want), sorted(strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")), "every item's output, once")
		m := summaryRE.FindStringSubmatch(r.Stderr)
		require.NotNil(t, m, "summary on stderr: %s", r.Stderr)
		n := strconv.Itoa(len(words))
		require.Equal(t, []string{"Complete", n, n, "0", "0"}, m[1:6], m[0])
	})

	t.Run("LargeOutputsStayWhole", func(t *testing.T) {
		t.Parallel()
		// Each item prints 1,000 lines of 100 bytes (100 KB) at once, from
		// four workers: no line and no item's block may be interleaved.
		const items, lines = 16, 1000
		pad := strings.Repeat("x", 80)
		r := runEmbedded(t, "", seqLines(1, items), "-p", "4", "--batch-size", "1", "--", "sh", "-c",
			`IFS= read -r n; seq -f "item $n line %04g `+pad+`" 0 999; echo "item $n done" >&2`)
		require.Equal(t, 0, r.Code, r)
		lineRE := regexp.MustCompile(`^item (\d+) line (\d{4}) ` + pad + `$`)
		sc := bufio.NewScanner(strings.NewReader(r.Stdout))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		seen := map[string]bool{}
		cur, next := "", 0
		for sc.Scan() {
			m := lineRE.FindStringSubmatch(sc.Text())
			require.NotNil(t, m, "a broken or mixed line: %q", sc.Text())
			if next == 0 {
				require.False(t, seen[m[1]], "item %s printed twice", m[1])
				cur = m[1]
				seen[cur] = true
			}
			require.Equal(t, cur, m[1], "item %s's output is interleaved with item %s's", cur, m[1])
			require.Equal(t, fmt.Sprintf("%04d", next), m[2], "item %s's lines are out of order", cur)
			next = (next + 1) % lines
		}
		require.NoError(t, sc.Err())
		require.Zero(t, next, "the last item's output was cut")
		require.Len(t, seen, items)
		for i := 1; i <= items; i++ {
			require.Contains(t, r.Stderr, fmt.Sprintf("item %d done\n", i), "items' stderr reaches run's stderr")
		}
	})

	t.Run("SquaresFromStdin", func(t *testing.T) {
		t.Parallel()
		r := runEmbedded(t, "", seqLines(1, 1000), "-p", "8", "--batch-size", "100", "--", "sh", "-c", `read n; echo $((n*n))`)
		require.Equal(t, 0, r.Code, r)
		var want []string
		for n := 1; n <= 1000; n++ {
			want = append(want, strconv.Itoa(n*n))
		}
		require.Equal(t, sorted(want), sorted(strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")))
	})
}

func seqLines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintln(&b, i)
	}
	return b.String()
}

// TestRunJobKinds: run against a real Redis (--redis), every kind of Job
// and every Job-level limit, with real worker processes.
func TestRunJobKinds(t *testing.T) {
	t.Parallel()
	root := setup(t)

	t.Run("WithRedisTheJobStaysThere", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		r := e.run("--job", "kept", "-p", "2", "a", "b", "c", "--", "sh", "-c", "cat; echo")
		require.Equal(t, 0, r.Code, r)
		require.Equal(t, []string{"a", "b", "c"}, sorted(strings.Fields(r.Stdout)))
		s, _ := e.statusCLI("kept")
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.EqualValues(t, 3, s.Items.Succeeded)
		require.True(t, s.Sealed)
		require.Equal(t, 2, s.Spec.Parallelism)
		require.Contains(t, e.ok("list"), "kept")
	})

	t.Run("IndexedCompletions", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		r := e.run("--job", "idx", "--completions", "10", "-p", "3", "--", "sh", "-c", `echo "$WORKQ_INDEX $JOB_COMPLETION_INDEX $WORKQ_ITEM_ID"`)
		require.Equal(t, 0, r.Code, r)
		lines := sorted(strings.Split(strings.TrimSpace(r.Stdout), "\n"))
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("%d %d %d", i, i, i))
		}
		require.Equal(t, sorted(want), lines, "each index 0..9 ran once, in both variables")
		s, raw := e.statusCLI("idx")
		require.Equal(t, jobstate.KindIndexed, s.Kind)
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.Equal(t, "0-9", s.CompletedIndexes)
		require.Equal(t, "0-9", raw["completedIndexes"])
		require.EqualValues(t, 10, s.Items.Succeeded)
		require.Equal(t, jobstate.ReasonCompletionsReached, condition(t, s, jobstate.ConditionComplete).Reason)
		require.Regexp(t, `(?m)^Completed:\s+0-9$`, e.ok("status", "idx"))
	})

	t.Run("NonParallel", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		r := e.run("--job", "single", "--completions", "1", "--parallelism", "1", "--", "sh", "-c", `echo "index=$WORKQ_INDEX"`)
		require.Equal(t, 0, r.Code, r)
		require.Equal(t, "index=0\n", r.Stdout)
		s := e.status("single")
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.Equal(t, 1, *s.Spec.Completions)
		require.Equal(t, 1, s.Spec.Parallelism)
		require.Equal(t, "0", s.CompletedIndexes)
		require.EqualValues(t, 1, s.Succeeded, "one worker, succeeded")
		require.Zero(t, s.Failed, "no worker failed: %s\n%s", brief(s), r)
	})

	t.Run("NeverMoreThanParallelismWorkers", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		out := filepath.Join(e.dir, "spans")
		require.NoError(t, os.Mkdir(out, 0o755))
		p := testkit.Start(t, e.runCommand("--job", "par", "-p", "3", "--batch-size", "1",
			"-f", writeItems(t, e.dir, "items.txt", numbered("p-", 24)), "--",
			"sh", "-c", `s=$(date +%s%N); sleep 0.2; echo "$s $(date +%s%N) $WORKQ_WORKER_ID" > "$0/$WORKQ_ITEM_ID"`, out))
		maxActive := int64(0)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !p.Exited() {
			if s, err := e.in.Status(context.Background(), "par"); err == nil {
				maxActive = max(maxActive, s.Active)
			}
			<-tick.C
		}
		require.Equal(t, 0, p.Result().Code, p)
		require.LessOrEqual(t, maxActive, int64(3), "status.active never exceeds parallelism")
		require.GreaterOrEqual(t, maxActive, int64(1))
		type span struct{ start, end int64 }
		var spans []span
		workers := map[string]bool{}
		entries, err := os.ReadDir(out)
		require.NoError(t, err)
		require.Len(t, entries, 24)
		for _, en := range entries {
			l := readLines(t, filepath.Join(out, en.Name()))
			require.Len(t, l, 1)
			var sp span
			var w string
			_, err := fmt.Sscan(l[0], &sp.start, &sp.end, &w)
			require.NoError(t, err, l[0])
			spans = append(spans, sp)
			workers[w] = true
		}
		overlap := 0
		for _, a := range spans {
			n := 0
			for _, b := range spans {
				if b.start <= a.start && a.start < b.end {
					n++
				}
			}
			overlap = max(overlap, n)
		}
		t.Logf("max items at once %d, max status.active %d, %d distinct workers", overlap, maxActive, len(workers))
		require.LessOrEqual(t, overlap, 3, "never more than 3 items (one per worker) at once")
		require.GreaterOrEqual(t, overlap, 2, "the workers ran in parallel")
		require.LessOrEqual(t, len(workers), 3, "no worker was replaced")
	})

	t.Run("BackoffLimitExceeded", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		// Each item kills its worker: a crash, as kill -9 of a Pod.
		r := e.run("--job", "crash", "-p", "1", "--backoff-limit", "2", "--lease", "1s", "--batch-size", "1",
			"a", "b", "c", "d", "--", "sh", "-c", `kill -9 $PPID`)
		require.Equal(t, 1, r.Code, r)
		require.Contains(t, r.Stderr, "BackoffLimitExceeded")
		require.Equal(t, 2, strings.Count(r.Stderr, "replacing it"), "run replaced the first two crashed workers: %s", r.Stderr)
		s := e.status("crash")
		require.Equal(t, jobstate.PhaseFailed, s.Phase)
		require.EqualValues(t, 3, s.Failed, "backoff limit 2: the third failure fails the Job, no fourth worker")
		require.Zero(t, s.Active)
		c := condition(t, s, jobstate.ConditionFailed)
		require.Equal(t, jobstate.ReasonBackoffLimitExceeded, c.Reason)
		require.Contains(t, c.Message, "3 worker failures exceed the backoff limit of 2")
		require.Contains(t, r.Stderr, "coordinator: job crash failed: BackoffLimitExceeded: 3 worker failures exceed the backoff limit of 2")
		require.Contains(t, r.Stderr, "3 worker failures of backoff limit 2; the Job fails; no more workers start")
	})

	t.Run("MaxFailedItemsExceededEarly", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		items := append([]string{"fail-1", "fail-2", "fail-3"}, numbered("ok-", 100)...)
		r := e.run("--job", "early", "-p", "2", "--batch-size", "1", "--max-attempts", "2", "--max-failed-items", "1",
			"--retry-backoff", "10ms", "--retry-backoff-max", "20ms", "-f", writeItems(t, e.dir, "items.txt", items), "--",
			"sh", "-c", `IFS= read -r it; case "$it" in fail-*) echo "cannot $it" >&2; exit 1;; esac; sleep 0.1`)
		require.Equal(t, 1, r.Code, r)
		require.Contains(t, r.Stderr, "MaxFailedItemsExceeded")
		s := e.status("early")
		require.Equal(t, jobstate.PhaseFailed, s.Phase)
		require.Equal(t, jobstate.ReasonMaxFailedItemsExceeded, condition(t, s, jobstate.ConditionFailed).Reason)
		require.GreaterOrEqual(t, s.Items.Dead, int64(2))
		require.Greater(t, s.Items.Pending, int64(0), "the Job failed early, with items left: %s", brief(s))
		require.Less(t, s.Items.Succeeded, int64(100))
	})

	t.Run("DeadItemsFailTheJobAtTheEnd", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		items := append(numbered("ok-", 20), "bad-1", "bad-2")
		r := e.run("--job", "late", "-p", "2", "--max-attempts", "2", "--retry-backoff", "10ms", "--retry-backoff-max", "20ms",
			"-f", writeItems(t, e.dir, "items.txt", items), "--",
			"sh", "-c", `IFS= read -r it; case "$it" in bad-*) echo "cannot $it" >&2; exit 1;; esac`)
		require.Equal(t, 1, r.Code, r)
		require.Contains(t, r.Stderr, "FailedItems")
		m := summaryRE.FindStringSubmatch(r.Stderr)
		require.NotNil(t, m, r.Stderr)
		require.Equal(t, []string{"Failed", "20", "22", "2", "2"}, m[1:6], "succeeded, total, retried, dead: %s", m[0])
		s := e.status("late")
		require.Equal(t, jobstate.PhaseFailed, s.Phase)
		require.Equal(t, jobstate.ReasonFailedItems, condition(t, s, jobstate.ConditionFailed).Reason)
		require.EqualValues(t, 20, s.Items.Succeeded, "every other item was processed")
		require.EqualValues(t, 2, s.Items.Dead)
		require.Zero(t, s.Items.Pending+s.Items.Retrying+s.Items.Leased)
		dead, err := e.in.Dead(context.Background(), "late", 0)
		require.NoError(t, err)
		require.Len(t, dead, 2)
		for _, d := range dead {
			require.Equal(t, 2, d.Attempts)
			require.Equal(t, "exit status 1: cannot "+d.Item, d.LastError)
		}
	})

	t.Run("ActiveDeadlineStopsLongItems", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		pids := filepath.Join(e.dir, "pids")
		start := time.Now()
		r := e.run("--job", "late-night", "-p", "2", "--batch-size", "1", "--lease", "1s", "--grace", "1m", "--active-deadline", "1s",
			"a", "b", "c", "d", "--", "sh", "-c", `sleep 300 & echo $! >> "$0"; wait`, pids)
		took := time.Since(start)
		require.Equal(t, 1, r.Code, r)
		require.Contains(t, r.Stderr, "DeadlineExceeded")
		require.Less(t, took, 30*time.Second, "the items were stopped, not waited for (or --grace)")
		s := e.status("late-night")
		require.Equal(t, jobstate.PhaseFailed, s.Phase)
		c := condition(t, s, jobstate.ConditionFailed)
		require.Equal(t, jobstate.ReasonDeadlineExceeded, c.Reason)
		require.Contains(t, c.Message, "active deadline of 1s")
		require.Zero(t, s.Active, "every worker stopped")
		require.Zero(t, s.Items.Succeeded)
		started := pidsIn(t, pids)
		require.NotEmpty(t, started)
		requireGone(t, 5*time.Second, "item process", started...)
	})

	t.Run("TTLAfterFinishedDeletesTheKeys", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		r := e.run("--job", "brief", "--ttl-after-finished", "3s", "a", "b", "--", "true")
		require.Equal(t, 0, r.Code, r)
		ttl, err := e.rdb.PTTL(context.Background(), "workq:{brief}:spec").Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "the finished Job's keys expire")
		require.LessOrEqual(t, ttl, 3*time.Second)
		keys := e.jobKeys("brief").Keys
		require.GreaterOrEqual(t, len(keys), 3)
		for k, v := range keys {
			require.True(t, v.Expires, "key %s", k)
		}
		require.Eventually(t, func() bool {
			n, err := e.rdb.Exists(context.Background(), "workq:{brief}:spec").Result()
			return err == nil && n == 0
		}, 15*time.Second, 20*time.Millisecond)
		e.requireNoKeys("brief", true, "every key of the Job expired")
		require.NotContains(t, e.ok("list"), "brief")
		e.requireNoKeys("brief", false, "list drops the expired name")
	})

	t.Run("CtrlCStopsGracefully", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		p := testkit.Start(t, e.runCommand("--job", "intr", "-p", "2", "--batch-size", "2",
			"--grace", "10s", "-f", writeItems(t, e.dir, "items.txt", numbered("i-", 40)), "--", "sh", "-c", "sleep 0.3"))
		e.waitStatus("intr", time.Minute, "some items done", func(s jobstate.Status) bool { return s.Items.Succeeded >= 4 })
		sent := time.Now()
		p.Signal(t, syscall.SIGINT)
		code := p.Wait(t, 30*time.Second)
		took := time.Since(sent)
		r := p.Result()
		require.Equal(t, 1, code, r)
		require.Less(t, took, 8*time.Second, "running items (0.3s) finish; run does not wait out --grace")
		require.Contains(t, r.Stderr, "stopping 2 workers; running items get 10s (--grace) to finish")
		s := e.status("intr")
		left := 40 - s.Items.Succeeded
		require.Greater(t, left, int64(0), "the Job was stopped before its end")
		require.Contains(t, r.Stderr, fmt.Sprintf("interrupted: %d of 40 items left undone (%d pending, %d handed back, %d retrying, 0 leased); job intr was not finished",
			left, s.Items.Pending, s.Items.Returned, s.Items.Retrying))
		require.Zero(t, s.Items.Leased, "held items were handed back")
		require.Zero(t, s.Items.FailedAttempts, "a graceful stop fails nothing")
		require.Zero(t, s.Items.Retrying, "nothing failed, so nothing waits for a retry")
		require.EqualValues(t, 40, s.Items.Succeeded+s.Items.Pending+s.Items.Returned, "nothing lost")
		require.Zero(t, s.Active, "every worker exited")
		require.Zero(t, s.Failed, "workers stopped on purpose are not failures")
	})
}

// TestSuspendResume: a suspended Job hands out no leases while running
// items finish; resume continues it to the end.
func TestSuspendResume(t *testing.T) {
	t.Parallel()
	e := setup(t)
	starts, ends, gate := filepath.Join(e.dir, "starts"), filepath.Join(e.dir, "ends"), filepath.Join(e.dir, "gate")
	e.ok("create", "pause", "--lease", "1s", "--batch-size", "1", "-p", "2")
	e.ok("push", "pause", "--seal", "-f", writeItems(t, e.dir, "items.txt", numbered("s-", 12)))
	// Items wait at the gate, so that the Job cannot end before the test
	// has suspended it, however slowly the machine runs the CLI.
	args := []string{"--job", "pause", "--", "sh", "-c",
		`echo "$WORKQ_ITEM_ID" >> "$0"; while [ ! -e "$2" ]; do sleep 0.02; done; sleep 0.1; echo "$WORKQ_ITEM_ID" >> "$1"`, starts, ends, gate}
	w1, w2 := e.startWorker(args...), e.startWorker(args...)
	require.Eventually(t, func() bool { return countLines(starts) >= 2 }, 30*time.Second, 5*time.Millisecond)

	require.Equal(t, "suspended pause\n", e.ok("suspend", "pause"))
	require.Equal(t, "pause was suspended already; nothing changed\n", e.ok("suspend", "pause"))
	require.NoError(t, os.WriteFile(gate, nil, 0o644))
	// What was leased before the suspend runs to its end; then nothing.
	s := e.waitStatus("pause", 30*time.Second, "held items finished", func(s jobstate.Status) bool { return s.Items.Leased == 0 })
	require.Eventually(t, func() bool { return countLines(starts) == countLines(ends) }, 10*time.Second, 5*time.Millisecond, "running items finish")
	startedBefore := countLines(starts)
	require.Less(t, startedBefore, 12)
	require.Equal(t, jobstate.PhaseSuspended, s.Phase)
	observe := time.Now().Add(1500 * time.Millisecond) // over a lease period and several worker wake-ups
	for time.Now().Before(observe) {
		s = e.status("pause")
		require.Zero(t, s.Items.Leased, "a suspended Job handed out a lease")
		require.Equal(t, startedBefore, countLines(starts), "an item started while suspended")
	}
	require.False(t, w1.Exited() || w2.Exited(), "workers wait while the Job is suspended")
	sj, _ := e.statusCLI("pause")
	require.True(t, sj.Suspended)
	c := condition(t, sj, jobstate.ConditionSuspended)
	require.Equal(t, "True", c.Status)
	require.Equal(t, jobstate.ReasonJobSuspended, c.Reason)
	require.Contains(t, e.ok("status", "pause"), "Suspended: yes")

	require.Equal(t, "resumed pause\n", e.ok("resume", "pause"))
	// Resuming a Job that runs changes nothing; a Job without workers
	// shows it without a race against the Job's end.
	e.ok("create", "idle")
	require.Equal(t, "idle was not suspended; nothing changed\n", e.ok("resume", "idle"))
	require.Equal(t, 0, w1.Wait(t, time.Minute), w1)
	require.Equal(t, 0, w2.Wait(t, time.Minute), w2)
	require.Equal(t, 0, e.coord("watch", "pause", "--interval", "50ms").Code)
	sj, _ = e.statusCLI("pause")
	require.Equal(t, jobstate.PhaseComplete, sj.Phase)
	require.EqualValues(t, 12, sj.Items.Succeeded)
	require.False(t, sj.Suspended)
	c = condition(t, sj, jobstate.ConditionSuspended)
	require.Equal(t, "False", c.Status)
	require.Equal(t, jobstate.ReasonJobResumed, c.Reason)
	require.Len(t, readLines(t, ends), 12)
	r := e.coord("suspend", "pause")
	require.Equal(t, 2, r.Code, "a finished Job cannot be suspended: %s", r)
}
