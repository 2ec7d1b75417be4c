package jobstate

import (
	"sort"
	"time"
)

// Phase is where a Job is in its life.
type Phase string

// The phases of a Job. Pending, Running and Suspended are derived from the
// stored flags; Failing, Succeeding, Complete and Failed are stored once
// reached. The store's scripts use these names (it generates its Lua
// constants from them).
const (
	// PhasePending: created, no worker has leased anything yet.
	PhasePending Phase = "Pending"
	// PhaseRunning: a worker has leased items.
	PhaseRunning Phase = "Running"
	// PhaseSuspended: no leases are handed out until resume.
	PhaseSuspended Phase = "Suspended"
	// PhaseFailing: a failure reason holds (condition FailureTarget); workers
	// are stopping. Failed follows once every worker has terminated.
	PhaseFailing Phase = "Failing"
	// PhaseSucceeding: the success criteria are met (condition
	// SuccessCriteriaMet); workers stop. Complete follows once every worker
	// has terminated.
	PhaseSucceeding Phase = "Succeeding"
	// PhaseComplete: drained, a worker exited 0, every worker terminated.
	PhaseComplete Phase = "Complete"
	// PhaseFailed: a failure reason held and every worker terminated.
	PhaseFailed Phase = "Failed"
)

// Finished reports whether p is terminal.
func (p Phase) Finished() bool { return p == PhaseComplete || p == PhaseFailed }

// Stopping reports whether workers must stop taking and running items.
func (p Phase) Stopping() bool { return p == PhaseFailing || p == PhaseSucceeding || p.Finished() }

// Failed reports whether p ends the Job in failure (Failing or Failed): its
// workers exit non-zero.
func (p Phase) Failed() bool { return p == PhaseFailing || p == PhaseFailed }

// StoredPhases are the phases the store records, in the order a Job may
// reach them.
var StoredPhases = []Phase{PhaseFailing, PhaseSucceeding, PhaseComplete, PhaseFailed}

// ConditionType is the type of a Job condition, as in Kubernetes.
type ConditionType string

// The condition types a Job may carry.
const (
	ConditionComplete      ConditionType = "Complete"
	ConditionFailed        ConditionType = "Failed"
	ConditionFailureTarget ConditionType = "FailureTarget"
	ConditionSuspended     ConditionType = "Suspended"
	// ConditionSuccessCriteriaMet comes before Complete, as in Kubernetes
	// 1.31+: the Job has succeeded and its workers are stopping.
	ConditionSuccessCriteriaMet ConditionType = "SuccessCriteriaMet"
	// ConditionReopened records that `coordinator retry --reopen` brought a
	// finished Job back to Running.
	ConditionReopened ConditionType = "Reopened"
)

// The reasons of Failed, FailureTarget, Complete and Suspended conditions.
const (
	ReasonBackoffLimitExceeded     = "BackoffLimitExceeded"
	ReasonDeadlineExceeded         = "DeadlineExceeded"
	ReasonMaxFailedItemsExceeded   = "MaxFailedItemsExceeded"
	ReasonMaxFailedIndexesExceeded = "MaxFailedIndexesExceeded"
	ReasonFailedItems              = "FailedItems"
	ReasonFailedIndexes            = "FailedIndexes"
	ReasonDrained                  = "Drained"
	ReasonCompletionsReached       = "CompletionsReached"
	ReasonJobSuspended             = "JobSuspended"
	ReasonJobResumed               = "JobResumed"
	// ReasonPodFailurePolicy: a failure policy rule with action FailJob matched.
	ReasonPodFailurePolicy = "PodFailurePolicy"
	// ReasonSuccessPolicy: a success policy rule was met.
	ReasonSuccessPolicy = "SuccessPolicy"
	// ReasonStateLost: the Job's state in Redis was lost (evicted, or keys
	// gone): its books no longer add up, so it can never be Complete.
	ReasonStateLost = "StateLost"
	// ReasonDeadItemsRetried: a finished Job was reopened for its dead items.
	ReasonDeadItemsRetried = "DeadItemsRetried"
	// ReasonShardFailed: another shard of the same sharded Job failed, so
	// this one stops too.
	ReasonShardFailed = "ShardFailed"
)

// Condition is one observation about a Job, as in Kubernetes.
type Condition struct {
	Type               ConditionType `json:"type"`
	Status             string        `json:"status"` // "True" or "False"
	Reason             string        `json:"reason"`
	Message            string        `json:"message"`
	LastTransitionTime time.Time     `json:"lastTransitionTime"`
}

// Items counts a Job's items by state.
type Items struct {
	// Total is every item ever pushed (or generated for an Indexed Job).
	Total int64 `json:"total"`
	// Pending items wait in the queue.
	Pending int64 `json:"pending"`
	// Leased items are held by a worker now.
	Leased int64 `json:"leased"`
	// Retrying items failed and wait for their backoff to pass.
	Retrying int64 `json:"retrying"`
	// Returned items were handed back without using an attempt (a worker
	// stopped, or died before starting them); they run next.
	Returned int64 `json:"returned"`
	// Succeeded counts distinct items that succeeded, each exactly once.
	Succeeded int64 `json:"succeeded"`
	// Dead items failed MaxAttempts times.
	Dead int64 `json:"dead"`
	// FailedAttempts counts every failed run: nacks and expired leases.
	FailedAttempts int64 `json:"failedAttempts"`
	// Takeovers counts leases that expired and were reclaimed.
	Takeovers int64 `json:"takeovers"`
}

// Status is everything known about a Job at one instant. Field names are
// stable: scripts read them from `coordinator status -o json`.
type Status struct {
	Name string `json:"name"`
	// UID is the Job's incarnation, fixed at create (as Kubernetes'
	// metadata.uid): a Job deleted and created again has another.
	UID       string `json:"uid"`
	Kind      Kind   `json:"kind"`
	Phase     Phase  `json:"phase"`
	Spec      Spec   `json:"spec"`
	Sealed    bool   `json:"sealed"`
	Suspended bool   `json:"suspended"`
	// Done is set once a worker found the Job drained and exited 0.
	Done  bool  `json:"done"`
	Items Items `json:"items"`
	// Leases is the number of open leases (batches) held by workers.
	Leases int64 `json:"leases"`

	// Active, Ready, Succeeded and Failed count workers the way Kubernetes
	// counts Pods: registered and not terminated, with a fresh heartbeat,
	// exited 0, and failed (crashed, lost or exited non-zero).
	Active    int64 `json:"active"`
	Ready     int64 `json:"ready"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`

	// CompletedIndexes and FailedIndexes are interval strings such as
	// "0-3,5" (Indexed Jobs only).
	CompletedIndexes string `json:"completedIndexes,omitempty"`
	FailedIndexes    string `json:"failedIndexes,omitempty"`

	StartTime      *time.Time  `json:"startTime,omitempty"`
	CompletionTime *time.Time  `json:"completionTime,omitempty"`
	Conditions     []Condition `json:"conditions"`

	// Throughput is items succeeded per second over the last minute.
	Throughput float64 `json:"throughput"`
	// OldestPendingAge is how long the oldest pending item has waited, in
	// seconds; 0 when nothing is pending or its push time is unknown.
	OldestPendingAge float64 `json:"oldestPendingAgeSeconds"`
	// ETASeconds estimates how long until every item is settled, from the
	// recent rate and the items left; null while unknown (an unsealed
	// work-queue Job, no rate yet). See EstimateETA.
	ETASeconds *float64 `json:"etaSeconds"`
	// StateLost says why the Job's books no longer add up (empty while
	// they do): its state in Redis was evicted or lost.
	StateLost string `json:"stateLost,omitempty"`
	// Now is the Redis server's time when the status was read.
	Now time.Time `json:"now"`
}

// DerivePhase computes the phase shown to users from the stored terminal
// phase (empty while none), the suspend flag and whether a lease happened.
func DerivePhase(stored Phase, suspended, started bool) Phase {
	switch {
	case stored != "":
		return stored
	case suspended:
		return PhaseSuspended
	case started:
		return PhaseRunning
	}
	return PhasePending
}

// SortConditions orders conditions by time; conditions of the same
// millisecond come in the order Kubernetes adds them (FailureTarget before
// Failed, SuccessCriteriaMet before Complete: a terminal condition last),
// then by type, for stable output.
func SortConditions(cs []Condition) {
	sort.SliceStable(cs, func(i, j int) bool {
		if !cs[i].LastTransitionTime.Equal(cs[j].LastTransitionTime) {
			return cs[i].LastTransitionTime.Before(cs[j].LastTransitionTime)
		}
		if ti, tj := cs[i].Type.terminal(), cs[j].Type.terminal(); ti != tj {
			return tj
		}
		return cs[i].Type < cs[j].Type
	})
}

// terminal reports whether t is a condition that ends a Job.
func (t ConditionType) terminal() bool { return t == ConditionComplete || t == ConditionFailed }

// Failure is why a failed Job failed: the reason and message of its
// failure condition, its lost state, or else its phase.
func (s Status) Failure() string {
	for _, c := range s.Conditions {
		if c.Type == ConditionFailureTarget || c.Type == ConditionFailed {
			return c.Reason + ": " + c.Message
		}
	}
	if s.StateLost != "" {
		return ReasonStateLost + ": " + s.StateLost
	}
	return string(s.Phase)
}
