package e2e

import (
	"fmt"
	"os"
	"path/filepath"
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

// TestWorkerExecution: how a worker runs its command for an item.
func TestWorkerExecution(t *testing.T) {
	t.Parallel()
	root := setup(t)

	t.Run("NoShellAndBracesAreOneArgument", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		tricky := `it's a "quoted" item with  two  spaces; $(touch pwned) * ` + "`touch pwned2`"
		e.ok("create", "args")
		e.ok("push", "args", "--seal", tricky, "plain")
		// sh -c SCRIPT NAME ARGS...: $# is the number of ARGS the worker gave.
		w := e.startWorkerIn(e.dir, "--job", "args", "--",
			"sh", "-c", `IFS= read -r in; printf 'argc=%s\n' "$#"; for a; do printf 'arg=[%s]\n' "$a"; done; printf 'stdin=[%s]\n' "$in"`,
			"sh", "{}", "pre-{}-post")
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		out := w.Stdout()
		for _, it := range []string{tricky, "plain"} {
			require.Contains(t, out, "argc=2\narg=["+it+"]\narg=[pre-"+it+"-post]\nstdin=["+it+"]\n", "item %q: %s", it, out)
		}
		require.NoFileExists(t, filepath.Join(e.dir, "pwned"), "the item was never given to a shell")
		require.NoFileExists(t, filepath.Join(e.dir, "pwned2"), "the item was never given to a shell")
	})

	t.Run("EnvironmentNamesJobItemAndAttempt", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "envs", "--max-attempts", "3", "--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "envs", "--seal", "a", "b", "flaky")
		// flaky fails on its first two attempts.
		w := e.startWorker("--job", "envs", "--id", "w-env", "--", "sh", "-c",
			`IFS= read -r it; echo "$WORKQ_JOB $WORKQ_ITEM_ID $WORKQ_ATTEMPT $WORKQ_WORKER_ID $it"; [ "$it" != flaky ] || [ "$WORKQ_ATTEMPT" -ge 3 ]`)
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		require.Equal(t, []string{
			"envs 0 1 w-env a",
			"envs 1 1 w-env b",
			"envs 2 1 w-env flaky",
			"envs 2 2 w-env flaky",
			"envs 2 3 w-env flaky",
		}, sorted(strings.Split(strings.TrimSpace(w.Stdout()), "\n")))
		require.Equal(t, 0, e.coord("watch", "envs", "--interval", "50ms").Code)
		s := e.status("envs")
		require.EqualValues(t, 3, s.Items.Succeeded, "exit 0 acks")
		require.EqualValues(t, 2, s.Items.FailedAttempts, "a non-zero exit nacks")
		require.Zero(t, s.Items.Dead)
	})

	t.Run("NonZeroExitNacksUntilDead", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "nack", "--max-attempts", "2", "--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "nack", "--seal", "good", "bad")
		w := e.startWorker("--job", "nack", "--", "sh", "-c", `IFS= read -r it; [ "$it" = good ] || { echo "no good: $it" >&2; exit 7; }`)
		require.Equal(t, 1, w.Wait(t, 30*time.Second), "a dead item fails the Job, and its worker exits 1: %s", w)
		require.Contains(t, w.Stderr(), "FailedItems")
		r := e.coord("watch", "nack", "--interval", "50ms")
		require.Equal(t, 1, r.Code, r)
		s := e.status("nack")
		require.EqualValues(t, 1, s.Items.Succeeded)
		require.EqualValues(t, 1, s.Items.Dead)
		require.EqualValues(t, 2, s.Items.FailedAttempts)
		dead, err := e.in.Dead(t.Context(), "nack", 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, "bad", dead[0].Item)
		require.Equal(t, "exit status 7: no good: bad", dead[0].LastError)
	})

	t.Run("TimeoutKillsTheWholeProcessGroup", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		pids := filepath.Join(e.dir, "pids")
		e.ok("create", "slow", "--max-attempts", "1")
		e.ok("push", "slow", "--seal", "one", "two")
		// The command starts a child that would sleep 1000s, records its
		// pid and waits for it.
		start := time.Now()
		w := e.startWorker("--job", "slow", "--timeout", "500ms", "--", "sh", "-c", `sleep 1000 & echo $! >> "$0"; wait`, pids)
		require.Equal(t, 1, w.Wait(t, 30*time.Second), "both items are dead: the Job fails and its worker exits 1: %s", w)
		took := time.Since(start)
		require.Less(t, took, 20*time.Second, "the items ended at their timeout")
		children := pidsIn(t, pids)
		require.Len(t, children, 2)
		requireGone(t, 5*time.Second, "the item's child sleep", children...)
		dead, err := e.in.Dead(t.Context(), "slow", 0)
		require.NoError(t, err)
		require.Len(t, dead, 2)
		for _, d := range dead {
			require.Contains(t, d.LastError, "timed out after 500ms (--timeout); the process group was killed")
		}
	})

	t.Run("BatchExecRunsOneProcessPerBatch", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		items := numbered("b-", 25)
		e.ok("create", "batches", "--batch-size", "10")
		e.ok("push", "batches", "--seal", "-f", writeItems(t, e.dir, "items.txt", items))
		seen, runs := filepath.Join(e.dir, "seen"), filepath.Join(e.dir, "runs")
		w := e.startWorker("--job", "batches", "--batch-exec", "--", "sh", "-c",
			`n=0; while IFS= read -r l; do n=$((n+1)); echo "$l" >> "$0"; done; echo "$$ $n $WORKQ_BATCH_SIZE $WORKQ_ITEM_IDS" >> "$1"`, seen, runs)
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		require.Equal(t, items, sorted(readLines(t, seen)), "every item once, on stdin")
		batches := readLines(t, runs)
		require.Len(t, batches, 3, "25 items in batches of 10: three processes")
		pids := map[string]bool{}
		total := 0
		for _, b := range batches {
			f := strings.Fields(b)
			require.Len(t, f, 4, b)
			pids[f[0]] = true
			n, _ := strconv.Atoi(f[1])
			require.Equal(t, f[1], f[2], "WORKQ_BATCH_SIZE is the items on stdin: %s", b)
			require.Len(t, strings.Split(f[3], ","), n, "WORKQ_ITEM_IDS lists the batch: %s", b)
			require.LessOrEqual(t, n, 10)
			total += n
		}
		require.Len(t, pids, 3, "one process per batch")
		require.Equal(t, 25, total)
		require.Equal(t, 0, e.coord("watch", "batches", "--interval", "50ms").Code)
		require.EqualValues(t, 25, e.status("batches").Items.Succeeded)
	})

	t.Run("UnrunnableCommandIsRefusedBeforeAnythingChanges", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "bad-cmd")
		e.ok("push", "bad-cmd", "x")
		notExec := filepath.Join(e.dir, "not-executable.sh")
		require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\ntrue\n"), 0o644))
		for _, c := range []struct {
			argv []string
			want string
		}{
			{[]string{"/no/such/program"}, `"/no/such/program" cannot be run (stat /no/such/program: no such file or directory); check that it exists`},
			{[]string{"no-such-program-on-path", "{}"}, `"no-such-program-on-path" not found`},
			{[]string{notExec}, "chmod +x"},
			{[]string{e.dir}, "is a directory"},
		} {
			before := e.jobKeys("bad-cmd")
			w := e.startWorker(append([]string{"--job", "bad-cmd", "--"}, c.argv...)...)
			w.Wait(t, 30*time.Second)
			r := w.Result()
			require.Equal(t, 2, r.Code, "%v: %s", c.argv, r)
			require.Contains(t, r.Stderr, c.want, "%v", c.argv)
			require.Equal(t, before, e.jobKeys("bad-cmd"), "%v: the worker changed nothing in Redis", c.argv)
		}
		r := e.coord("run", "--job", "bad-run", "--redis", e.url, "a", "b", "--", "/no/such/program")
		require.Equal(t, 2, r.Code, r)
		require.Contains(t, r.Stderr, `"/no/such/program" cannot be run`)
		e.requireNoKeys("bad-run", false, "run created nothing")
	})
}

// TestWorkerShutdown: SIGTERM stops a worker gracefully: no more leases,
// running items get --grace to finish, the rest is handed back without
// using an attempt, and another worker completes the Job.
func TestWorkerShutdown(t *testing.T) {
	t.Parallel()
	root := setup(t)

	// script records every start and end as "item attempt worker", and
	// sleeps 30s when run by the worker named "slow", else dur.
	script := func(e *env, dur string) (string, string, string) {
		starts, ends := filepath.Join(e.dir, "starts"), filepath.Join(e.dir, "ends")
		pids := filepath.Join(e.dir, "pids")
		p := writeScript(t, e.dir, "item.sh", fmt.Sprintf(`
echo "$WORKQ_ITEM_ID $WORKQ_ATTEMPT $WORKQ_WORKER_ID" >> %[1]q
if [ "$WORKQ_WORKER_ID" = slow ]; then sleep 30 & echo $! >> %[3]q; wait; else sleep %[4]s; fi
echo "$WORKQ_ITEM_ID $WORKQ_ATTEMPT $WORKQ_WORKER_ID" >> %[2]q
`, starts, ends, pids, dur))
		return p, starts, ends
	}
	// finish runs a second worker to the end and checks that every item
	// ran to its end exactly once, each on its first attempt.
	finish := func(t *testing.T, e *env, job, cmd, starts, ends string, n int) {
		w := e.startWorker("--job", job, "--id", "second", "--concurrency", "4", "--", cmd)
		require.Equal(t, 0, w.Wait(t, time.Minute), w)
		require.Equal(t, 0, e.coord("watch", job, "--interval", "50ms").Code)
		s := e.status(job)
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.EqualValues(t, n, s.Items.Succeeded, "nothing lost")
		require.Zero(t, s.Items.FailedAttempts, "a stop is not a failure")
		endLines := readLines(t, ends)
		var ids []string
		for _, l := range endLines {
			f := strings.Fields(l)
			require.Equal(t, "1", f[1], "every item ended on its first attempt: %s", l)
			ids = append(ids, f[0])
		}
		require.Len(t, ids, n)
		want := make([]string, n)
		for i := range want {
			want[i] = strconv.Itoa(i)
		}
		require.ElementsMatch(t, want, ids, "each item ended exactly once")
		for _, l := range readLines(t, starts) {
			require.Equal(t, "1", strings.Fields(l)[1], "handed-back items did not use an attempt: %s", l)
		}
	}
	// begin creates job with n items in batches of batch and starts a
	// worker with --id id, --concurrency 2 and --grace grace on it, whose
	// items take dur (see script).
	begin := func(t *testing.T, e *env, job string, batch, n int, id, grace, dur string) (w *testkit.Proc, cmd, starts, ends string) {
		cmd, starts, ends = script(e, dur)
		e.ok("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "5s")
		e.ok("push", job, "--seal", "-f", writeItems(t, e.dir, "items.txt", numbered(job+"-", n)))
		w = e.startWorker("--job", job, "--id", id, "--concurrency", "2", "--grace", grace, "--", cmd)
		return w, cmd, starts, ends
	}
	// terminate sends SIGTERM to w once running holds, and returns its exit
	// code and how long after SIGTERM it exited.
	terminate := func(t *testing.T, w *testkit.Proc, running func() bool) (int, time.Duration) {
		require.Eventually(t, running, 30*time.Second, 5*time.Millisecond)
		term := time.Now()
		w.Signal(t, syscall.SIGTERM)
		code := w.Wait(t, 15*time.Second)
		return code, time.Since(term)
	}

	t.Run("RunningItemsFinishWithinGrace", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		w, cmd, starts, ends := begin(t, e, "term", 5, 10, "first", "20s", "1.5")
		code, took := terminate(t, w, func() bool { return countLines(starts) == 2 })
		require.NotEqual(t, 0, code, "stopped before the Job ended: %s", w)
		require.Contains(t, w.Stderr(), "unfinished items were handed back")
		require.Less(t, took, 6*time.Second, "it exits once its running items end, not after --grace")
		t.Logf("worker exited %s after SIGTERM (items take 1.5s)", took.Round(time.Millisecond))
		require.Len(t, readLines(t, starts), 2, "no item started after SIGTERM")
		require.Len(t, readLines(t, ends), 2, "both running items finished")
		s := e.status("term")
		require.EqualValues(t, 2, s.Items.Succeeded)
		require.Zero(t, s.Items.Leased, "what was not started was handed back")
		require.Zero(t, s.Items.Retrying, "a stop is not a failure: nothing waits for a retry")
		require.EqualValues(t, 8, s.Items.Pending+s.Items.Returned, "the rest is pending or handed back: %s", brief(s))
		require.Zero(t, s.Active, "the stopped worker deregistered: %s", w)
		finish(t, e, "term", cmd, starts, ends, 10)
	})

	t.Run("ItemsPastGraceAreStoppedAndHandedBack", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		w, cmd, starts, ends := begin(t, e, "grace", 4, 6, "slow", "300ms", "0")
		code, took := terminate(t, w, func() bool { return countLines(filepath.Join(e.dir, "pids")) == 2 })
		require.NotEqual(t, 0, code, w)
		require.Less(t, took, 5*time.Second, "the 30s items were stopped after --grace")
		requireGone(t, 5*time.Second, "sleep", pidsIn(t, filepath.Join(e.dir, "pids"))...)
		require.Empty(t, readLines(t, ends))
		s := e.status("grace")
		require.Zero(t, s.Items.Succeeded)
		require.Zero(t, s.Items.Leased)
		require.Zero(t, s.Items.FailedAttempts, "items stopped by the shutdown did not fail")
		// The killed items' starts say attempt 1; their next runs must too.
		require.NoError(t, os.Remove(starts))
		finish(t, e, "grace", cmd, starts, ends, 6)
	})
}

// TestWorkerWaits: workers may start before Redis or the Job exists; they
// wait up to --wait, then give up with an error naming the Job.
func TestWorkerWaits(t *testing.T) {
	t.Parallel()

	t.Run("ForRedisAndTheJob", func(t *testing.T) {
		t.Parallel()
		redistest.Available(t)
		port, err := redistest.FreePort()
		require.NoError(t, err)
		url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		out := t.TempDir()
		e := &env{t: t, bins: testkit.Build(t), url: url}
		w := e.startWorker("--job", "early", "--wait", "2m", "--", "sh", "-c", `cat > "$0/$1"`, out, "{}")

		// Redis comes up, later the Job, later its items.
		srv, err := redistest.StartOn(t.TempDir(), port)
		require.NoError(t, err)
		t.Cleanup(srv.Stop)
		require.False(t, w.Exited(), "the worker gave up: %s", w)
		e.srv = srv
		e.ok("create", "early")
		e.ok("push", "early", "--seal", "x", "y", "z")
		require.Equal(t, 0, w.Wait(t, time.Minute), w)
		for _, it := range []string{"x", "y", "z"} {
			require.FileExists(t, filepath.Join(out, it))
		}
	})

	t.Run("ShortWaitGivesUpNamingTheJob", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		start := time.Now()
		w := e.startWorker("--job", "never", "--wait", "300ms", "--", "true")
		code := w.Wait(t, 30*time.Second)
		require.Less(t, time.Since(start), 10*time.Second)
		require.Equal(t, 2, code, "a Job that never appeared is the user's to fix: %s", w)
		require.Contains(t, w.Stderr(), "no such job")
		require.Contains(t, w.Stderr(), "`coordinator create never` makes it")
		e.requireNoKeys("never", false, "the worker created nothing")
		require.Contains(t, w.Stderr(), `waited 300ms (--wait) for job "never"`)
	})

	t.Run("ShortWaitWithoutRedis", func(t *testing.T) {
		t.Parallel()
		w := testkit.Start(t, testkit.Command{Bin: testkit.Build(t).Worker, Args: []string{"--redis", "redis://" + testkit.FreeAddr(t) + "/0",
			"--job", "nowhere", "--wait", "300ms", "--", "true"}})
		start := time.Now()
		code := w.Wait(t, 30*time.Second)
		// One attempt to reach Redis may take a few seconds of the
		// driver's own retries: the bound is loose.
		require.Less(t, time.Since(start), 10*time.Second)
		require.Equal(t, 1, code, w)
		require.Contains(t, w.Stderr(), "redis unavailable")
		require.Contains(t, w.Stderr(), `waited 300ms (--wait) for job "nowhere"`)
	})
}
