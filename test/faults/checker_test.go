//go:build faults

package faults_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

// TestInvariantChecker shows that incarnation.check, which every scenario
// and the randomized schedule rely on, finds each violation it is meant to
// find, and accepts an incarnation that holds them all.
func TestInvariantChecker(t *testing.T) {
	t.Parallel()
	inc := incarnation{Job: "j", UID: "u1", Items: []string{"a", "b", "c"}, MaxAttempts: 2,
		FailReasons: []string{jobstate.ReasonFailedItems}}
	ok := runs{runs: []run{
		{Item: "a", Worker: "w", Attempt: 1}, {Item: "a", Worker: "w", Attempt: 1, Ended: true},
		{Item: "b", Worker: "w", Attempt: 1}, {Item: "b", Worker: "w", Attempt: 1, Ended: true},
		{Item: "c", Worker: "w", Attempt: 1}, {Item: "c", Worker: "w", Attempt: 1, Ended: true},
		{Item: "c", Worker: "v", Attempt: 2}, {Item: "c", Worker: "v", Attempt: 2, Ended: true},
	}}
	complete := jobstate.Status{UID: "u1", Phase: jobstate.PhaseComplete, Items: jobstate.Items{Total: 3, Succeeded: 3}}
	failed := jobstate.Status{UID: "u1", Phase: jobstate.PhaseFailed, Items: jobstate.Items{Total: 3, Succeeded: 2, Dead: 1},
		Conditions: []jobstate.Condition{{Type: jobstate.ConditionFailed, Status: "True", Reason: jobstate.ReasonFailedItems}}}
	twoStarts := runs{runs: append(ok.runs[:4:4], run{Item: "c", Worker: "w", Attempt: 1}, run{Item: "c", Worker: "v", Attempt: 2})}

	v := inc.check(complete, nil, ok)
	require.Empty(t, v.Violations)
	require.Equal(t, 3, v.Ran)
	require.Equal(t, 1, v.ExecutedTwice)
	require.Empty(t, inc.check(failed, map[string]int{"c": 2}, twoStarts).Violations, "dead after its two attempts started")

	with := func(f func(*jobstate.Status)) jobstate.Status {
		s := complete
		f(&s)
		return s
	}
	for name, c := range map[string]struct {
		st   jobstate.Status
		dead map[string]int
		log  runs
		want string
	}{
		"CountedButNeverRan":  {complete, nil, runs{runs: ok.runs[:4]}, "never ran to exit 0"},
		"StartedButDidNotEnd": {complete, nil, runs{runs: append(ok.runs[:4:4], run{Item: "c", Worker: "w", Attempt: 1})}, "never ran to exit 0"},
		"FewerThanPushed":     {with(func(s *jobstate.Status) { s.Items.Total, s.Items.Succeeded = 2, 2 }), nil, ok, "3 items pushed, but total is 2"},
		"CountedTwice":        {with(func(s *jobstate.Status) { s.Items.Succeeded = 4 }), nil, ok, "succeeded 4 + dead 0 != 3"},
		"ItemsLeftOver":       {with(func(s *jobstate.Status) { s.Items.Succeeded, s.Items.Pending = 2, 1 }), nil, ok, "finished with items left"},
		"NotFinished":         {with(func(s *jobstate.Status) { s.Phase = jobstate.PhaseRunning }), nil, ok, "not finished"},
		"AnotherIncarnation":  {with(func(s *jobstate.Status) { s.UID = "u2" }), nil, ok, "not the incarnation checked"},
		"DeadTooEarly":        {failed, map[string]int{"c": 2}, runs{runs: append(ok.runs[:4:4], run{Item: "c", Worker: "w", Attempt: 1})}, "started only 1 times"},
		"DeadNeverPushed":     {failed, map[string]int{"z": 2}, ok, "never pushed"},
		"CompleteWithDead":    {with(func(s *jobstate.Status) { s.Items.Succeeded, s.Items.Dead = 2, 1 }), map[string]int{"c": 2}, twoStarts, "Complete with 1 dead"},
		"FailedForAnotherReason": {with(func(s *jobstate.Status) {
			s.Phase, s.Conditions = jobstate.PhaseFailed, []jobstate.Condition{{Type: jobstate.ConditionFailed, Status: "True", Reason: jobstate.ReasonStateLost}}
		}), nil, ok, "Failed with reason StateLost"},
		"DeadListDisagrees": {failed, map[string]int{}, twoStarts, "0 dead items listed, status says 1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := inc.check(c.st, c.dead, c.log)
			require.NotEmpty(t, v.Violations)
			require.Contains(t, strings.Join(v.Violations, "\n"), c.want)
		})
	}
}
