package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// requireConditionOrder requires that s has exactly the conditions of
// types want, in that order of LastTransitionTime, each True with reason.
func requireConditionOrder(t *testing.T, s jobstate.Status, reason string, want ...jobstate.ConditionType) {
	t.Helper()
	var got []jobstate.ConditionType
	for _, c := range s.Conditions {
		got = append(got, c.Type)
	}
	require.Equal(t, want, got, "conditions: %+v", s.Conditions)
	for i, c := range s.Conditions {
		require.Equal(t, "True", c.Status, "%+v", c)
		require.Equal(t, reason, c.Reason, "%+v", c)
		require.False(t, c.LastTransitionTime.IsZero(), "%+v", c)
		if i > 0 {
			require.False(t, c.LastTransitionTime.Before(s.Conditions[i-1].LastTransitionTime),
				"%s comes after %s: %+v", c.Type, s.Conditions[i-1].Type, s.Conditions)
		}
	}
}

// waitAll waits for every worker and requires its exit code.
func waitAll(t *testing.T, code int, why string, ws ...*testkit.Proc) {
	t.Helper()
	for _, w := range ws {
		require.Equal(t, code, w.Wait(t, time.Minute), "%s: %s", why, w)
	}
}

// TestWorkerExitCodes: a worker's exit code is the truth about its Job, as
// a Pod's is: 1 when the Job failed, whatever the reason, 0 when it
// succeeded; a worker that joins a finished Job says which it was.
func TestWorkerExitCodes(t *testing.T) {
	t.Parallel()
	root := setup(t)

	// deadItems runs three workers on a Job whose seventh item fails, with
	// --max-failed-items 0 and the lease given: every worker must exit 1,
	// early, with items left.
	deadItems := func(t *testing.T, lease string) {
		e := root.sub(t)
		job := "xdead-" + lease
		e.ok("create", job, "--max-attempts", "1", "--max-failed-items", "0", "--batch-size", "1", "--lease", lease)
		items := append(append(numbered("ok-", 6), "bad"), numbered("more-", 60)...)
		e.ok("push", job, "--seal", "-f", writeItems(t, e.dir, "items.txt", items))
		cmd := []string{"--", "sh", "-c", `IFS= read -r it; [ "$it" != bad ] || exit 1; sleep 0.2`}
		var ws []*testkit.Proc
		for range 3 {
			ws = append(ws, e.startWorker(append([]string{"--job", job}, cmd...)...))
		}
		waitAll(t, 1, "the Job failed", ws...)
		for _, w := range ws {
			require.Contains(t, w.Stderr(), "MaxFailedItemsExceeded")
			require.Contains(t, w.Stderr(), "this worker exits non-zero so that whatever watches it sees the failure")
		}
		s := e.status(job)
		require.Equal(t, jobstate.PhaseFailed, s.Phase, "the workers themselves ended the Job: %s", brief(s))
		requireConditionOrder(t, s, jobstate.ReasonMaxFailedItemsExceeded, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.Positive(t, s.Items.Pending+s.Items.Returned, "it failed early, with items left: %s", brief(s))
		require.Zero(t, s.Active)

		// One more worker finds the Job failed: it exits 1 at once and
		// counts for nothing.
		late := e.startWorker(append([]string{"--job", job}, cmd...)...)
		require.Equal(t, 1, late.Wait(t, time.Minute), late)
		require.Contains(t, late.Stderr(), "job failed")
		after := e.status(job)
		require.Equal(t, s.Items, after.Items)
		require.Equal(t, s.Succeeded, after.Succeeded)
		require.Equal(t, s.Failed, after.Failed)
	}

	t.Run("DeadItemsPastMaxFailedItemsFailEveryWorker", func(t *testing.T) {
		t.Parallel()
		// A 3s lease: workers run the lifecycle every second.
		deadItems(t, "3s")
	})

	t.Run("DeadItemsPastMaxFailedItemsFailTheJobAtOnce", func(t *testing.T) {
		t.Parallel()
		deadItems(t, "30s")
	})

	t.Run("BackoffLimitFailsEveryWorker", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "xback", "--backoff-limit", "0", "--lease", "1s", "--batch-size", "1")
		e.ok("push", "xback", "--seal", "a", "b", "c", "d")
		pids := filepath.Join(e.dir, "pids")
		cmd := []string{"--job", "xback", "--", "sh", "-c", `echo $$ >> "$0"; exec sleep 1000`, pids}
		w1, w2 := e.startWorker(cmd...), e.startWorker(cmd...)
		e.waitStatus("xback", time.Minute, "both workers run an item", func(s jobstate.Status) bool {
			return s.Active == 2 && s.Items.Leased == 2
		})
		// One dies; once its heartbeat is found missing, its failure is
		// one more than --backoff-limit 0 allows.
		w1.Signal(t, syscall.SIGKILL)
		w1.Wait(t, 10*time.Second)
		require.Equal(t, 1, w2.Wait(t, time.Minute), "the survivor of a failed Job exits 1: %s", w2)
		require.Contains(t, w2.Stderr(), "BackoffLimitExceeded")
		requireGone(t, 10*time.Second, "the items' commands", pidsIn(t, pids)...)
		s := e.status("xback")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		requireConditionOrder(t, s, jobstate.ReasonBackoffLimitExceeded, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.EqualValues(t, 1, s.Failed, "the killed worker")
		require.Zero(t, s.Succeeded)
	})

	t.Run("ActiveDeadlineFailsEveryWorker", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "xlate", "--active-deadline", "1s", "--batch-size", "1")
		e.ok("push", "xlate", "--seal", "a", "b", "c", "d")
		pids := filepath.Join(e.dir, "pids")
		cmd := []string{"--job", "xlate", "--", "sh", "-c", `echo $$ >> "$0"; exec sleep 1000`, pids}
		w1, w2 := e.startWorker(cmd...), e.startWorker(cmd...)
		waitAll(t, 1, "the Job ran past its deadline", w1, w2)
		for _, w := range []*testkit.Proc{w1, w2} {
			require.Contains(t, w.Stderr(), "DeadlineExceeded")
		}
		requireGone(t, 10*time.Second, "the items' commands", pidsIn(t, pids)...)
		s := e.status("xlate")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		requireConditionOrder(t, s, jobstate.ReasonDeadlineExceeded, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.Zero(t, s.Items.Succeeded)
		require.Zero(t, s.Failed, "workers stopped by the Job's failure are not worker failures")
	})

	t.Run("CompleteExitsZeroAndALateWorkerCountsForNothing", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "xok")
		e.ok("push", "xok", "--seal", "-f", writeItems(t, e.dir, "items.txt", numbered("i-", 30)))
		cmd := []string{"--job", "xok", "--", "sh", "-c", `cat >/dev/null; echo ran`}
		ws := []*testkit.Proc{e.startWorker(cmd...), e.startWorker(cmd...), e.startWorker(cmd...)}
		waitAll(t, 0, "the Job succeeded", ws...)
		s := e.status("xok")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		require.EqualValues(t, 30, s.Items.Succeeded)
		require.EqualValues(t, 3, s.Succeeded)

		late := e.startWorker(cmd...)
		require.Equal(t, 0, late.Wait(t, time.Minute), "a worker that joins a Complete Job exits 0: %s", late)
		require.Empty(t, late.Stdout(), "it ran nothing")
		after := e.status("xok")
		require.EqualValues(t, 3, after.Succeeded, "it does not raise status.succeeded")
		require.Zero(t, after.Failed)
		require.Equal(t, s.Items, after.Items)
		require.Equal(t, s.Conditions, after.Conditions)
	})
}

// TestPlainWorkersEndTheJob: with no serve, watch or run, the workers
// themselves move a Job to its end: Complete once the last of them exited,
// Failed when items are dead.
func TestPlainWorkersEndTheJob(t *testing.T) {
	t.Parallel()
	root := setup(t)

	t.Run("CompleteOnceTheLastWorkerExits", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "plain")
		// b registers and is frozen before there is work; a does it all.
		b := e.startWorker("--job", "plain", "--id", "b", "--", "true")
		e.waitStatus("plain", time.Minute, "b registered", func(s jobstate.Status) bool { return s.Ready == 1 })
		b.Signal(t, syscall.SIGSTOP)
		e.ok("push", "plain", "--seal", "-f", writeItems(t, e.dir, "items.txt", numbered("p-", 20)))
		a := e.startWorker("--job", "plain", "--id", "a", "--", "true")
		require.Equal(t, 0, a.Wait(t, time.Minute), a)
		s := e.status("plain")
		require.Equal(t, jobstate.PhaseSucceeding, s.Phase, "drained, but b has not exited: %s", brief(s))
		require.True(t, s.Done)
		requireConditionOrder(t, s, jobstate.ReasonDrained, jobstate.ConditionSuccessCriteriaMet)
		require.Nil(t, s.CompletionTime)

		b.Signal(t, syscall.SIGCONT)
		require.Equal(t, 0, b.Wait(t, time.Minute), b)
		s = e.status("plain")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, "the last worker to exit completed the Job: %s", brief(s))
		requireConditionOrder(t, s, jobstate.ReasonDrained, jobstate.ConditionSuccessCriteriaMet, jobstate.ConditionComplete)
		require.EqualValues(t, 2, s.Succeeded)
		require.EqualValues(t, 20, s.Items.Succeeded)
		require.NotNil(t, s.CompletionTime)
	})

	t.Run("FailedWithDeadItems", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "plainbad", "--max-attempts", "1")
		// Both workers join before there is work (see
		// AWorkerJoiningADrainedJobWithDeadItemsExitsOne for one that
		// joins late).
		cmd := []string{"--job", "plainbad", "--", "sh", "-c", `[ "$(cat)" != bad ]`}
		w1, w2 := e.startWorker(cmd...), e.startWorker(cmd...)
		e.waitStatus("plainbad", time.Minute, "both workers registered", func(s jobstate.Status) bool { return s.Ready == 2 })
		e.ok("push", "plainbad", "--seal", "good-1", "bad", "good-2", "good-3")
		waitAll(t, 1, "a dead item fails the Job", w1, w2)
		s := e.status("plainbad")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, "the last worker to exit failed the Job: %s", brief(s))
		requireConditionOrder(t, s, jobstate.ReasonFailedItems, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.EqualValues(t, 3, s.Items.Succeeded)
		require.EqualValues(t, 1, s.Items.Dead)
		require.Zero(t, s.Failed, "the workers did not fail; the Job did")
	})

	t.Run("AWorkerJoiningADrainedJobWithDeadItemsExitsOne", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		e.ok("create", "latebad", "--max-attempts", "1")
		e.ok("push", "latebad", "--seal", "bad")
		// A worker takes the item, which fails for good, finds the Job
		// drained, and dies before it runs the lifecycle.
		st := store.New(e.rdb)
		ctx := t.Context()
		reg, err := st.Register(ctx, "latebad", "", "crashed", []byte(`{"id":"crashed"}`))
		require.NoError(t, err)
		lr, err := st.Lease(ctx, "latebad", store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "crashed", Seq: 1, Want: 1})
		require.NoError(t, err)
		require.NotNil(t, lr.Lease, "%+v", lr)
		res, err := st.Settle(ctx, "latebad", store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1,
			Leases: []store.Settlement{{Token: lr.Lease.Token, Started: -1,
				Failed: []store.Failure{{ID: lr.Lease.Items[0].ID, Action: store.ActionCount, Err: "exit status 1"}}}}})
		require.NoError(t, err)
		require.Equal(t, 1, res.Dead)
		_, err = st.Lease(ctx, "latebad", store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "crashed", Seq: 2, Want: 1})
		require.ErrorIs(t, err, store.ErrDrained)
		s := e.status("latebad")
		require.True(t, s.Done, brief(s))
		require.NotEqual(t, jobstate.PhaseFailing, s.Phase, "the window: drained with a dead item, not yet Failing")

		w := e.startWorker("--job", "latebad", "--", "true")
		require.Equal(t, 1, w.Wait(t, time.Minute), "the Job fails (a dead item): the worker that joins it says so: %s", w)
	})
}

// runs reads a log of "KEY ATTEMPT" lines, one per run, into the runs of
// each key, in order.
func runs(t *testing.T, log string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range readLines(t, log) {
		k, attempt, ok := strings.Cut(l, " ")
		require.True(t, ok, "log line %q", l)
		out[k] = append(out[k], attempt)
	}
	return out
}

// TestFailurePolicy: rules on an item's exit code or timeout decide what
// its failure does, as Kubernetes' podFailurePolicy does for a Pod.
func TestFailurePolicy(t *testing.T) {
	t.Parallel()
	root := setup(t)
	// logged is an item command that records "ITEM ATTEMPT" and then runs
	// body with the item in $it.
	logged := func(log, body string) []string {
		return []string{"sh", "-c", `IFS= read -r it; echo "$it $WORKQ_ATTEMPT" >> "$0"; ` + body, log}
	}

	// failJob runs a worker on a Job whose first item exits 42, under
	// FailJob:exit=42, with the lease given.
	failJob := func(t *testing.T, lease string) {
		e := root.sub(t)
		job := "fpjob-" + lease
		log := filepath.Join(e.dir, "log")
		e.ok("create", job, "--failure-policy", "FailJob:exit=42", "--max-attempts", "3", "--batch-size", "1", "--lease", lease)
		e.ok("push", job, "--seal", "-f", writeItems(t, e.dir, "items.txt", append([]string{"fatal"}, numbered("ok-", 60)...)))
		w := e.startWorker(append([]string{"--job", job, "--"}, logged(log, `[ "$it" != fatal ] || exit 42; sleep 0.1`)...)...)
		require.Equal(t, 1, w.Wait(t, time.Minute), w)
		require.Contains(t, w.Stderr(), "PodFailurePolicy")
		s := e.status(job)
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		requireConditionOrder(t, s, jobstate.ReasonPodFailurePolicy, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.Contains(t, condition(t, s, jobstate.ConditionFailed).Message, "FailJob:exit=42")
		require.Equal(t, []string{"1"}, runs(t, log)["fatal"], "the item is not retried, whatever --max-attempts")
		dead, err := e.in.Dead(t.Context(), job, 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, "fatal", dead[0].Item)
		require.Equal(t, 1, dead[0].Attempts)
		require.Less(t, s.Items.Succeeded, int64(60), "the Job failed at once, not at its end: %s", brief(s))
	}

	t.Run("FailJobOnAnExitCodeFailsTheJob", func(t *testing.T) {
		t.Parallel()
		// A 3s lease: the worker runs the lifecycle every second.
		failJob(t, "3s")
	})

	t.Run("FailJobOnAnExitCodeFailsTheJobAtOnce", func(t *testing.T) {
		t.Parallel()
		failJob(t, "30s")
	})

	t.Run("IgnoreOnAnExitCodeRetriesWithoutUsingAnAttempt", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		e.ok("create", "fpignore", "--failure-policy", "Ignore:exit=75", "--max-attempts", "1",
			"--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "fpignore", "--seal", "flaky")
		// It fails with 75 on its first two runs, then succeeds.
		w := e.startWorker(append([]string{"--job", "fpignore", "--"},
			logged(log, `[ "$(grep -c . "$0")" -ge 3 ] || exit 75`)...)...)
		require.Equal(t, 0, w.Wait(t, time.Minute), "with --max-attempts 1, the item succeeded on its third run: %s", w)
		s := e.status("fpignore")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		require.EqualValues(t, 1, s.Items.Succeeded)
		require.Zero(t, s.Items.Dead)
		require.Equal(t, []string{"1", "1", "1"}, runs(t, log)["flaky"], "three runs, none used an attempt")
	})

	t.Run("FailIndexMakesTheItemDeadAtItsFirstFailure", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		e.ok("create", "fpindex", "--completions", "3", "--failure-policy", "FailIndex:exit=3", "--max-attempts", "5",
			"--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		w := e.startWorker("--job", "fpindex", "--", "sh", "-c",
			`echo "$WORKQ_INDEX $WORKQ_ATTEMPT" >> "$0"; [ "$WORKQ_INDEX" != 1 ] || exit 3`, log)
		require.Equal(t, 1, w.Wait(t, time.Minute), "a failed index fails the Job at its end: %s", w)
		s := e.status("fpindex")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		requireConditionOrder(t, s, jobstate.ReasonFailedIndexes, jobstate.ConditionFailureTarget, jobstate.ConditionFailed)
		require.Equal(t, "1", s.FailedIndexes)
		require.Equal(t, "0,2", s.CompletedIndexes)
		require.Equal(t, map[string][]string{"0": {"1"}, "1": {"1"}, "2": {"1"}}, runs(t, log), "index 1 ran once, though --max-attempts is 5")
		require.EqualValues(t, 1, s.Items.Dead)
	})

	t.Run("CountOnTimeoutUsesAnAttemptPerTimeout", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		e.ok("create", "fpcount", "--failure-policy", "Count:timeout", "--max-attempts", "2",
			"--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "fpcount", "--seal", "hang", "quick")
		w := e.startWorker(append([]string{"--job", "fpcount", "--timeout", "300ms", "--"},
			logged(log, `[ "$it" != hang ] || exec sleep 1000`)...)...)
		require.Equal(t, 1, w.Wait(t, time.Minute), w)
		s := e.status("fpcount")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		require.Equal(t, jobstate.ReasonFailedItems, condition(t, s, jobstate.ConditionFailed).Reason)
		require.Equal(t, []string{"1", "2"}, runs(t, log)["hang"], "each timeout used an attempt, up to --max-attempts 2")
		require.EqualValues(t, 2, s.Items.FailedAttempts)
		require.EqualValues(t, 1, s.Items.Succeeded)
		dead, err := e.in.Dead(t.Context(), "fpcount", 0)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, 2, dead[0].Attempts)
		require.Contains(t, dead[0].LastError, "timed out after 300ms (--timeout)")
	})

	t.Run("FailJobOnTimeoutFailsTheJobAtTheFirstTimeout", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		e.ok("create", "fptimeout", "--failure-policy", "FailJob:timeout", "--max-attempts", "3",
			"--retry-backoff", "10ms", "--retry-backoff-max", "20ms")
		e.ok("push", "fptimeout", "--seal", "hang")
		w := e.startWorker(append([]string{"--job", "fptimeout", "--timeout", "300ms", "--"},
			logged(log, `exec sleep 1000`)...)...)
		require.Equal(t, 1, w.Wait(t, time.Minute), w)
		s := e.status("fptimeout")
		require.Equal(t, jobstate.PhaseFailed, s.Phase, brief(s))
		require.Equal(t, jobstate.ReasonPodFailurePolicy, condition(t, s, jobstate.ConditionFailed).Reason)
		require.Contains(t, condition(t, s, jobstate.ConditionFailed).Message, "FailJob:timeout")
		require.Equal(t, []string{"1"}, runs(t, log)["hang"])
	})
}

// TestSuccessPolicyAndCompletionModes: how a fixed completion count Job
// succeeds, and Jobs created suspended.
func TestSuccessPolicyAndCompletionModes(t *testing.T) {
	t.Parallel()
	root := setup(t)

	t.Run("SuccessPolicyEndsTheJobOnceItsIndexesSucceeded", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		// Indexes 0 and 1 are quick; the others would run for 1000s.
		r := e.run("--job", "sp", "--completions", "6", "-p", "3", "--success-policy", "indexes=0-1", "--", "sh", "-c",
			`echo "start $WORKQ_INDEX $$" >> "$0"; case "$WORKQ_INDEX" in 0|1) sleep 0.2;; *) sleep 1000;; esac; echo "end $WORKQ_INDEX $$" >> "$0"`, log)
		require.Equal(t, 0, r.Code, r)
		s := e.status("sp")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		requireConditionOrder(t, s, jobstate.ReasonSuccessPolicy, jobstate.ConditionSuccessCriteriaMet, jobstate.ConditionComplete)
		require.Contains(t, condition(t, s, jobstate.ConditionComplete).Message, "indexes=0-1")
		require.Equal(t, "0-1", s.CompletedIndexes)
		require.EqualValues(t, 2, s.Items.Succeeded)
		var ended []string
		var started []int
		for _, l := range readLines(t, log) {
			f := strings.Fields(l)
			require.Len(t, f, 3, l)
			switch f[0] {
			case "end":
				ended = append(ended, f[1])
			case "start":
				if f[1] != "0" && f[1] != "1" {
					pid, err := strconv.Atoi(f[2])
					require.NoError(t, err)
					started = append(started, pid)
				}
			}
		}
		require.ElementsMatch(t, []string{"0", "1"}, ended, "no other index ran to its end")
		requireGone(t, 10*time.Second, "the other indexes' commands, stopped", started...)
	})

	t.Run("NonIndexedCompletionsHaveNoIndex", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		r := e.run("--job", "nonidx", "--completions", "4", "--completion-mode", "NonIndexed", "-p", "2", "--", "sh", "-c",
			`echo "index=[${WORKQ_INDEX-unset}] jci=[${JOB_COMPLETION_INDEX-unset}]"`)
		require.Equal(t, 0, r.Code, r)
		require.Equal(t, strings.Repeat("index=[unset] jci=[unset]\n", 4), r.Stdout, "four successes, none with an index")
		s := e.status("nonidx")
		require.Equal(t, jobstate.KindNonIndexed, s.Kind)
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		require.EqualValues(t, 4, s.Items.Succeeded)
		require.Equal(t, jobstate.ReasonCompletionsReached, condition(t, s, jobstate.ConditionComplete).Reason)
	})

	t.Run("CreatedSuspendedNothingRunsUntilResume", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log := filepath.Join(e.dir, "log")
		require.Equal(t, "created job held (WorkQueue)\n", e.ok("create", "held", "--suspend"))
		e.ok("push", "held", "--seal", "a", "b", "c")
		s := e.status("held")
		require.Equal(t, jobstate.PhaseSuspended, s.Phase)
		require.True(t, s.Suspended)
		c := condition(t, s, jobstate.ConditionSuspended)
		require.Equal(t, "True", c.Status)
		require.Equal(t, jobstate.ReasonJobSuspended, c.Reason)

		w := e.startWorker("--job", "held", "--", "sh", "-c", `cat >> "$0"; echo >> "$0"`, log)
		e.waitStatus("held", time.Minute, "the worker registered", func(s jobstate.Status) bool { return s.Ready == 1 })
		observe := time.Now().Add(1500 * time.Millisecond) // several worker wake-ups
		for time.Now().Before(observe) {
			s = e.status("held")
			require.Zero(t, s.Items.Leased, "a suspended Job handed out a lease: %s", brief(s))
			require.Nil(t, s.StartTime, "a Job created suspended has not started")
			require.Empty(t, readLines(t, log), "an item ran while the Job was suspended")
		}
		require.False(t, w.Exited(), "the worker waits: %s", w)

		require.Equal(t, "resumed held\n", e.ok("resume", "held"))
		require.Equal(t, 0, w.Wait(t, time.Minute), w)
		require.ElementsMatch(t, []string{"a", "b", "c"}, readLines(t, log))
		s = e.status("held")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		c = condition(t, s, jobstate.ConditionSuspended)
		require.Equal(t, "False", c.Status)
		require.Equal(t, jobstate.ReasonJobResumed, c.Reason)
	})

	t.Run("ASuspendedJobsWorkersHandBackWhatTheyHaveNotStarted", func(t *testing.T) {
		t.Parallel()
		e := root.sub(t)
		log, gate := filepath.Join(e.dir, "log"), filepath.Join(e.dir, "gate")
		const n = 1000
		e.ok("create", "handback")
		e.ok("push", "handback", "--seal", "-f", writeItems(t, e.dir, "items.txt", numbered("h-", n)))
		// Over a slow link (50ms more per round trip) quick items are
		// leased well ahead of the one executor. Item 100 waits for the
		// gate file: meanwhile the worker holds the items it leased after
		// it, not started.
		slow := newLatencyProxy(t, e.srv.Addr, 50*time.Millisecond)
		w := testkit.Start(t, testkit.Command{Bin: e.bins.Worker, Env: []string{"WORKQ_REDIS_URL=redis://" + slow + "/0"},
			Args: []string{"--job", "handback", "--", "sh", "-c",
				`IFS= read -r it; echo "$WORKQ_ITEM_ID $WORKQ_ATTEMPT" >> "$0"; [ "$it" != h-00100 ] || until [ -e "$1" ]; do sleep 0.01; done`,
				log, gate}})
		testkit.Eventually(t, time.Minute, "item 100 runs", func() (bool, string) {
			return slices.Contains(readLines(t, log), "100 1"), fmt.Sprintf("%d runs", countLines(log))
		})
		s := e.waitStatus("handback", time.Minute, "the worker holds items it has not started", func(s jobstate.Status) bool {
			return s.Items.Leased >= 2
		})
		t.Logf("before the suspend: %s", brief(s))
		require.Equal(t, "suspended handback\n", e.ok("suspend", "handback"))
		s = e.waitStatus("handback", time.Minute, "what was not started is handed back", func(s jobstate.Status) bool {
			return s.Items.Leased == 1 && s.Items.Returned > 0
		})
		t.Logf("suspended: %s", brief(s))
		require.Zero(t, s.Items.Retrying, "%s", brief(s))
		require.Zero(t, s.Items.FailedAttempts, "handing back uses no attempt")
		require.Equal(t, jobstate.PhaseSuspended, s.Phase)
		returned := s.Items.Returned

		// Item 100 ends; nothing starts after it while suspended.
		require.NoError(t, os.WriteFile(gate, nil, 0o644))
		s = e.waitStatus("handback", time.Minute, "item 100 finished", func(s jobstate.Status) bool { return s.Items.Leased == 0 })
		ran := countLines(log)
		require.EqualValues(t, s.Items.Succeeded, ran, "every run that started finished and was counted")
		require.Equal(t, returned, s.Items.Returned)
		observe := time.Now().Add(time.Second)
		for time.Now().Before(observe) {
			require.Equal(t, ran, countLines(log), "an item started while the Job was suspended")
		}
		require.False(t, w.Exited(), "the worker waits: %s", w)

		e.ok("resume", "handback")
		require.Equal(t, 0, w.Wait(t, 2*time.Minute), w)
		s = e.status("handback")
		require.Equal(t, jobstate.PhaseComplete, s.Phase, brief(s))
		require.EqualValues(t, n, s.Items.Succeeded)
		require.Zero(t, s.Items.Returned)
		counts := testkit.Executions(t, filepath.Dir(log), filepath.Base(log), func(_, line string) (string, bool) {
			id, attempt, _ := strings.Cut(line, " ")
			require.Equal(t, "1", attempt, "item %s", id)
			return id, true
		})
		require.Len(t, counts, n, "every item ran, the returned ones after the resume")
		for id, c := range counts {
			require.Equal(t, 1, c, "item %s ran once", id)
		}
	})
}
