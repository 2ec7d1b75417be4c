package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// scenario is a Job's facts, written straight into Redis.
type scenario struct {
	spec      jobstate.Spec
	stored    jobstate.Phase
	done      bool
	suspended bool
	started   time.Duration // how long ago the Job started; 0: not yet
	wfailed   int
	failjob   bool
	lost      bool
	dead      int
	live      int
	completed []int // succeeded indexes (fixed completion count Jobs)
	succeeded int   // succeeded items (work queue)
}

func randomScenario(r *rand.Rand) scenario {
	var sc scenario
	sc.spec.BackoffLimit = jobstate.Ptr(r.IntN(3))
	if r.IntN(2) == 0 {
		sc.spec.ActiveDeadline = jobstate.Duration(10 * time.Second)
	}
	if r.IntN(2) == 0 {
		sc.spec.MaxFailedItems = jobstate.Ptr(r.IntN(3))
	}
	if r.IntN(2) == 0 {
		sc.spec.Completions = jobstate.Ptr(6)
		switch r.IntN(3) {
		case 0:
			sc.spec.SuccessPolicy = []jobstate.SuccessRule{{SucceededIndexes: "0-2"}}
		case 1:
			sc.spec.SuccessPolicy = []jobstate.SuccessRule{{SucceededIndexes: "1,3-5", SucceededCount: jobstate.Ptr(2)}, {SucceededCount: jobstate.Ptr(5)}}
		}
		for i := range 6 {
			if r.IntN(2) == 0 {
				sc.completed = append(sc.completed, i)
			}
		}
	} else {
		sc.succeeded = r.IntN(4)
	}
	sc.stored = []jobstate.Phase{"", "", "", jobstate.PhaseFailing, jobstate.PhaseSucceeding, jobstate.PhaseComplete, jobstate.PhaseFailed}[r.IntN(7)]
	sc.done = r.IntN(2) == 0
	sc.suspended = r.IntN(4) == 0
	sc.started = []time.Duration{0, 5 * time.Second, 20 * time.Second}[r.IntN(3)]
	sc.wfailed = r.IntN(4)
	sc.failjob = r.IntN(5) == 0
	sc.lost = r.IntN(6) == 0
	sc.dead = r.IntN(4)
	if sc.spec.Completions != nil {
		// Indexes are dead or succeeded, never both.
		sc.dead = min(sc.dead, 6-len(sc.completed))
	}
	sc.live = r.IntN(3)
	return sc
}

// write creates the Job and sets its facts.
func (sc scenario) write(t *testing.T, e *env, job string) {
	t.Helper()
	ctx := context.Background()
	_, err := e.s.Create(ctx, job, sc.spec)
	require.NoError(t, err)
	k := store.KeysFor(job)
	now, err := e.s.Now(ctx)
	require.NoError(t, err)
	st := map[string]any{"done": b01(sc.done), "suspended": b01(sc.suspended), "wfailed": sc.wfailed}
	succeeded := sc.succeeded
	if sc.spec.Completions != nil {
		succeeded = len(sc.completed)
		for _, i := range sc.completed {
			require.NoError(t, e.rdb.ZAdd(ctx, k.Key("doneidx"), redisZ(float64(i), fmt.Sprintf("%d-%d", i, i))).Err())
		}
	}
	// The books add up: every item handed out is succeeded or dead.
	st["succeeded"] = succeeded
	st["popped"] = succeeded + sc.dead
	if sc.spec.Completions == nil {
		st["pushed"] = succeeded + sc.dead
	}
	if sc.stored != "" {
		st["phase"] = string(sc.stored)
	}
	if sc.started > 0 {
		st["start"] = now.Add(-sc.started).UnixMilli()
	}
	if sc.failjob {
		st["failjob"] = "3|exit status 42"
	}
	if sc.lost {
		st["lostreason"] = "keys went missing"
	}
	require.NoError(t, e.rdb.HSet(ctx, k.Key("state"), st).Err())
	used := map[int]bool{}
	for _, i := range sc.completed {
		used[i] = true
	}
	for i, id := 0, 0; i < sc.dead; id++ {
		if used[id] {
			continue
		}
		require.NoError(t, e.rdb.ZAdd(ctx, k.Key("dead"), redisZ(float64(id), fmt.Sprintf("%d:1:4:boomx", id))).Err())
		i++
	}
	for i := range sc.live {
		require.NoError(t, e.rdb.ZAdd(ctx, k.Key("workers"), redisZ(float64(now.Add(time.Minute).UnixMilli()), fmt.Sprint("w", i))).Err())
	}
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// TestLuaGuardsAgreeWithTheLifecyclePolicy: for random Jobs, the store's
// transition script accepts a guard exactly when jobstate.Holds says its
// fact holds, and Next's choice is always applied. The policy has one
// statement (pkg/jobstate); this keeps the Lua that re-checks it atomic
// from drifting.
func TestLuaGuardsAgreeWithTheLifecyclePolicy(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) { checkGuards(t, e, 150) })
}

func checkGuards(t *testing.T, e *env, scenarios int) {
	r := rand.New(rand.NewPCG(11, 12))
	ctx := context.Background()
	for n := range scenarios {
		sc := randomScenario(r)
		probe := fmt.Sprintf("%s-p%d", e.job, n)
		sc.write(t, e, probe)
		snap, err := e.s.Snapshot(ctx, probe)
		require.NoError(t, err)
		require.NoError(t, e.s.ObserveSuccess(ctx, probe, &snap))
		obs := snap.Observed
		next, due := jobstate.Next(snap.Status.Spec, obs)
		for _, g := range jobstate.Guards {
			job := fmt.Sprintf("%s-s%d-%s", e.job, n, g)
			sc.write(t, e, job)
			want := jobstate.Holds(g, snap.Status.Spec, obs)
			got, err := e.s.Apply(ctx, job, jobstate.Transition{To: jobstate.PhaseFailing, Guard: g,
				Condition: jobstate.Condition{Type: jobstate.ConditionFailureTarget, Reason: "x", Message: "x"}})
			require.NoError(t, err)
			require.Equal(t, want, got, "scenario %d %+v, guard %s: Lua says %v, jobstate.Holds %v", n, sc, g, got, want)
			if due && next.Guard == g {
				require.True(t, got, "Next's choice %s must apply", g)
			}
		}
	}
}
