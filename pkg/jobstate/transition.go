package jobstate

import (
	"fmt"
	"time"
)

// Guard names the fact that justifies a transition. The store re-checks it
// atomically when it applies the transition, so a decision taken on a stale
// snapshot is refused instead of applied. The store's scripts use these
// names (it generates its Lua constants from Guards).
type Guard string

// The guards of the transitions Next can return.
const (
	GuardBackoffLimit   Guard = "backoff-limit"    // worker failures > backoffLimit
	GuardDeadline       Guard = "deadline"         // now >= start + activeDeadline, not suspended
	GuardMaxFailedItems Guard = "max-failed-items" // dead items > maxFailedItems
	GuardFailurePolicy  Guard = "failure-policy"   // a FailJob rule matched an item's failure
	GuardStateLost      Guard = "state-lost"       // the Job's books do not add up
	GuardSuccessPolicy  Guard = "success-policy"   // a success policy rule is met
	GuardDrained        Guard = "drained"          // done, no dead item, books add up
	GuardDrainedDead    Guard = "drained-dead"     // done, some dead items
	GuardTerminated     Guard = "terminated"       // failing, no live worker
	GuardSucceeded      Guard = "succeeded"        // succeeding, no live worker
	// GuardShardFailed: the sharded Job this shard belongs to failed as a
	// whole: another shard failed, or the shards' dead items together are
	// more than max-failed-items. Those facts live in other hash slots,
	// where no script can read them; they only grow until retry --reopen
	// (which reopens every shard), so the guard asks only that this shard
	// has not ended already.
	GuardShardFailed Guard = "shard-failed"
)

// Guards lists every guard, for the store's generated constants and the
// tests that hold the Lua checks and Next together.
var Guards = []Guard{GuardBackoffLimit, GuardDeadline, GuardMaxFailedItems, GuardFailurePolicy, GuardStateLost,
	GuardSuccessPolicy, GuardDrained, GuardDrainedDead, GuardTerminated, GuardSucceeded, GuardShardFailed}

// Observed is what the controller read about a Job in one atomic snapshot.
type Observed struct {
	Stored Phase // the stored phase: "", Failing, Succeeding, Complete or Failed
	// FailureReason and FailureMessage are the FailureTarget condition's,
	// while Failing: Failed repeats them.
	FailureReason  string
	FailureMessage string
	// SuccessReason and SuccessMessage are the SuccessCriteriaMet
	// condition's, while Succeeding: Complete repeats them.
	SuccessReason  string
	SuccessMessage string
	Suspended      bool
	Done           bool
	Dead           int64
	WorkerFailures int64
	LiveWorkers    int64
	// StateLost says why the Job's books do not add up; empty while they do.
	StateLost string
	// FailJob is the failure of the item that matched a FailJob rule, if any.
	FailJob string
	// Completed are the indexes that succeeded, as an interval string; read
	// only for Jobs with a success policy, and then only those within the
	// policy's indexes (Spec.SuccessPolicyIndexes) need be there.
	Completed string
	// CompletedCount is how many indexes succeeded in all, for a success
	// policy's rules with a count and no indexes (0: counted from
	// Completed).
	CompletedCount int64
	StartTime      time.Time // zero until the first lease
	Now            time.Time // the Redis server's clock
}

// Holds reports whether the fact behind guard g holds for a Job: the one
// statement of each rule. Next picks the first that holds, in priority
// order; the store's transition script checks the same facts in Redis
// (a test holds the two together).
func Holds(g Guard, spec Spec, o Observed) bool {
	spec = spec.WithDefaults()
	switch g {
	case GuardTerminated:
		return o.Stored == PhaseFailing && o.LiveWorkers == 0
	case GuardSucceeded:
		return o.Stored == PhaseSucceeding && o.LiveWorkers == 0
	}
	if o.Stored != "" {
		return false
	}
	switch g {
	case GuardStateLost:
		return o.StateLost != ""
	case GuardFailurePolicy:
		return o.FailJob != ""
	case GuardBackoffLimit:
		return o.WorkerFailures > int64(*spec.BackoffLimit)
	case GuardDeadline:
		d := spec.ActiveDeadline.D()
		return d > 0 && !o.Suspended && !o.StartTime.IsZero() && !o.Now.Before(o.StartTime.Add(d))
	case GuardMaxFailedItems:
		return spec.MaxFailedItems != nil && o.Dead > int64(*spec.MaxFailedItems)
	case GuardSuccessPolicy:
		_, ok := spec.SuccessPolicyMetCount(o.Completed, o.CompletedCount)
		return ok
	case GuardDrained:
		return o.Done && o.Dead == 0 && o.StateLost == ""
	case GuardDrainedDead:
		return o.Done && o.Dead > 0
	case GuardShardFailed:
		return true
	}
	return false
}

// Transition is a change of phase with the condition that records why.
type Transition struct {
	To        Phase
	Condition Condition // Status "True", LastTransitionTime Now
	Guard     Guard
}

// Next returns the transition a Job must take now, if any. It applies the
// Kubernetes Job rules: a failure first marks the Job Failing (condition
// FailureTarget) and success marks it Succeeding (SuccessCriteriaMet), so
// its workers stop; Failed or Complete is recorded once none is left. A
// drained Job with dead items fails (FailedItems, or FailedIndexes); one
// whose books do not add up fails (StateLost) and is never Complete.
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
	case PhaseSucceeding:
		if o.LiveWorkers == 0 {
			return Transition{To: PhaseComplete, Condition: cond(ConditionComplete, o.SuccessReason, o.SuccessMessage), Guard: GuardSucceeded}, true
		}
		return Transition{}, false
	}
	failing := func(reason, msg string, g Guard) (Transition, bool) {
		return Transition{To: PhaseFailing, Condition: cond(ConditionFailureTarget, reason, msg), Guard: g}, true
	}
	succeeding := func(reason, msg string, g Guard) (Transition, bool) {
		return Transition{To: PhaseSucceeding, Condition: cond(ConditionSuccessCriteriaMet, reason, msg), Guard: g}, true
	}
	counted := spec.Completions != nil
	holds := func(g Guard) bool { return Holds(g, spec, o) }
	switch {
	case holds(GuardStateLost):
		return failing(ReasonStateLost, "the Job's state in Redis was lost: "+o.StateLost+"; set maxmemory-policy noeviction", GuardStateLost)
	case holds(GuardFailurePolicy):
		return failing(ReasonPodFailurePolicy, "a failure policy rule with action FailJob matched: "+o.FailJob, GuardFailurePolicy)
	case holds(GuardBackoffLimit):
		limit := *spec.BackoffLimit
		return failing(ReasonBackoffLimitExceeded, fmt.Sprintf("%s the backoff limit of %d", exceed(o.WorkerFailures, "worker failure"), limit), GuardBackoffLimit)
	case holds(GuardDeadline):
		return failing(ReasonDeadlineExceeded, fmt.Sprintf("the Job ran longer than its active deadline of %s", spec.ActiveDeadline), GuardDeadline)
	case holds(GuardMaxFailedItems):
		reason := ReasonMaxFailedItemsExceeded
		if counted {
			reason = ReasonMaxFailedIndexesExceeded
		}
		return failing(reason, fmt.Sprintf("%s max-failed-items %d", exceed(o.Dead, "dead item"), *spec.MaxFailedItems), GuardMaxFailedItems)
	case holds(GuardSuccessPolicy):
		rule, _ := spec.SuccessPolicyMetCount(o.Completed, o.CompletedCount)
		return succeeding(ReasonSuccessPolicy, "success policy rule met: "+rule, GuardSuccessPolicy)
	case holds(GuardDrainedDead):
		reason := ReasonFailedItems
		if counted {
			reason = ReasonFailedIndexes
		}
		return failing(reason, fmt.Sprintf("%s; see `coordinator dead`", count(o.Dead, "item is dead", "items are dead")), GuardDrainedDead)
	case holds(GuardDrained):
		if counted {
			return succeeding(ReasonCompletionsReached, fmt.Sprintf("all %d completions succeeded", *spec.Completions), GuardDrained)
		}
		return succeeding(ReasonDrained, "the queue is sealed and drained", GuardDrained)
	}
	return Transition{}, false
}

// count formats n with the singular or plural form of a noun phrase: one
// form ("dead item") gets an s; two forms are taken as given.
func count(n int64, forms ...string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", forms[0])
	}
	if len(forms) > 1 {
		return fmt.Sprintf("%d %s", n, forms[1])
	}
	return fmt.Sprintf("%d %ss", n, forms[0])
}

// exceed is "1 dead item exceeds" or "3 dead items exceed".
func exceed(n int64, noun string) string {
	if n == 1 {
		return count(n, noun) + " exceeds"
	}
	return count(n, noun) + " exceed"
}

// Outcome is how a worker ends once the Job's work is over for it: 0 when
// the Job succeeds (Succeeding or Complete), non-zero when it fails, so
// that whatever watches the worker (Kubernetes, a CI) sees the truth.
func (p Phase) Outcome() (ok bool, known bool) {
	switch p {
	case PhaseSucceeding, PhaseComplete:
		return true, true
	case PhaseFailing, PhaseFailed:
		return false, true
	}
	return false, false
}
