package jobstate

import (
	"fmt"
	"time"
)

// Guard names the fact that justifies a transition. The store re-checks it
// atomically when it applies the transition, so a decision taken on a stale
// snapshot is refused instead of applied.
type Guard string

// The guards of the transitions Next can return.
const (
	GuardBackoffLimit   Guard = "backoff-limit"    // worker failures > backoffLimit
	GuardDeadline       Guard = "deadline"         // now >= start + activeDeadline, not suspended
	GuardMaxFailedItems Guard = "max-failed-items" // dead items > maxFailedItems
	GuardDrained        Guard = "drained"          // done, no live worker, no dead item
	GuardDrainedDead    Guard = "drained-dead"     // done, no live worker, some dead items
	GuardTerminated     Guard = "terminated"       // failing, no live worker
)

// Observed is what the controller read about a Job in one atomic snapshot.
type Observed struct {
	Stored Phase // the stored phase: "", Failing, Complete or Failed
	// FailureReason and FailureMessage are the FailureTarget condition's,
	// while Failing: Failed repeats them.
	FailureReason  string
	FailureMessage string
	Suspended      bool
	Done           bool
	Dead           int64
	WorkerFailures int64
	LiveWorkers    int64
	StartTime      time.Time // zero until the first lease
	Now            time.Time // the Redis server's clock
}

// Transition is a change of phase with the condition that records why.
type Transition struct {
	To        Phase
	Condition Condition // Status "True", LastTransitionTime Now
	Guard     Guard
}

// Next returns the transition a Job must take now, if any. It applies the
// Kubernetes Job rules: a failure reason first marks the Job Failing (the
// FailureTarget condition) so its workers stop, and Failed is recorded once
// none is left; Complete needs a worker to have exited 0 and every worker to
// have terminated; a drained Job with dead items fails with FailedItems.
func Next(spec Spec, o Observed) (Transition, bool) {
	spec = spec.WithDefaults()
	cond := func(t ConditionType, reason, msg string) Condition {
		return Condition{Type: t, Status: "True", Reason: reason, Message: msg, LastTransitionTime: o.Now}
	}
	switch o.Stored {
	case PhaseComplete, PhaseFailed:
		return Transition{}, false
	case PhaseFailing:
		if o.LiveWorkers == 0 {
			return Transition{To: PhaseFailed, Condition: cond(ConditionFailed, o.FailureReason, o.FailureMessage), Guard: GuardTerminated}, true
		}
		return Transition{}, false
	}
	failing := func(reason, msg string, g Guard) (Transition, bool) {
		return Transition{To: PhaseFailing, Condition: cond(ConditionFailureTarget, reason, msg), Guard: g}, true
	}
	indexed := spec.Kind() == KindIndexed
	if limit := *spec.BackoffLimit; o.WorkerFailures > int64(limit) {
		return failing(ReasonBackoffLimitExceeded, fmt.Sprintf("%d worker failures exceed the backoff limit of %d", o.WorkerFailures, limit), GuardBackoffLimit)
	}
	if d := spec.ActiveDeadline.D(); d > 0 && !o.Suspended && !o.StartTime.IsZero() && !o.Now.Before(o.StartTime.Add(d)) {
		return failing(ReasonDeadlineExceeded, fmt.Sprintf("the Job ran longer than its active deadline of %s", spec.ActiveDeadline), GuardDeadline)
	}
	if spec.MaxFailedItems != nil && o.Dead > int64(*spec.MaxFailedItems) {
		reason := ReasonMaxFailedItemsExceeded
		if indexed {
			reason = ReasonMaxFailedIndexesExceeded
		}
		return failing(reason, fmt.Sprintf("%d dead items exceed max-failed-items %d", o.Dead, *spec.MaxFailedItems), GuardMaxFailedItems)
	}
	if !o.Done || o.LiveWorkers > 0 {
		return Transition{}, false
	}
	if o.Dead > 0 {
		reason := ReasonFailedItems
		if indexed {
			reason = ReasonFailedIndexes
		}
		// Every worker has terminated already: Failed directly.
		return Transition{To: PhaseFailed, Condition: cond(ConditionFailed, reason, fmt.Sprintf("%d items are dead; see `coordinator dead`", o.Dead)), Guard: GuardDrainedDead}, true
	}
	reason, msg := ReasonDrained, "the queue is drained and every worker has terminated"
	if indexed {
		reason, msg = ReasonCompletionsReached, fmt.Sprintf("all %d indexes succeeded", *spec.Completions)
	}
	return Transition{To: PhaseComplete, Condition: cond(ConditionComplete, reason, msg), Guard: GuardDrained}, true
}
