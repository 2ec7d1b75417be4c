package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// env is one test's Redis (a miniredis of its own), a store the test
// drives Jobs with, and a Reconciler on a client of its own, whose log
// the test reads.
type env struct {
	m   *miniredis.Miniredis
	s   *store.Store
	r   *controller.Reconciler
	rdb *redis.Client // the Reconciler's
	log *testkit.Buffer
}

func setup(t *testing.T) *env {
	t.Helper()
	s, m := testkit.MiniStore(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	rs := store.New(rdb)
	t.Cleanup(func() { _ = rs.Close() })
	require.NoError(t, rs.Ping(t.Context()))
	log := &testkit.Buffer{}
	return &env{m: m, s: s, rdb: rdb, log: log,
		r: &controller.Reconciler{S: rs, Log: slog.New(slog.NewTextHandler(log, nil))}}
}

// create creates job, loads items and seals it.
func (e *env) create(t *testing.T, job string, spec jobstate.Spec, items ...string) string {
	t.Helper()
	uid := testkit.CreateJob(t, e.s, job, spec, items...)
	sealed, err := e.s.Seal(t.Context(), job, "")
	require.NoError(t, err)
	require.True(t, sealed)
	return uid
}

// advance moves the Redis server's clock.
func (e *env) advance(t *testing.T, d time.Duration) {
	t.Helper()
	now, err := e.s.Now(t.Context())
	require.NoError(t, err)
	e.m.SetTime(now.Add(d))
}

func (e *env) snapshot(t *testing.T, job string) store.Snapshot {
	t.Helper()
	snap, err := e.s.Snapshot(t.Context(), job)
	require.NoError(t, err)
	return snap
}

func (e *env) reconcile(t *testing.T, job string) store.Snapshot {
	t.Helper()
	snap, err := e.r.Reconcile(t.Context(), job)
	require.NoError(t, err)
	return snap
}

// changes are the phases the Reconciler logged moving Jobs to, in order.
func (e *env) changes() []string {
	var out []string
	for _, line := range strings.Split(e.log.String(), "\n") {
		if !strings.Contains(line, `msg="job phase changed"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, " phase=")
		phase, _, _ := strings.Cut(rest, " ")
		out = append(out, phase)
	}
	return out
}

// drain has worker wid of job run every item it can lease, all
// succeeding, and end succeeded, as a worker that finds the Job drained
// does.
func (e *env) drain(t *testing.T, job, wid string) {
	t.Helper()
	w := e.worker(t, job, wid)
	w.run(t)
	w.finish(t, store.OutcomeSucceeded)
}

// worker is a worker session driven by hand through the store.
type worker struct {
	e        *env
	job, wid string
	reg      store.Registration
	seq, set int64
}

func (e *env) worker(t *testing.T, job, wid string) *worker {
	t.Helper()
	reg, err := e.s.Register(t.Context(), job, "", wid, []byte(`{"id":"`+wid+`"}`))
	require.NoError(t, err)
	return &worker{e: e, job: job, wid: wid, reg: reg}
}

// run leases every item left and settles them: those in fail fail with
// an attempt used, the others succeed. Then it finds the Job drained.
func (w *worker) run(t *testing.T, fail ...string) {
	t.Helper()
	ctx := t.Context()
	for {
		w.seq++
		r, err := w.e.s.Lease(ctx, w.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: w.wid,
			Seq: w.seq, Want: 100})
		if err != nil {
			require.ErrorIs(t, err, store.ErrDrained)
			return
		}
		require.NotNil(t, r.Lease, "a lease, not %+v", r)
		s := store.Settlement{Token: r.Lease.Token, Started: -1}
		for _, it := range r.Lease.Items {
			if slices.Contains(fail, string(it.Payload)) {
				s.Failed = append(s.Failed, store.Failure{ID: it.ID, Action: store.ActionCount, Err: "boom"})
			} else {
				s.Acked = append(s.Acked, it.ID)
			}
		}
		w.set++
		res, err := w.e.s.Settle(ctx, w.job, store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: w.set,
			Leases: []store.Settlement{s}})
		require.NoError(t, err)
		require.Zero(t, res.Refused)
	}
}

// lease leases exactly n items.
func (w *worker) lease(t *testing.T, n int) *store.Lease {
	t.Helper()
	w.seq++
	r, err := w.e.s.Lease(t.Context(), w.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session, Worker: w.wid,
		Seq: w.seq, Want: n, Max: n})
	require.NoError(t, err)
	require.NotNil(t, r.Lease, "a lease, not %+v", r)
	require.Len(t, r.Lease.Items, n)
	return r.Lease
}

// finish records the worker's end.
func (w *worker) finish(t *testing.T, outcome string) {
	t.Helper()
	recorded, err := w.e.s.Finish(t.Context(), w.job, w.reg.UID, w.wid, w.reg.Session, outcome)
	require.NoError(t, err)
	require.True(t, recorded)
}

func condition(st jobstate.Status, c jobstate.ConditionType) (jobstate.Condition, bool) {
	for _, x := range st.Conditions {
		if x.Type == c {
			return x, true
		}
	}
	return jobstate.Condition{}, false
}

func requireCondition(t *testing.T, st jobstate.Status, c jobstate.ConditionType, reason string) {
	t.Helper()
	got, ok := condition(st, c)
	require.True(t, ok, "no %s condition in %+v", c, st.Conditions)
	require.Equal(t, "True", got.Status)
	require.Equal(t, reason, got.Reason, "%+v", got)
}

func TestReconcile(t *testing.T) {
	t.Parallel()

	t.Run("SucceedingWhileAWorkerIsLiveThenComplete", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "job", jobstate.Spec{}, "a", "b")
		w := e.worker(t, "job", "w1")
		w.run(t)

		snap := e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseSucceeding, snap.Observed.Stored)
		require.Equal(t, jobstate.PhaseSucceeding, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionSuccessCriteriaMet, jobstate.ReasonDrained)
		_, complete := condition(snap.Status, jobstate.ConditionComplete)
		require.False(t, complete, "the worker is still live")
		require.Nil(t, snap.Status.CompletionTime)
		require.Equal(t, snap, e.snapshot(t, "job"), "Reconcile returns the Job as it is after its changes")

		snap = e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseSucceeding, snap.Status.Phase, "nothing changes while the worker is live")

		w.finish(t, store.OutcomeSucceeded)
		snap = e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseComplete, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionComplete, jobstate.ReasonDrained)
		requireCondition(t, snap.Status, jobstate.ConditionSuccessCriteriaMet, jobstate.ReasonDrained)
		require.NotNil(t, snap.Status.CompletionTime)
		require.EqualValues(t, 1, snap.Status.Succeeded)

		require.Equal(t, snap, e.reconcile(t, "job"), "a finished Job stays as it is")
		require.Equal(t, []string{"Succeeding", "Complete"}, e.changes())
	})

	t.Run("SucceedingThenCompleteInOneCallWhenNoWorkerIsLeft", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "job", jobstate.Spec{}, "a", "b")
		e.drain(t, "job", "w1")

		snap := e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseComplete, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionSuccessCriteriaMet, jobstate.ReasonDrained)
		requireCondition(t, snap.Status, jobstate.ConditionComplete, jobstate.ReasonDrained)
		require.Equal(t, []string{"Succeeding", "Complete"}, e.changes())
	})

	t.Run("FailingWhileAWorkerIsLiveThenFailed", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "job", jobstate.Spec{MaxAttempts: 1}, "a", "b", "c")
		w := e.worker(t, "job", "w1")
		w.run(t, "b")

		snap := e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseFailing, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionFailureTarget, jobstate.ReasonFailedItems)
		_, failed := condition(snap.Status, jobstate.ConditionFailed)
		require.False(t, failed, "the worker is still live")

		w.finish(t, store.OutcomeStopped)
		snap = e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseFailed, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionFailed, jobstate.ReasonFailedItems)
		got, _ := condition(snap.Status, jobstate.ConditionFailed)
		require.Contains(t, got.Message, "1 item is dead")
		require.NotNil(t, snap.Status.CompletionTime)
		require.EqualValues(t, 1, snap.Status.Items.Dead)
		require.EqualValues(t, 2, snap.Status.Items.Succeeded)
		require.Equal(t, []string{"Failing", "Failed"}, e.changes())
	})

	t.Run("AStaleDecisionIsRefusedAndChangesNothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		e.create(t, "job", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		w := e.worker(t, "job", "w1")
		w.run(t, "a")
		snap := e.snapshot(t, "job")
		tr, ok := jobstate.Next(snap.Status.Spec, snap.Observed)
		require.True(t, ok)
		require.Equal(t, jobstate.PhaseFailing, tr.To)

		// Before the decision is applied, the dead item is put back: the
		// Job is no longer drained with a dead item.
		n, err := e.s.RetryDead(ctx, "job", false)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		applied, err := e.r.S.Apply(ctx, "job", tr)
		require.NoError(t, err)
		require.False(t, applied)
		snap = e.snapshot(t, "job")
		require.Empty(t, snap.Observed.Stored)
		_, target := condition(snap.Status, jobstate.ConditionFailureTarget)
		require.False(t, target)

		snap = e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseRunning, snap.Status.Phase, "the retried item is due: nothing to decide")
		require.Empty(t, e.changes())
	})

	t.Run("AnotherControllerThatMovesTheJobFirstIsNoError", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "job", jobstate.Spec{}, "a")
		e.drain(t, "job", "w1")
		// Another controller applies the same transition between this
		// one's observation and its Apply.
		c := &competitor{s: e.s, job: "job"}
		e.rdb.AddHook(c)

		snap := e.reconcile(t, "job")
		require.Equal(t, []jobstate.Phase{jobstate.PhaseSucceeding}, c.applied(), "the other controller went first")
		require.Equal(t, jobstate.PhaseComplete, snap.Observed.Stored, "then this one went on from what it saw")
		require.Equal(t, jobstate.PhaseComplete, snap.Status.Phase)
		require.Equal(t, e.snapshot(t, "job"), snap)
		require.Equal(t, []string{"Complete"}, e.changes(), "a transition this controller did not apply is not logged as its own")
		conds := 0
		for _, x := range snap.Status.Conditions {
			if x.Type == jobstate.ConditionSuccessCriteriaMet {
				conds++
			}
		}
		require.Equal(t, 1, conds)
	})

	t.Run("AWorkerThatStopsHeartbeatingIsReapedAndCounted", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		e.create(t, "job", jobstate.Spec{BackoffLimit: jobstate.Ptr(0), Lease: jobstate.Duration(3 * time.Second)}, "a", "b", "c", "d")
		silent := e.worker(t, "job", "w1")
		l := silent.lease(t, 2)
		peer := e.worker(t, "job", "w2")
		pl := peer.lease(t, 1)
		// w2 heartbeats every second, so Redis is serving; w1 is silent.
		for range 4 {
			e.advance(t, time.Second)
			_, err := e.s.Heartbeat(ctx, "job", peer.reg.UID, peer.wid, []string{pl.Token})
			require.NoError(t, err)
		}

		snap := e.reconcile(t, "job")
		require.EqualValues(t, 1, snap.Status.Failed, "w1 is recorded as a failed worker")
		require.EqualValues(t, 1, snap.Status.Items.Takeovers)
		require.EqualValues(t, 2, snap.Status.Items.Returned, "w1's items had not started: they come back without using an attempt")
		require.Zero(t, snap.Status.Items.FailedAttempts)
		require.Equal(t, jobstate.PhaseFailing, snap.Status.Phase, "one worker failure exceeds backoff limit 0; w2 is still live")
		requireCondition(t, snap.Status, jobstate.ConditionFailureTarget, jobstate.ReasonBackoffLimitExceeded)
		require.Contains(t, e.log.String(), "workers lost")
		res, err := e.s.Settle(ctx, "job", store.SettleRequest{UID: silent.reg.UID, Session: silent.reg.Session, Seq: 1,
			Leases: []store.Settlement{{Token: l.Token, All: true, AckCount: 2, Started: -1}}})
		require.NoError(t, err)
		require.Equal(t, 2, res.Refused, "w1's late acks are refused")

		peer.finish(t, store.OutcomeStopped)
		snap = e.reconcile(t, "job")
		require.Equal(t, jobstate.PhaseFailed, snap.Status.Phase)
		requireCondition(t, snap.Status, jobstate.ConditionFailed, jobstate.ReasonBackoffLimitExceeded)
		require.Zero(t, snap.Status.Items.Leased, "a Failed Job holds no leases")
		require.Zero(t, snap.Status.Leases)
		require.Equal(t, []string{"Failing", "Failed"}, e.changes())
	})

	t.Run("AJobThatDoesNotExistIsErrNoJob", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		_, err := e.r.Reconcile(t.Context(), "nope")
		require.ErrorIs(t, err, store.ErrNoJob)
	})
}

// competitor is a Redis hook on a Reconciler's client: before the first
// transition the Reconciler applies to job, it applies the same
// transition through another store, as a second controller would.
type competitor struct {
	s   *store.Store
	job string

	mu   sync.Mutex
	done []jobstate.Phase
}

func (c *competitor) applied() []jobstate.Phase {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.done)
}

// transition decodes a call of the transition script (see
// internal/store/lua/transition.lua: 8 ARGV, the third a guard).
func transition(cmd redis.Cmder) (jobstate.Transition, bool) {
	a := cmd.Args()
	if len(a) < 3 || (a[0] != "evalsha" && a[0] != "eval") {
		return jobstate.Transition{}, false
	}
	nk, err := fmtInt(a[2])
	if err != nil || len(a) != 3+nk+8 {
		return jobstate.Transition{}, false
	}
	argv := make([]string, 7)
	for i := range argv {
		argv[i] = fmt.Sprint(a[3+nk+i])
	}
	if !slices.Contains(jobstate.Guards, jobstate.Guard(argv[2])) {
		return jobstate.Transition{}, false
	}
	return jobstate.Transition{To: jobstate.Phase(argv[3]), Guard: jobstate.Guard(argv[2]),
		Condition: jobstate.Condition{Type: jobstate.ConditionType(argv[4]), Reason: argv[5], Message: argv[6]}}, true
}

func fmtInt(v any) (int, error) {
	var n int
	_, err := fmt.Sscan(fmt.Sprint(v), &n)
	return n, err
}

func (c *competitor) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *competitor) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if tr, ok := transition(cmd); ok {
			c.mu.Lock()
			first := len(c.done) == 0
			if first {
				c.done = append(c.done, tr.To)
			}
			c.mu.Unlock()
			if first {
				applied, err := c.s.Apply(ctx, c.job, tr)
				if err != nil || !applied {
					return fmt.Errorf("the competing controller could not apply %+v: applied %t, %v", tr, applied, err)
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (c *competitor) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestSuccessPolicyOverManyRanges: a success policy is judged on every
// completed index it names, and on the count of all, however many ranges
// the completed indexes make (here every other index of 3000: 1500).
func TestSuccessPolicyOverManyRanges(t *testing.T) {
	t.Parallel()
	for _, rule := range []jobstate.SuccessRule{
		{SucceededIndexes: "2998"},
		{SucceededIndexes: "2000-2999", SucceededCount: jobstate.Ptr(500)},
		{SucceededCount: jobstate.Ptr(1200)},
	} {
		t.Run(rule.String(), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			ctx := t.Context()
			spec := jobstate.Spec{Completions: jobstate.Ptr(3000), SuccessPolicy: []jobstate.SuccessRule{rule}}
			testkit.CreateJob(t, e.s, "job", spec)
			k := store.KeysFor("job")
			for i := 0; i < 3000; i += 2 {
				require.NoError(t, e.rdb.ZAdd(ctx, k.Key("doneidx"), redis.Z{Score: float64(i), Member: fmt.Sprintf("%d-%d", i, i)}).Err())
			}
			// The books add up: 1500 indexes handed out, all succeeded.
			require.NoError(t, e.rdb.HSet(ctx, k.Key("state"), "popped", 1500, "succeeded", 1500).Err())
			st := e.reconcile(t, "job").Status
			require.Equal(t, jobstate.PhaseComplete, st.Phase)
			require.Equal(t, jobstate.ReasonSuccessPolicy, st.Conditions[len(st.Conditions)-1].Reason)
		})
	}
	t.Run("NotMetWhileAnIndexItNamesIsMissing", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		spec := jobstate.Spec{Completions: jobstate.Ptr(3000), SuccessPolicy: []jobstate.SuccessRule{{SucceededIndexes: "2997-2998"}}}
		testkit.CreateJob(t, e.s, "job", spec)
		k := store.KeysFor("job")
		for i := 0; i < 3000; i += 2 {
			require.NoError(t, e.rdb.ZAdd(ctx, k.Key("doneidx"), redis.Z{Score: float64(i), Member: fmt.Sprintf("%d-%d", i, i)}).Err())
		}
		require.NoError(t, e.rdb.HSet(ctx, k.Key("state"), "popped", 1500, "succeeded", 1500).Err())
		require.Empty(t, e.reconcile(t, "job").Observed.Stored, "no transition")
	})
}

func TestLoop(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

	t.Run("SweepLooksAtAFinishedJobAgainOnlyAfter10s", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		e.create(t, "job", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		w := e.worker(t, "job", "w1")
		w.run(t, "a")
		w.finish(t, store.OutcomeStopped)
		c := testkit.NewClock(t0)
		loop := &controller.Loop{R: e.r, Now: c.Now}
		require.NoError(t, loop.Sweep(ctx))
		require.Equal(t, jobstate.PhaseFailed, e.snapshot(t, "job").Status.Phase)

		// The same incarnation is reopened and its item dies again: the
		// Job is due to fail, but the Loop saw it finished a moment ago.
		n, err := e.s.RetryDead(ctx, "job", true)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		w2 := e.worker(t, "job", "w2")
		w2.run(t, "a")
		w2.finish(t, store.OutcomeStopped)
		snap := e.snapshot(t, "job")
		_, due := jobstate.Next(snap.Status.Spec, snap.Observed)
		require.True(t, due)

		c.Set(t0.Add(10*time.Second - time.Millisecond))
		require.NoError(t, loop.Sweep(ctx))
		require.Equal(t, jobstate.PhaseRunning, e.snapshot(t, "job").Status.Phase, "a finished Job is looked at every 10s")

		c.Set(t0.Add(10 * time.Second))
		require.NoError(t, loop.Sweep(ctx))
		require.Equal(t, jobstate.PhaseFailed, e.snapshot(t, "job").Status.Phase)
		require.Equal(t, []string{"Failing", "Failed", "Failing", "Failed"}, e.changes())
	})

	t.Run("SweepDoesNotSkipAJobCreatedAgainUnderTheSameName", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		old := e.create(t, "job", jobstate.Spec{}, "a")
		e.drain(t, "job", "w1")
		c := testkit.NewClock(t0)
		loop := &controller.Loop{R: e.r, Now: c.Now}
		require.NoError(t, loop.Sweep(ctx))
		require.Equal(t, jobstate.PhaseComplete, e.snapshot(t, "job").Status.Phase)

		// Within the 10s, the Job is deleted and created again; the new
		// one drains at once.
		require.NoError(t, e.s.Delete(ctx, "job"))
		uid := e.create(t, "job", jobstate.Spec{}, "b")
		require.NotEqual(t, old, uid)
		w2 := e.worker(t, "job", "w2")
		w2.run(t)
		w2.finish(t, store.OutcomeSucceeded)
		require.Equal(t, jobstate.PhaseRunning, e.snapshot(t, "job").Status.Phase)

		c.Set(t0.Add(time.Second))
		require.NoError(t, loop.Sweep(ctx))
		snap := e.snapshot(t, "job")
		require.Equal(t, uid, snap.Status.UID)
		require.Equal(t, jobstate.PhaseComplete, snap.Status.Phase,
			"the new incarnation is reconciled although its name was seen finished 1s ago")
	})

	t.Run("SweepLogsHowAJobEndedWhoeverEndedIt", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		// Finished before the Loop started: not repeated in its log.
		e.create(t, "old", jobstate.Spec{}, "a")
		e.drain(t, "old", "w0")
		e.reconcile(t, "old")
		e.create(t, "job", jobstate.Spec{}, "a")
		e.advance(t, time.Minute)

		log := &testkit.Buffer{}
		loop := &controller.Loop{R: &controller.Reconciler{S: e.r.S, Log: slog.New(slog.NewTextHandler(log, nil))}}
		require.NoError(t, loop.Sweep(ctx))
		require.NotContains(t, log.String(), "job finished")

		// The Job's workers end it through their own reconciler, as
		// workers do: the Loop's log still says how it ended, once.
		e.drain(t, "job", "w1")
		require.Equal(t, jobstate.PhaseComplete, e.reconcile(t, "job").Status.Phase)
		require.NoError(t, loop.Sweep(ctx))
		require.NoError(t, loop.Sweep(ctx))
		var lines []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, "job finished") {
				lines = append(lines, l)
			}
		}
		require.Len(t, lines, 1, log.String())
		require.Contains(t, lines[0], "job=job phase=Complete reason=")
	})

	t.Run("SweepGoesOnWhenAJobIsDeleted", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := t.Context()
		e.create(t, "gone", jobstate.Spec{}, "a")
		e.create(t, "job", jobstate.Spec{}, "a")
		e.drain(t, "job", "w1")
		loop := &controller.Loop{R: e.r}
		require.NoError(t, loop.Sweep(ctx))
		require.NoError(t, e.s.Delete(ctx, "gone"))
		require.NoError(t, loop.Sweep(ctx))
		require.Equal(t, jobstate.PhaseComplete, e.snapshot(t, "job").Status.Phase)
	})

	t.Run("IdleJobsAreCheckedNotReadAndSweepsAreCounted", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		for _, j := range []string{"a", "b", "c"} {
			e.create(t, j, jobstate.Spec{}, "x")
		}
		reg := prometheus.NewRegistry()
		cache := &store.SnapshotCache{S: e.s}
		loop := &controller.Loop{R: e.r, Cache: cache, Metrics: controller.NewMetrics(reg, cache)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- loop.Run(ctx) }()
		// The first sweep reads the three idle Jobs; later ones only check
		// them (the Loop ticks every 500ms).
		testkit.Eventually(t, 30*time.Second, "three sweeps", func() (bool, string) {
			n := testutil.ToFloat64(loop.Metrics.Sweeps())
			return n >= 3, fmt.Sprint(n, " sweeps")
		})
		cancel()
		require.NoError(t, <-done)
		st := cache.Stats()
		require.EqualValues(t, 3, st.Read, "each idle Job is read once")
		require.GreaterOrEqual(t, st.Reused, int64(6))
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var names []string
		for _, mf := range mfs {
			names = append(names, mf.GetName())
		}
		require.Subset(t, names, []string{"workq_controller_sweeps_total", "workq_controller_sweep_duration_seconds", "workq_snapshots_total"})
	})

	t.Run("RunReturnsNilWhenItsContextEnds", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "job", jobstate.Spec{}, "a")
		e.drain(t, "job", "w1")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- (&controller.Loop{R: e.r, Interval: time.Millisecond}).Run(ctx) }()
		testkit.Eventually(t, 30*time.Second, "the Loop completes the Job", func() (bool, string) {
			st := e.snapshot(t, "job").Status
			return st.Phase == jobstate.PhaseComplete, string(st.Phase)
		})
		cancel()
		require.NoError(t, <-done)
	})
}
