// Package controller is the Job controller: it reaps lost workers and
// expired leases and moves Jobs through their phases by the one lifecycle
// policy, jobstate.Next, applying each transition only if its guard still
// holds in Redis. Any number of controllers may run at once (serve, watch,
// run, and every worker as it ends): the guarded transitions make that safe.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// Reconciler drives Jobs toward their next phase.
type Reconciler struct {
	S   *store.Store
	Log *slog.Logger
}

// Step reaps and reconciles one Job (see Reconcile) and returns its status
// afterwards.
// A sharded Job's shards are reconciled one by one, and its status is
// their sum.
func (r *Reconciler) Step(ctx context.Context, job string) (jobstate.Status, error) {
	snap, err := r.Reconcile(ctx, job)
	if errors.Is(err, store.ErrNoJob) {
		g, gerr := r.S.Group(ctx, job)
		if gerr != nil {
			return snap.Status, err
		}
		for _, sh := range g.Shards {
			if _, err := r.Reconcile(ctx, sh); err != nil && !errors.Is(err, store.ErrNoJob) {
				return jobstate.Status{}, err
			}
		}
		return r.S.Status(ctx, job)
	}
	return snap.Status, err
}

// Reconcile reaps one Job and applies as many transitions as hold now
// (Succeeding then Complete, say). It returns the Job's snapshot after them.
func (r *Reconciler) Reconcile(ctx context.Context, job string) (store.Snapshot, error) {
	snap, err := r.reconcile(ctx, job)
	if err != nil || snap.Status.Spec.Group == "" {
		return snap, err
	}
	if snap.Observed.Stored == "" {
		if snap, err = r.groupDeadLimit(ctx, snap); err != nil {
			return snap, err
		}
	}
	if snap.Observed.Stored.Failed() {
		err = r.failSiblings(ctx, snap.Status)
	}
	return snap, err
}

// groupDeadLimit fails a shard, and so its sharded Job, when the dead
// items of all the Job's shards are more than its max-failed-items: the
// limit is the Job's, as for a Job of one slot (each shard also checks it
// alone, which never trips before the sum does).
func (r *Reconciler) groupDeadLimit(ctx context.Context, snap store.Snapshot) (store.Snapshot, error) {
	spec := snap.Status.Spec
	if spec.MaxFailedItems == nil || snap.Status.Items.Dead == 0 {
		return snap, nil
	}
	g, err := r.S.Group(ctx, spec.Group)
	if errors.Is(err, store.ErrNoJob) {
		return snap, nil
	}
	if err != nil {
		return snap, err
	}
	snaps, errs := r.S.Snapshots(ctx, g.Shards)
	var dead int64
	for k := range snaps {
		if errs[k] == nil {
			dead += snaps[k].Status.Items.Dead
		}
	}
	limit := int64(*spec.MaxFailedItems)
	if dead <= limit {
		return snap, nil
	}
	reason := jobstate.ReasonMaxFailedItemsExceeded
	if spec.Counted() {
		reason = jobstate.ReasonMaxFailedIndexesExceeded
	}
	t := jobstate.Transition{To: jobstate.PhaseFailing, Guard: jobstate.GuardShardFailed, Condition: jobstate.Condition{
		Type: jobstate.ConditionFailureTarget, Status: "True", Reason: reason,
		Message: fmt.Sprintf("%d items are dead across the %d shards of %s, more than max-failed-items (%d)", dead, len(g.Shards), g.Name, limit)}}
	if err := r.apply(ctx, snap.Status.Name, t); err != nil {
		return snap, err
	}
	return r.observe(ctx, snap.Status.Name)
}

// failSiblings stops every other shard of a shard's sharded Job when the
// shard failed on its own: a sharded Job fails as one.
//
// A shard that drained with dead items stops nothing: the others run
// their items to the end, as a Job of one slot would.
func (r *Reconciler) failSiblings(ctx context.Context, shard jobstate.Status) error {
	if !store.FailsEarly(shard) || store.StoppedForSibling(shard) {
		return nil
	}
	g, err := r.S.Group(ctx, shard.Spec.Group)
	if errors.Is(err, store.ErrNoJob) {
		return nil // the sharded Job is gone; so are its shards
	}
	if err != nil {
		return err
	}
	why := shard.Failure()
	// The siblings' reopen generations first, then the shard's phase again:
	// a `retry --reopen` that reopened the shard after the read that found
	// it failed either shows in that second read (nothing is stopped), or
	// moves a sibling's generation after the first (its stop is refused).
	gens, err := r.S.ReopenGens(ctx, g.Shards)
	if err != nil {
		return err
	}
	snaps, errs := r.S.Snapshots(ctx, g.Shards)
	again, err := r.S.Snapshot(ctx, shard.Name)
	if errors.Is(err, store.ErrNoJob) {
		return nil // the sharded Job is gone
	}
	if err != nil {
		return err
	}
	if !again.Observed.Stored.Failed() || !store.FailsEarly(again.Status) || store.StoppedForSibling(again.Status) {
		return nil // reopened meanwhile
	}
	for k, sib := range g.Shards {
		if sib == shard.Name || errs[k] != nil || snaps[k].Observed.Stored != "" {
			continue
		}
		t := jobstate.Transition{To: jobstate.PhaseFailing, Guard: jobstate.GuardShardFailed, Condition: jobstate.Condition{
			Type: jobstate.ConditionFailureTarget, Status: "True", Reason: jobstate.ReasonShardFailed,
			Message: fmt.Sprintf("shard %s of %s failed: %s", shard.Name, g.Name, why)}}
		if err := r.applyAtGen(ctx, sib, t, gens[k]); err != nil && !errors.Is(err, store.ErrNoJob) {
			return err
		}
	}
	return nil
}

// apply applies transition t to job if its guard still holds, and logs it
// when it did.
func (r *Reconciler) apply(ctx context.Context, job string, t jobstate.Transition) error {
	return r.applyAtGen(ctx, job, t, "")
}

// applyAtGen is apply of a GuardShardFailed transition decided at the
// shard's reopen generation gen (store.ApplyAtGen; "": any).
func (r *Reconciler) applyAtGen(ctx context.Context, job string, t jobstate.Transition, gen string) error {
	applied, err := r.S.ApplyAtGen(ctx, job, t, gen)
	if applied {
		r.Log.Info("job phase changed", "job", job, "phase", t.To, "reason", t.Condition.Reason, "message", t.Condition.Message)
	}
	return err
}

func (r *Reconciler) reconcile(ctx context.Context, job string) (store.Snapshot, error) {
	log := r.Log.With("job", job)
	snap, err := r.observe(ctx, job)
	if err != nil {
		return snap, err
	}
	if snap.Observed.Stored.Finished() {
		return snap, nil
	}
	if snap.Observed.StateLost == "" {
		rr, err := r.S.Reap(ctx, job)
		if err != nil && !errors.Is(err, store.ErrStateLost) {
			return snap, err
		}
		if rr.WorkersLost > 0 {
			log.Warn("workers lost: no heartbeat within the lease", "workers", rr.WorkersLost)
		}
		if rr.LeasesReclaimed > 0 {
			log.Info("expired leases taken over", "leases", rr.LeasesReclaimed, "items", rr.ItemsReclaimed)
		}
	}
	for range 4 {
		if snap, err = r.observe(ctx, job); err != nil {
			return snap, err
		}
		t, ok := jobstate.Next(snap.Status.Spec, snap.Observed)
		if !ok {
			return snap, nil
		}
		// Not applied: another controller moved the Job first, or the
		// facts changed; either way the next observation tells.
		if err := r.apply(ctx, job, t); err != nil {
			return snap, err
		}
	}
	if snap, err = r.observe(ctx, job); err != nil {
		return snap, err
	}
	return snap, nil
}

// observe reads a Job's snapshot, with its completed indexes when a
// success policy needs them (only those within the policy's indexes).
func (r *Reconciler) observe(ctx context.Context, job string) (store.Snapshot, error) {
	snap, err := r.S.Snapshot(ctx, job)
	if err != nil {
		return snap, err
	}
	if snap.Observed.Stored == "" {
		if err := r.S.ObserveSuccess(ctx, job, &snap); err != nil {
			return snap, err
		}
	}
	return snap, nil
}

// needed reports whether a Job's snapshot calls for a Reconcile: it has
// workers or leases to reap, a success policy to check, or a transition is
// due. An idle Job costs its controller nothing more than its counters.
func (r *Reconciler) needed(snap store.Snapshot) bool {
	st := snap.Status
	if st.Active > 0 || st.Leases > 0 || len(st.Spec.SuccessPolicy) > 0 {
		return true
	}
	_, due := jobstate.Next(st.Spec, snap.Observed)
	return due
}

// recheckFinished is how often the Loop looks again at a finished Job:
// only `coordinator retry --reopen` brings one back.
const recheckFinished = 10 * time.Second

// Loop runs Reconcile for every Job every Interval until ctx ends; finished
// Jobs are looked at every recheckFinished. One pipelined read of every
// Job's counters per sweep decides which need more.
type Loop struct {
	R *Reconciler
	// Interval between sweeps. Default 500ms.
	Interval time.Duration
	// Now is the clock of the finished-Job cache. Default time.Now.
	Now func() time.Time
	// Cache reads the Jobs' counters each sweep, reading again only the
	// Jobs that changed. Default: one of the Loop's own over R.S.
	Cache *store.SnapshotCache
	// Metrics records each sweep. Default: none.
	Metrics *Metrics

	finished map[string]finishedJob // by name; owned by Run
	since    time.Time              // Redis's clock at the first sweep; owned by Run
}

type finishedJob struct {
	uid string // the incarnation seen finished: a new one is not skipped
	at  time.Time
}

// Run sweeps until ctx ends; it returns nil then. Errors of one Job are
// logged and do not stop the others.
func (l *Loop) Run(ctx context.Context) error {
	interval := l.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		start := time.Now()
		err := l.Sweep(ctx)
		l.Metrics.sweep(time.Since(start))
		if err != nil && ctx.Err() == nil {
			if err.Error() != lastErr {
				l.R.Log.Warn("controller sweep failed; retrying", "err", err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// announce logs a Job that finished since the Loop started, whoever ended
// it: workers end their Job themselves, and the log of serve should still
// say how each Job ended. Jobs that were finished before are not repeated.
func (l *Loop) announce(st jobstate.Status) {
	if len(st.Conditions) == 0 {
		return
	}
	last := st.Conditions[len(st.Conditions)-1]
	if last.LastTransitionTime.Before(l.since.Add(-time.Second)) {
		return
	}
	l.R.Log.Info("job finished", "job", st.Name, "phase", st.Phase, "reason", last.Reason, "message", last.Message)
}

// Sweep reconciles every Job once, skipping Jobs it saw finished less than
// recheckFinished ago (unless they are another incarnation now).
func (l *Loop) Sweep(ctx context.Context) error {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	// The registry, unchecked: the reads below tell which Jobs are gone.
	names, uids, err := l.R.S.Registered(ctx)
	if err != nil {
		return err
	}
	if l.finished == nil {
		// Conditions carry Redis's clock, so the Loop's start does too.
		if l.since, err = l.R.S.Now(ctx); err != nil {
			return err
		}
		l.finished = map[string]finishedJob{}
	}
	seen := make(map[string]finishedJob, len(l.finished))
	var todo []string
	for _, n := range names {
		if f, ok := l.finished[n]; ok && f.uid == uids[n] && now().Sub(f.at) < recheckFinished {
			seen[n] = f
			continue
		}
		todo = append(todo, n)
	}
	// One pipelined read of the counters of every Job left (a cheaper
	// check for idle Jobs read before); only those with workers, leases or
	// a transition due are reconciled one by one.
	if l.Cache == nil {
		l.Cache = &store.SnapshotCache{S: l.R.S}
	}
	snaps, serrs := l.Cache.Snapshots(ctx, todo)
	var errs []error
	for i, n := range todo {
		if err := serrs[i]; err != nil {
			if errors.Is(err, store.ErrNoJob) {
				l.R.S.Unregister(ctx, n, uids[n])
			} else {
				errs = append(errs, fmt.Errorf("job %q: %w", n, err))
			}
			continue
		}
		snap := snaps[i]
		if !snap.Observed.Stored.Finished() && l.R.needed(snap) {
			var err error
			if snap, err = l.R.Reconcile(ctx, n); err != nil {
				if !errors.Is(err, store.ErrNoJob) {
					errs = append(errs, fmt.Errorf("job %q: %w", n, err))
				}
				continue
			}
		}
		if snap.Observed.Stored.Finished() {
			if f, ok := l.finished[n]; !ok || f.uid != snap.Status.UID {
				l.announce(snap.Status)
				// A shard whose failure was not spread yet (its reconciler
				// ended first) stops its siblings now.
				if snap.Status.Spec.Group != "" && snap.Observed.Stored.Failed() {
					if err := l.R.failSiblings(ctx, snap.Status); err != nil {
						errs = append(errs, fmt.Errorf("job %q: %w", n, err))
					}
				}
			}
			seen[n] = finishedJob{uid: snap.Status.UID, at: now()}
		}
	}
	// Deleted and expired Jobs drop out.
	l.finished = seen
	return errors.Join(errs...)
}
