package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestCLI runs the coordinator's commands the way the issue describes them,
// on one Redis, one Job per subtest.
func TestCLI(t *testing.T) {
	t.Parallel()
	root := setup(t)

	t.Run("CreateTakesEverySpecFlag", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		out := e.ok("create", "spec1", "--batch-size", "7", "--lease", "2s", "--max-attempts", "4", "--backoff-limit", "2",
			"-p", "3", "--max-failed-items", "5", "--active-deadline", "1m", "--ttl-after-finished", "1h",
			"--retry-backoff", "100ms", "--retry-backoff-max", "2s")
		require.Equal(t, "created job spec1 (WorkQueue)\n", out)
		s, raw := e.statusCLI("spec1")
		require.Equal(t, jobstate.KindWorkQueue, s.Kind)
		require.Equal(t, jobstate.PhasePending, s.Phase)
		require.False(t, s.Sealed)
		sp := s.Spec
		require.Equal(t, 7, sp.BatchSize)
		require.Equal(t, 2*time.Second, sp.Lease.D())
		require.Equal(t, 4, sp.MaxAttempts)
		require.Equal(t, 2, *sp.BackoffLimit)
		require.Equal(t, 3, sp.Parallelism)
		require.Nil(t, sp.Completions)
		require.Equal(t, 5, *sp.MaxFailedItems)
		require.Equal(t, time.Minute, sp.ActiveDeadline.D())
		require.Equal(t, time.Hour, sp.TTLAfterFinished.D())
		require.Equal(t, 100*time.Millisecond, sp.RetryBackoff.D())
		require.Equal(t, 2*time.Second, sp.RetryBackoffMax.D())
		require.Equal(t, "2s", raw["spec"].(map[string]any)["lease"], "durations read as Go durations in JSON")

		before := e.jobKeys("spec1")
		r := e.coord("create", "spec1", "--batch-size", "9")
		require.Equal(t, 2, r.Code, r)
		require.Contains(t, r.Stderr, "already exists")
		require.Equal(t, before, e.jobKeys("spec1"), "a refused create changes nothing")
		require.Contains(t, e.ok("create", "spec1", "--if-not-exists"), "exists; nothing to do")

		for _, bad := range [][]string{
			{"create", "Bad_Name"},
			{"create", "zero-batch", "--batch-size", "0"},
			{"create", "short-lease", "--lease", "1ms"},
			{"create", "neg", "-p", "-1"},
		} {
			r := e.coord(bad...)
			require.Equal(t, 2, r.Code, "%v: %s", bad, r)
			require.NotEmpty(t, strings.TrimSpace(r.Stderr), "%v says what is wrong", bad)
			e.requireNoKeys(bad[1], false, "%v leaves nothing behind", bad)
		}

		require.Equal(t, "created job idx1 (Indexed)\n", e.ok("create", "idx1", "--completions", "4", "-p", "2"))
		s = e.status("idx1")
		require.Equal(t, jobstate.KindIndexed, s.Kind)
		require.True(t, s.Sealed, "an Indexed Job is sealed at once")
		require.EqualValues(t, 4, s.Items.Total)
		r = e.coord("push", "idx1", "more")
		require.Equal(t, 2, r.Code, r)
	})

	t.Run("PushLoadsItemsInOrderFromEverySource", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "load")
		file := writeItems(t, e.dir, "items.txt", []string{"a", "b"})
		require.Equal(t, "pushed 2 items to load\n", e.ok("push", "load", "-f", file))
		r := e.coordIn(strings.NewReader("c\nd\n"), "push", "load", "-f", "-")
		require.Equal(t, 0, r.Code, r)
		require.Equal(t, "pushed 2 items to load\n", r.Stdout)
		require.Equal(t, "pushed 2 items to load\n", e.ok("push", "load", "e", "f g"))
		r = e.coordIn(strings.NewReader("multi\nline\x00tab\there\x00"), "push", "load", "--null", "-f", "-")
		require.Equal(t, 0, r.Code, r)
		nulFile := filepath.Join(e.dir, "nul.bin")
		require.NoError(t, os.WriteFile(nulFile, []byte("x\ny\x00 z "), 0o644))
		require.Equal(t, "pushed 2 items to load\n", e.ok("push", "load", "--null", "-f", nulFile))
		require.False(t, e.status("load").Sealed)
		require.Equal(t, "pushed 1 item to load; sealed\n", e.ok("push", "load", "last", "--seal"))

		pending, err := e.rdb.LRange(context.Background(), "workq:{load}:pending", 0, -1).Result()
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c", "d", "e", "f g", "multi\nline", "tab\there", "x\ny", " z ", "last"}, pending)
		s := e.status("load")
		require.True(t, s.Sealed)
		require.EqualValues(t, 11, s.Items.Total)

		// seal on its own, twice.
		e.ok("create", "load2")
		e.ok("push", "load2", "one")
		require.Equal(t, "sealed load2\n", e.ok("seal", "load2"))
		before := e.jobKeys("load2")
		require.Equal(t, "load2 was sealed already; nothing changed\n", e.ok("seal", "load2"), "sealing twice is harmless, and says so")
		require.Equal(t, before, e.jobKeys("load2"), "a second seal changes nothing")
		require.True(t, e.status("load2").Sealed)

		// create with items and --seal in one go.
		out := e.ok("create", "load3", "-f", file, "--seal")
		require.Contains(t, out, "created job load3")
		require.Contains(t, out, "pushed 2 items to load3; sealed")
		s = e.status("load3")
		require.True(t, s.Sealed)
		require.EqualValues(t, 2, s.Items.Pending)
	})

	t.Run("DedupeRepushIsNoOp", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "dd")
		file := writeItems(t, e.dir, "items.txt", []string{"x", "y", "z"})
		require.Equal(t, "pushed 3 items to dd\n", e.ok("push", "dd", "--dedupe", "-f", file))
		before := e.jobKeys("dd")
		require.Equal(t, "pushed 0 items to dd (3 already pushed before, skipped)\n", e.ok("push", "dd", "--dedupe", "-f", file))
		require.Equal(t, before, e.jobKeys("dd"), "a deduplicated re-push changes nothing")
		require.Equal(t, "pushed 1 item to dd (2 already pushed before, skipped)\n", e.ok("push", "dd", "--dedupe", "y", "w", "z"))
		pending, err := e.rdb.LRange(context.Background(), "workq:{dd}:pending", 0, -1).Result()
		require.NoError(t, err)
		require.Equal(t, []string{"x", "y", "z", "w"}, pending)
	})

	t.Run("RefusedPushLeavesJobUnchanged", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		refused := func(job, want string, stdin string, args ...string) {
			t.Helper()
			before := e.jobKeys(job)
			r := e.coordIn(strings.NewReader(stdin), append([]string{"push", job}, args...)...)
			require.Equal(t, 2, r.Code, "push %s %v: %s", job, args, r)
			require.Contains(t, r.Stderr, want, "push %s %v", job, args)
			require.Empty(t, r.Stdout)
			require.Equal(t, before, e.jobKeys(job), "a refused push to %s changes none of its keys", job)
		}

		e.ok("create", "sealed1")
		e.ok("push", "sealed1", "a", "--seal")
		refused("sealed1", `"sealed1" takes no more items`, "", "b")
		refused("sealed1", "takes no more items", "b\nc\n", "-f", "-")

		refused("ghost", `no such job: "ghost"`, "", "a")

		e.ok("create", "fin")
		e.ok("push", "fin", "a", "--seal")
		w := e.startWorker("--job", "fin", "--", "true")
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		require.Equal(t, 0, e.coord("watch", "fin", "--interval", "50ms").Code)
		require.Equal(t, jobstate.PhaseComplete, e.status("fin").Phase)
		refused("fin", `"fin" is Complete`, "", "b")

		e.ok("create", "badinput")
		e.ok("push", "badinput", "first")
		refused("badinput", "empty", "ok\n\nnot reached\n", "-f", "-")
		refused("badinput", "--max-item-bytes", strings.Repeat("x", 100)+"\n", "--max-item-bytes", "10", "-f", "-")
	})

	t.Run("StatusListAndWatchOnComplete", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "st", "--batch-size", "3", "-p", "2")
		e.ok("push", "st", "--seal", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9")
		watch := e.startCoord("watch", "st", "--interval", "50ms")
		w := e.startWorker("--job", "st", "-c", "2", "--", "true")
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		require.Equal(t, 0, watch.Wait(t, 30*time.Second), "watch exits 0 on Complete: %s", watch)
		require.Contains(t, watch.Stdout(), "st: Complete: 9/9 items succeeded, 0 dead, 0 failed attempts")

		table := e.ok("status", "st")
		s, raw := e.statusCLI("st")
		require.Regexp(t, `^[0-9a-f]{16,}$`, s.UID, "the incarnation uid")
		for _, want := range []string{"Job:", "st (WorkQueue, incarnation " + s.UID + ")", "Phase:", "Complete", "9/9 succeeded (100.0%)",
			"0 pending, 0 leased, 0 retrying, 0 dead", "0 active of parallelism 2", "1 succeeded, 0 failed",
			"Sealed:", "batch-size 3", "Started:", "Completed at:", "Conditions:", "TYPE", "REASON", "Drained", "SuccessCriteriaMet"} {
			require.Contains(t, table, want)
		}

		for _, k := range []string{"name", "uid", "kind", "phase", "spec", "sealed", "suspended", "done", "items", "leases",
			"active", "ready", "succeeded", "failed", "startTime", "completionTime", "conditions", "throughput", "etaSeconds", "now"} {
			require.Contains(t, raw, k, "status -o json has %q", k)
		}
		for _, k := range []string{"total", "pending", "leased", "retrying", "returned", "succeeded", "dead", "failedAttempts", "takeovers"} {
			require.Contains(t, raw["items"], k, "status -o json items has %q", k)
		}
		require.EqualValues(t, 0, raw["etaSeconds"], "a finished Job's ETA is 0")
		conds := raw["conditions"].([]any)
		require.Len(t, conds, 2, "SuccessCriteriaMet, then Complete")
		for _, c := range conds {
			for _, k := range []string{"type", "status", "reason", "message", "lastTransitionTime"} {
				require.Contains(t, c, k)
			}
		}
		require.Equal(t, jobstate.ConditionSuccessCriteriaMet, s.Conditions[0].Type)
		require.Equal(t, jobstate.ConditionComplete, s.Conditions[1].Type)
		require.False(t, s.Conditions[1].LastTransitionTime.Before(s.Conditions[0].LastTransitionTime), "Complete follows SuccessCriteriaMet")
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.True(t, s.Done)
		require.EqualValues(t, 9, s.Items.Succeeded)
		require.EqualValues(t, 0, s.Active)
		require.EqualValues(t, 0, s.Ready)
		require.EqualValues(t, 1, s.Succeeded)
		require.EqualValues(t, 0, s.Failed)
		require.NotNil(t, s.StartTime)
		require.NotNil(t, s.CompletionTime)
		require.False(t, s.CompletionTime.Before(*s.StartTime))
		c := condition(t, s, jobstate.ConditionComplete)
		require.Equal(t, "True", c.Status)
		require.Equal(t, jobstate.ReasonDrained, c.Reason)
		require.NotEmpty(t, c.Message)
		require.False(t, c.LastTransitionTime.IsZero())
		require.False(t, c.LastTransitionTime.Before(*s.StartTime))

		list := e.ok("list")
		require.Contains(t, list, "NAME")
		var row string
		for _, l := range strings.Split(list, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "st" {
				row = l
			}
		}
		require.Equal(t, []string{"st", "WorkQueue", "Complete", "9/9", "0", "0", "0", "0", "0/2"}, strings.Fields(row)[:9], list)
		var all []jobstate.Status
		require.NoError(t, json.Unmarshal([]byte(e.ok("list", "-o", "json")), &all))
		found := false
		for _, j := range all {
			if j.Name == "st" {
				found = true
				require.Equal(t, jobstate.PhaseComplete, j.Phase)
			}
		}
		require.True(t, found, "list -o json has st")

		r := e.coord("status", "sx")
		require.Equal(t, 2, r.Code)
		require.Contains(t, r.Stderr, `did you mean "st"?`)
	})

	t.Run("WatchFailsDeadShowsErrorsRetryRecovers", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		mark := filepath.Join(e.dir, "fixed")
		// Items named bad-* fail until the mark exists, with a long stderr
		// whose tail names the item and the attempt.
		runSh := writeScript(t, e.dir, "item.sh", fmt.Sprintf(`
case "$1" in
bad-*) [ -e %q ] || { i=0; while [ $i -lt 100 ]; do echo "noise line $i of a long error output" >&2; i=$((i+1)); done; echo "boom $1 attempt $WORKQ_ATTEMPT" >&2; exit 3; } ;;
esac
`, mark))
		e.ok("create", "fl", "--max-attempts", "2", "--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "fl", "--seal", "ok-1", "bad-1", "ok-2", "bad-2")
		w := e.startWorker("--job", "fl", "--", runSh, "{}")
		require.Equal(t, 1, w.Wait(t, 30*time.Second), "dead items do not keep a worker from finishing; it exits 1, as the Job failed: %s", w)
		r := e.coord("watch", "fl", "--interval", "50ms")
		require.Equal(t, 1, r.Code, "watch exits 1 on Failed: %s", r)
		require.Contains(t, r.Stdout, "fl: Failed: 2/4 items succeeded, 2 dead")
		require.Contains(t, r.Stderr, "FailedItems")

		s := e.status("fl")
		require.Equal(t, jobstate.PhaseFailed, s.Phase)
		require.EqualValues(t, 2, s.Items.Succeeded)
		require.EqualValues(t, 2, s.Items.Dead)
		require.EqualValues(t, 4, s.Items.FailedAttempts)
		require.Equal(t, jobstate.ReasonFailedItems, condition(t, s, jobstate.ConditionFailed).Reason)

		table := e.ok("dead", "fl")
		require.Contains(t, table, "ATTEMPTS")
		require.Contains(t, table, "LAST ERROR")
		var rows []string
		for _, l := range strings.Split(table, "\n") {
			if strings.Contains(l, "bad-") {
				rows = append(rows, l)
			}
		}
		require.Len(t, rows, 2, table)
		for i, row := range rows {
			f := strings.Fields(row)
			require.Equal(t, "2", f[1], "attempts: %s", row)
			require.Equal(t, fmt.Sprintf("%q", fmt.Sprint("bad-", i+1)), f[2])
			require.True(t, strings.HasSuffix(strings.TrimSpace(row), fmt.Sprintf("boom bad-%d attempt 2", i+1)), "the table shows the end of the last error, where its stderr tail is: %s", row)
		}
		var dead []struct {
			ID        int64  `json:"id"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"lastError"`
			Item      string `json:"item"`
		}
		require.NoError(t, json.Unmarshal([]byte(e.ok("dead", "fl", "-o", "json")), &dead))
		require.Len(t, dead, 2)
		for i, d := range dead {
			item := fmt.Sprint("bad-", i+1)
			require.Equal(t, item, d.Item)
			require.Equal(t, 2, d.Attempts)
			require.True(t, strings.HasPrefix(d.LastError, "exit status 3: "), "the cause survives a long stderr: %q", d.LastError)
			require.LessOrEqual(t, len(d.LastError), queue.MaxErrorBytes)
			require.Contains(t, d.LastError, fmt.Sprintf("boom %s attempt 2", item), "the last error is the tail of stderr")
			require.NotContains(t, d.LastError, "noise line 0 ", "only the tail of a long stderr is kept")
		}

		require.NoError(t, os.WriteFile(mark, nil, 0o644))
		before := e.jobKeys("fl")
		r = e.coord("retry", "fl")
		require.Equal(t, 2, r.Code, "a finished Job is reopened only with --reopen: %s", r)
		require.Contains(t, r.Stderr, "--reopen")
		require.Equal(t, before, e.jobKeys("fl"), "a refused retry changes nothing")
		require.Equal(t, "put 2 dead items back into fl; start workers to process them\n", e.ok("retry", "fl", "--reopen"))
		s = e.status("fl")
		require.Equal(t, jobstate.PhaseRunning, s.Phase, "retry --reopen puts the Job back to Running: %s", brief(s))
		require.Zero(t, s.Items.Dead)
		require.EqualValues(t, 2, s.Items.Retrying)
		for _, c := range s.Conditions {
			require.NotContains(t, []jobstate.ConditionType{jobstate.ConditionFailed, jobstate.ConditionFailureTarget, jobstate.ConditionComplete}, c.Type)
		}
		reopened := condition(t, s, jobstate.ConditionReopened)
		require.Equal(t, "True", reopened.Status)
		require.Equal(t, jobstate.ReasonDeadItemsRetried, reopened.Reason)
		w = e.startWorker("--job", "fl", "--", runSh, "{}")
		require.Equal(t, 0, w.Wait(t, 30*time.Second), w)
		require.Equal(t, 0, e.coord("watch", "fl", "--interval", "50ms").Code)
		s = e.status("fl")
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.EqualValues(t, 4, s.Items.Succeeded)
		require.EqualValues(t, 4, s.Items.Total)
		before = e.jobKeys("fl")
		r = e.coord("retry", "fl")
		require.Equal(t, 2, r.Code, "a Complete Job is reopened only with --reopen: %s", r)
		require.Equal(t, before, e.jobKeys("fl"), "a refused retry changes nothing")
		require.Contains(t, e.ok("retry", "fl", "--reopen"), "no dead items in fl; nothing changed")
		after := e.status("fl")
		require.Equal(t, jobstate.PhaseComplete, after.Phase, "with no dead item, --reopen reopens nothing")
		require.Equal(t, s.Items, after.Items)
		require.Equal(t, s.Conditions, after.Conditions)
	})

	t.Run("DeleteRemovesEveryKeyAndStopsWorkers", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "del", "--lease", "1s")
		e.ok("push", "del", "a", "b", "c")
		// The worker finishes a, b, c and waits for more (not sealed).
		w := e.startWorker("--job", "del", "--", "true")
		e.waitStatus("del", 30*time.Second, "items done, worker waiting", func(s jobstate.Status) bool {
			return s.Items.Succeeded == 3 && s.Ready == 1
		})
		require.NotEmpty(t, e.jobKeys("del").Keys)
		require.Equal(t, "deleted del\n", e.ok("delete", "del"))
		e.requireNoKeys("del", false, "delete removes every key")
		code := w.Wait(t, 10*time.Second)
		require.Equal(t, 1, code, "a worker of a deleted Job stops with exit 1: %s", w)
		require.Contains(t, w.Stderr(), "deleted")
		e.requireNoKeys("del", false, "the stopping worker recreates nothing")
		r := e.coord("delete", "del")
		require.Equal(t, 2, r.Code, r)
		require.NotContains(t, e.ok("list"), "del ")
	})
}

// TestServe: the controller marks a Job Complete only once every worker has
// terminated; it can be killed and restarted at any time without loss.
func TestServe(t *testing.T) {
	t.Parallel()
	e := setup(t)
	addr := testkit.FreeAddr(t)
	serve := e.startCoord("serve", "--listen", addr, "--interval", "100ms")
	testkit.WaitHealthy(t, addr, serve)

	t.Run("CompleteOnlyOnceEveryWorkerExited", func(t *testing.T) {
		e := e.sub(t)
		e.ok("create", "allgone", "--lease", "5s")
		// b registers, finds nothing and waits; then it is frozen.
		b := e.startWorker("--job", "allgone", "--id", "b", "--", "true")
		e.waitStatus("allgone", 30*time.Second, "b registered", func(s jobstate.Status) bool { return s.Ready == 1 })
		b.Signal(t, syscall.SIGSTOP)
		e.ok("push", "allgone", "--seal", "1", "2", "3", "4", "5")
		a := e.startWorker("--job", "allgone", "--id", "a", "--", "true")
		require.Equal(t, 0, a.Wait(t, 30*time.Second), a)

		// a exited 0 and the Job is drained, but b is alive (its
		// heartbeat has not expired): serve must not mark it Complete.
		s := e.status("allgone")
		require.True(t, s.Done)
		require.EqualValues(t, 5, s.Items.Succeeded)
		require.EqualValues(t, 1, s.Ready, "b's heartbeat is still current; the check below would prove nothing: %s", brief(s))
		observe := time.Now().Add(500 * time.Millisecond) // five controller sweeps
		for time.Now().Before(observe) {
			s = e.status("allgone")
			if s.Ready == 0 {
				break
			}
			require.NotEqual(t, jobstate.PhaseComplete, s.Phase, "Complete while worker b still runs: %s", brief(s))
		}

		b.Signal(t, syscall.SIGCONT)
		require.Equal(t, 0, b.Wait(t, 30*time.Second), "b finds the Job drained and exits 0: %s", b)
		s = e.waitStatus("allgone", 30*time.Second, "Complete", func(s jobstate.Status) bool { return s.Phase.Finished() })
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		require.EqualValues(t, 2, s.Succeeded)
		require.EqualValues(t, 0, s.Failed)
	})

	t.Run("KillAndRestartLosesNothing", func(t *testing.T) {
		e := e.sub(t)
		const n = 300
		out := filepath.Join(e.dir, "restart")
		require.NoError(t, os.Mkdir(out, 0o755))
		e.ok("create", "restart", "--lease", "1s", "--batch-size", "5")
		items := numbered("r-", n)
		e.ok("push", "restart", "--seal", "-f", writeItems(t, e.dir, "restart.txt", items))
		args := []string{"--job", "restart", "--", "sh", "-c", `cat >> "$0/$1"; echo >> "$0/$1"`, out, "{}"}
		w1, w2 := e.startWorker(args...), e.startWorker(args...)
		e.waitStatus("restart", time.Minute, "under way", func(s jobstate.Status) bool { return s.Items.Succeeded >= 50 })

		serve.Signal(t, syscall.SIGKILL)
		serve.Wait(t, 10*time.Second)
		// While no controller runs, a worker dies holding leases.
		w1.Signal(t, syscall.SIGKILL)
		w1.Wait(t, 10*time.Second)
		e.waitStatus("restart", time.Minute, "over half done", func(s jobstate.Status) bool { return s.Items.Succeeded >= n/2 })

		addr := testkit.FreeAddr(t)
		serve = e.startCoord("serve", "--listen", addr, "--interval", "100ms")
		testkit.WaitHealthy(t, addr, serve)
		require.Equal(t, 0, w2.Wait(t, time.Minute), w2)
		s := e.waitStatus("restart", 30*time.Second, "Complete", func(s jobstate.Status) bool {
			return s.Phase.Finished() || serve.Exited()
		})
		require.Equal(t, jobstate.PhaseComplete, s.Phase, "%s\nserve: %s", brief(s), serve)
		require.EqualValues(t, n, s.Items.Succeeded)
		require.EqualValues(t, 1, s.Failed, "the killed worker, found lost by the restarted serve")
		for _, it := range items {
			lines := readLines(t, filepath.Join(out, it))
			require.NotEmpty(t, lines, "item %s never ran", it)
		}

		// With Redis gone, /healthz says so.
		e.srv.Stop()
		require.Eventually(t, func() bool {
			code, _, err := testkit.HTTP(http.MethodGet, "http://"+addr+"/healthz", "")
			return err == nil && code == http.StatusServiceUnavailable
		}, 10*time.Second, 20*time.Millisecond)
		serve.Signal(t, syscall.SIGTERM)
		require.Equal(t, 0, serve.Wait(t, 10*time.Second), serve)
	})
}
