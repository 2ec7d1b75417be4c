package jobstate_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now = t0.Add(time.Hour)
)

// want is the expected outcome of Next, without the condition's message
// (checked separately where it matters).
type want struct {
	ok     bool
	to     jobstate.Phase
	cond   jobstate.ConditionType
	reason string
	guard  jobstate.Guard
}

func none() want { return want{} }

func failing(reason string, g jobstate.Guard) want {
	return want{ok: true, to: jobstate.PhaseFailing, cond: jobstate.ConditionFailureTarget, reason: reason, guard: g}
}

func succeeding(reason string, g jobstate.Guard) want {
	return want{ok: true, to: jobstate.PhaseSucceeding, cond: jobstate.ConditionSuccessCriteriaMet, reason: reason, guard: g}
}

func TestNext(t *testing.T) {
	t.Parallel()
	indexed := jobstate.Spec{Completions: jobstate.Ptr(4)}
	successful := jobstate.Spec{Completions: jobstate.Ptr(4), SuccessPolicy: []jobstate.SuccessRule{{SucceededIndexes: "0-2"}}}
	deadline := jobstate.Spec{ActiveDeadline: jobstate.Duration(10 * time.Minute)}
	started := now.Add(-10 * time.Minute) // exactly at the deadline
	cases := []struct {
		name string
		spec jobstate.Spec
		obs  jobstate.Observed
		want want
	}{
		// Nothing happens to a healthy running Job.
		{"RunningJobStaysRunning", jobstate.Spec{}, jobstate.Observed{LiveWorkers: 3, StartTime: t0, Now: now}, none()},
		{"PendingJobStaysPending", jobstate.Spec{}, jobstate.Observed{Now: now}, none()},

		// Terminal phases never move, whatever else holds.
		{"NothingAfterComplete", deadline, jobstate.Observed{Stored: jobstate.PhaseComplete, WorkerFailures: 99, Dead: 9, Done: true, StartTime: t0, Now: now}, none()},
		{"NothingAfterFailed", deadline, jobstate.Observed{Stored: jobstate.PhaseFailed, WorkerFailures: 99, Dead: 9, Done: true, StartTime: t0, Now: now}, none()},

		// Failing becomes Failed only once no worker is left.
		{"FailingWaitsForLiveWorkers", jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseFailing, LiveWorkers: 1, WorkerFailures: 99, Now: now}, none()},
		{"FailingWithNoLiveWorkerIsFailed", jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseFailing, FailureReason: jobstate.ReasonDeadlineExceeded, FailureMessage: "the Job ran longer than its active deadline of 1m0s", Now: now},
			want{ok: true, to: jobstate.PhaseFailed, cond: jobstate.ConditionFailed, reason: jobstate.ReasonDeadlineExceeded, guard: jobstate.GuardTerminated}},
		{"FailingIgnoresDoneAndDead", jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseFailing, LiveWorkers: 2, Done: true, Dead: 3, Now: now}, none()},

		// Backoff limit: strictly more failures than the limit.
		{"BackoffLimitDefaultSixEqualIsFine", jobstate.Spec{}, jobstate.Observed{WorkerFailures: 6, LiveWorkers: 1, Now: now}, none()},
		{"BackoffLimitDefaultSixExceeded", jobstate.Spec{}, jobstate.Observed{WorkerFailures: 7, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},
		{"BackoffLimitZeroFailsOnFirstFailure", jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}, jobstate.Observed{WorkerFailures: 1, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},
		{"BackoffLimitZeroNoFailureIsFine", jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}, jobstate.Observed{WorkerFailures: 0, LiveWorkers: 1, Now: now}, none()},
		{"BackoffLimitTwoEqual", jobstate.Spec{BackoffLimit: jobstate.Ptr(2)}, jobstate.Observed{WorkerFailures: 2, Now: now}, none()},
		{"BackoffLimitTwoExceeded", jobstate.Spec{BackoffLimit: jobstate.Ptr(2)}, jobstate.Observed{WorkerFailures: 3, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},
		{"BackoffLimitBeatsADrainedJob", jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}, jobstate.Observed{WorkerFailures: 1, Done: true, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},
		{"BackoffLimitIsCheckedBeforeDeadline", jobstate.Spec{BackoffLimit: jobstate.Ptr(0), ActiveDeadline: jobstate.Duration(time.Minute)}, jobstate.Observed{WorkerFailures: 1, StartTime: t0, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},

		// Active deadline: from the start time, only while running.
		{"DeadlineReachedExactly", deadline, jobstate.Observed{StartTime: started, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonDeadlineExceeded, jobstate.GuardDeadline)},
		{"DeadlinePassed", deadline, jobstate.Observed{StartTime: t0, Now: now}, failing(jobstate.ReasonDeadlineExceeded, jobstate.GuardDeadline)},
		{"DeadlineNotYetReached", deadline, jobstate.Observed{StartTime: started.Add(time.Millisecond), Now: now}, none()},
		{"DeadlineIgnoredWhileSuspended", deadline, jobstate.Observed{Suspended: true, StartTime: t0, Now: now}, none()},
		{"DeadlineIgnoredBeforeStart", deadline, jobstate.Observed{Now: now}, none()},
		{"NoDeadlineNoFailure", jobstate.Spec{}, jobstate.Observed{StartTime: t0.Add(-1000 * time.Hour), Now: now}, none()},
		{"DeadlineIsCheckedBeforeMaxFailedItems", jobstate.Spec{ActiveDeadline: jobstate.Duration(time.Second), MaxFailedItems: jobstate.Ptr(0)}, jobstate.Observed{Dead: 5, StartTime: t0, Now: now}, failing(jobstate.ReasonDeadlineExceeded, jobstate.GuardDeadline)},

		// Max failed items: strictly more dead items than allowed.
		{"MaxFailedItemsEqualIsFine", jobstate.Spec{MaxFailedItems: jobstate.Ptr(2)}, jobstate.Observed{Dead: 2, LiveWorkers: 1, Now: now}, none()},
		{"MaxFailedItemsExceeded", jobstate.Spec{MaxFailedItems: jobstate.Ptr(2)}, jobstate.Observed{Dead: 3, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonMaxFailedItemsExceeded, jobstate.GuardMaxFailedItems)},
		{"MaxFailedItemsZeroFailsOnFirstDeadItem", jobstate.Spec{MaxFailedItems: jobstate.Ptr(0)}, jobstate.Observed{Dead: 1, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonMaxFailedItemsExceeded, jobstate.GuardMaxFailedItems)},
		{"MaxFailedIndexesExceededOnIndexedJob", jobstate.Spec{Completions: jobstate.Ptr(4), MaxFailedItems: jobstate.Ptr(1)}, jobstate.Observed{Dead: 2, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonMaxFailedIndexesExceeded, jobstate.GuardMaxFailedItems)},
		{"UnsetMaxFailedItemsNeverFailsEarly", jobstate.Spec{}, jobstate.Observed{Dead: 1000, LiveWorkers: 1, Now: now}, none()},
		{"MaxFailedItemsBeatsADrainedJob", jobstate.Spec{MaxFailedItems: jobstate.Ptr(0)}, jobstate.Observed{Dead: 1, Done: true, Now: now}, failing(jobstate.ReasonMaxFailedItemsExceeded, jobstate.GuardMaxFailedItems)},

		// A drained Job first meets its success criteria (workers stop),
		// and is Complete once every worker has terminated.
		{"NotDoneIsNotComplete", jobstate.Spec{}, jobstate.Observed{LiveWorkers: 0, StartTime: t0, Now: now}, none()},
		{"DrainedMeetsItsSuccessCriteria", jobstate.Spec{}, jobstate.Observed{Done: true, LiveWorkers: 1, StartTime: t0, Now: now}, succeeding(jobstate.ReasonDrained, jobstate.GuardDrained)},
		{"DrainedWithoutWorkersMeetsItsSuccessCriteriaFirst", jobstate.Spec{}, jobstate.Observed{Done: true, StartTime: t0, Now: now}, succeeding(jobstate.ReasonDrained, jobstate.GuardDrained)},
		{"IndexedDrainedIsCompletionsReached", indexed, jobstate.Observed{Done: true, StartTime: t0, Now: now}, succeeding(jobstate.ReasonCompletionsReached, jobstate.GuardDrained)},
		{"SucceedingWaitsForLiveWorkers", jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseSucceeding, LiveWorkers: 2, Done: true, Now: now}, none()},
		{"SucceedingWithNoLiveWorkerIsComplete", jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseSucceeding, SuccessReason: jobstate.ReasonDrained, SuccessMessage: "the queue is sealed and drained", Done: true, Now: now},
			want{ok: true, to: jobstate.PhaseComplete, cond: jobstate.ConditionComplete, reason: jobstate.ReasonDrained, guard: jobstate.GuardSucceeded}},
		{"SucceedingIgnoresLaterFailures", jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}, jobstate.Observed{Stored: jobstate.PhaseSucceeding, SuccessReason: jobstate.ReasonDrained, SuccessMessage: "drained", WorkerFailures: 5, Now: now},
			want{ok: true, to: jobstate.PhaseComplete, cond: jobstate.ConditionComplete, reason: jobstate.ReasonDrained, guard: jobstate.GuardSucceeded}},

		// A drained Job with dead items fails, first as a FailureTarget.
		{"DrainedWithDeadItemsFails", jobstate.Spec{}, jobstate.Observed{Done: true, Dead: 1, Now: now}, failing(jobstate.ReasonFailedItems, jobstate.GuardDrainedDead)},
		{"DrainedWithDeadItemsFailsWhileWorkersStop", jobstate.Spec{}, jobstate.Observed{Done: true, Dead: 2, LiveWorkers: 1, Now: now}, failing(jobstate.ReasonFailedItems, jobstate.GuardDrainedDead)},
		{"IndexedDrainedWithDeadIndexesFails", indexed, jobstate.Observed{Done: true, Dead: 1, Now: now}, failing(jobstate.ReasonFailedIndexes, jobstate.GuardDrainedDead)},
		{"DeadItemsWithinTheBudgetStillFailTheDrainedJob", jobstate.Spec{MaxFailedItems: jobstate.Ptr(5)}, jobstate.Observed{Done: true, Dead: 5, Now: now}, failing(jobstate.ReasonFailedItems, jobstate.GuardDrainedDead)},
		{"SuspendedDrainedJobSucceeds", deadline, jobstate.Observed{Done: true, Suspended: true, StartTime: t0, Now: now}, succeeding(jobstate.ReasonDrained, jobstate.GuardDrained)},

		// Lost state, a FailJob rule and a success policy.
		{"StateLostFailsFirst", jobstate.Spec{BackoffLimit: jobstate.Ptr(0)}, jobstate.Observed{StateLost: "1 items were handed out but 0 are accounted for", WorkerFailures: 3, Done: true, Now: now}, failing(jobstate.ReasonStateLost, jobstate.GuardStateLost)},
		{"StateLostIsNeverComplete", jobstate.Spec{}, jobstate.Observed{StateLost: "x", Done: true, Now: now}, failing(jobstate.ReasonStateLost, jobstate.GuardStateLost)},
		{"FailJobRuleFailsTheJob", jobstate.Spec{}, jobstate.Observed{FailJob: "item 3: exit status 42", LiveWorkers: 2, Now: now}, failing(jobstate.ReasonPodFailurePolicy, jobstate.GuardFailurePolicy)},
		{"SuccessPolicyMet", successful, jobstate.Observed{Completed: "0-3", LiveWorkers: 2, Now: now}, succeeding(jobstate.ReasonSuccessPolicy, jobstate.GuardSuccessPolicy)},
		{"SuccessPolicyNotYetMet", successful, jobstate.Observed{Completed: "0,3", LiveWorkers: 2, Now: now}, none()},
		{"SuccessPolicyLosesToAFailure", successful, jobstate.Observed{Completed: "0-3", WorkerFailures: 99, Now: now}, failing(jobstate.ReasonBackoffLimitExceeded, jobstate.GuardBackoffLimit)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, ok := jobstate.Next(tc.spec, tc.obs)
			require.Equal(t, tc.want.ok, ok)
			if !tc.want.ok {
				require.Equal(t, jobstate.Transition{}, tr, "no transition carries no data")
				return
			}
			require.Equal(t, tc.want.to, tr.To)
			require.Equal(t, tc.want.guard, tr.Guard)
			require.Equal(t, tc.want.cond, tr.Condition.Type)
			require.Equal(t, tc.want.reason, tr.Condition.Reason)
			require.Equal(t, "True", tr.Condition.Status)
			require.Equal(t, tc.obs.Now, tr.Condition.LastTransitionTime, "conditions are stamped with the observed server time")
			require.NotEmpty(t, tr.Condition.Message)
		})
	}
}

func TestNextMessages(t *testing.T) {
	t.Parallel()

	t.Run("BackoffLimitMessageNamesCountAndLimit", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{BackoffLimit: jobstate.Ptr(2)}, jobstate.Observed{WorkerFailures: 3, Now: now})
		require.True(t, ok)
		require.Contains(t, tr.Condition.Message, "3 worker failures")
		require.Contains(t, tr.Condition.Message, "limit of 2")
	})

	t.Run("DeadlineMessageNamesTheDeadline", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{ActiveDeadline: jobstate.Duration(90 * time.Second)}, jobstate.Observed{StartTime: t0, Now: now})
		require.True(t, ok)
		require.Contains(t, tr.Condition.Message, "1m30s")
	})

	t.Run("MaxFailedItemsMessageNamesCounts", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{MaxFailedItems: jobstate.Ptr(1)}, jobstate.Observed{Dead: 4, Now: now})
		require.True(t, ok)
		require.Contains(t, tr.Condition.Message, "4 dead items")
		require.Contains(t, tr.Condition.Message, "max-failed-items 1")
	})

	t.Run("CompletionsReachedNamesTheCount", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{Completions: jobstate.Ptr(7)}, jobstate.Observed{Done: true, Now: now})
		require.True(t, ok)
		require.Contains(t, tr.Condition.Message, "all 7 completions")
	})

	t.Run("FailedRepeatsTheFailureTargetReasonAndMessage", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{}, jobstate.Observed{Stored: jobstate.PhaseFailing,
			FailureReason: jobstate.ReasonBackoffLimitExceeded, FailureMessage: "7 worker failures exceed the backoff limit of 6", Now: now})
		require.True(t, ok)
		require.Equal(t, jobstate.ConditionFailed, tr.Condition.Type)
		require.Equal(t, jobstate.ReasonBackoffLimitExceeded, tr.Condition.Reason)
		require.Equal(t, "7 worker failures exceed the backoff limit of 6", tr.Condition.Message)
	})

	t.Run("DeadItemsMessagePointsToTheDeadCommand", func(t *testing.T) {
		t.Parallel()
		tr, ok := jobstate.Next(jobstate.Spec{}, jobstate.Observed{Done: true, Dead: 3, Now: now})
		require.True(t, ok)
		require.Contains(t, tr.Condition.Message, "3 items are dead")
		require.Contains(t, tr.Condition.Message, "coordinator dead")
	})
}

// TestNextFollowsTheLifecycle drives one Job through the phases the way the
// controller does: apply each transition, observe again.
func TestNextFollowsTheLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("FailureTargetThenFailedOnceWorkersTerminate", func(t *testing.T) {
		t.Parallel()
		spec := jobstate.Spec{BackoffLimit: jobstate.Ptr(1)}
		o := jobstate.Observed{WorkerFailures: 2, LiveWorkers: 2, StartTime: t0, Now: now}
		tr, ok := jobstate.Next(spec, o)
		require.True(t, ok)
		require.Equal(t, jobstate.PhaseFailing, tr.To)
		require.True(t, tr.To.Stopping())
		require.False(t, tr.To.Finished())

		o.Stored, o.FailureReason, o.FailureMessage = tr.To, tr.Condition.Reason, tr.Condition.Message
		_, ok = jobstate.Next(spec, o)
		require.False(t, ok, "workers are still stopping")

		o.LiveWorkers = 0
		tr, ok = jobstate.Next(spec, o)
		require.True(t, ok)
		require.Equal(t, jobstate.PhaseFailed, tr.To)
		require.True(t, tr.To.Finished())
		require.Equal(t, jobstate.ReasonBackoffLimitExceeded, tr.Condition.Reason)

		o.Stored = tr.To
		_, ok = jobstate.Next(spec, o)
		require.False(t, ok, "Failed is terminal")
	})

	t.Run("SuccessCriteriaMetThenCompleteThenTerminal", func(t *testing.T) {
		t.Parallel()
		o := jobstate.Observed{Done: true, LiveWorkers: 1, StartTime: t0, Now: now}
		tr, ok := jobstate.Next(jobstate.Spec{}, o)
		require.True(t, ok)
		require.Equal(t, jobstate.PhaseSucceeding, tr.To)
		require.True(t, tr.To.Stopping())
		o.Stored, o.SuccessReason, o.SuccessMessage = tr.To, tr.Condition.Reason, tr.Condition.Message
		_, ok = jobstate.Next(jobstate.Spec{}, o)
		require.False(t, ok, "a worker is still there")
		o.LiveWorkers = 0
		tr, ok = jobstate.Next(jobstate.Spec{}, o)
		require.True(t, ok)
		require.Equal(t, jobstate.PhaseComplete, tr.To)
		require.Equal(t, jobstate.ReasonDrained, tr.Condition.Reason)
		o.Stored = tr.To
		o.WorkerFailures = 100
		_, ok = jobstate.Next(jobstate.Spec{}, o)
		require.False(t, ok)
	})
}

func TestPhase(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p                  jobstate.Phase
		finished, stopping bool
	}{
		{jobstate.PhasePending, false, false},
		{jobstate.PhaseRunning, false, false},
		{jobstate.PhaseSuspended, false, false},
		{jobstate.PhaseFailing, false, true},
		{jobstate.PhaseSucceeding, false, true},
		{jobstate.PhaseComplete, true, true},
		{jobstate.PhaseFailed, true, true},
	}
	for _, tc := range cases {
		t.Run(string(tc.p), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.finished, tc.p.Finished())
			require.Equal(t, tc.stopping, tc.p.Stopping())
		})
	}
}

func TestDerivePhase(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name               string
		stored             jobstate.Phase
		suspended, started bool
		want               jobstate.Phase
	}{
		{"CreatedIsPending", "", false, false, jobstate.PhasePending},
		{"LeasedIsRunning", "", false, true, jobstate.PhaseRunning},
		{"SuspendedBeforeStart", "", true, false, jobstate.PhaseSuspended},
		{"SuspendedAfterStart", "", true, true, jobstate.PhaseSuspended},
		{"StoredFailingWinsOverSuspended", jobstate.PhaseFailing, true, true, jobstate.PhaseFailing},
		{"StoredCompleteWins", jobstate.PhaseComplete, false, true, jobstate.PhaseComplete},
		{"StoredFailedWinsEvenUnstarted", jobstate.PhaseFailed, false, false, jobstate.PhaseFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, jobstate.DerivePhase(tc.stored, tc.suspended, tc.started))
		})
	}
}

func TestSortConditions(t *testing.T) {
	t.Parallel()
	order := func(cs ...jobstate.Condition) []jobstate.ConditionType {
		jobstate.SortConditions(cs)
		got := make([]jobstate.ConditionType, len(cs))
		for i, c := range cs {
			got[i] = c.Type
		}
		return got
	}
	require.Equal(t, []jobstate.ConditionType{jobstate.ConditionSuspended, jobstate.ConditionComplete,
		jobstate.ConditionFailureTarget, jobstate.ConditionFailed}, order(
		jobstate.Condition{Type: jobstate.ConditionFailed, LastTransitionTime: now},
		jobstate.Condition{Type: jobstate.ConditionSuspended, LastTransitionTime: t0},
		jobstate.Condition{Type: jobstate.ConditionFailureTarget, LastTransitionTime: now},
		jobstate.Condition{Type: jobstate.ConditionComplete, LastTransitionTime: t0},
	), "by time; within one millisecond, a terminal condition last, as Kubernetes adds them")
	require.Equal(t, []jobstate.ConditionType{jobstate.ConditionSuccessCriteriaMet, jobstate.ConditionComplete}, order(
		jobstate.Condition{Type: jobstate.ConditionComplete, LastTransitionTime: now},
		jobstate.Condition{Type: jobstate.ConditionSuccessCriteriaMet, LastTransitionTime: now},
	), "SuccessCriteriaMet, then Complete, also within one millisecond")
}

func TestFailureExplainsAFailedJob(t *testing.T) {
	t.Parallel()
	st := jobstate.Status{Phase: jobstate.PhaseFailed, Conditions: []jobstate.Condition{
		{Type: jobstate.ConditionSuspended, Reason: "JobResumed", Message: "x"},
		{Type: jobstate.ConditionFailed, Reason: jobstate.ReasonFailedItems, Message: "1 item is dead"},
	}}
	require.Equal(t, "FailedItems: 1 item is dead", st.Failure())
	require.Equal(t, "StateLost: gone", jobstate.Status{Phase: jobstate.PhaseFailing, StateLost: "gone"}.Failure())
	require.Equal(t, "Running", jobstate.Status{Phase: jobstate.PhaseRunning}.Failure())
}
