// Package controller is the Job controller: it reaps lost workers and
// expired leases and moves Jobs through their phases (jobstate.Next),
// applying each transition only if its guard still holds in Redis. Any
// number of controllers may run at once (serve, watch, run): the guarded
// transitions make that safe.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// Reconciler drives Jobs toward their next phase.
type Reconciler struct {
	C   *queue.Client
	Log *slog.Logger
}

// Step reaps and reconciles one Job (see Reconcile) and returns its status
// afterwards.
func (r *Reconciler) Step(ctx context.Context, job string) (jobstate.Status, error) {
	if _, err := r.Reconcile(ctx, job); err != nil {
		return jobstate.Status{}, err
	}
	return r.C.Status(ctx, job)
}

// Reconcile reaps one Job and applies as many transitions as hold now
// (Failing then Failed, say). It reports whether the Job has finished.
func (r *Reconciler) Reconcile(ctx context.Context, job string) (finished bool, err error) {
	log := r.Log.With("job", job)
	spec, obs, err := r.C.Observe(ctx, job)
	if err != nil {
		return false, err
	}
	if obs.Stored.Finished() {
		return true, nil
	}
	rr, err := r.C.Reap(ctx, job)
	if err != nil {
		return false, err
	}
	if rr.WorkersLost > 0 {
		log.Warn("workers lost: no heartbeat within the lease", "workers", rr.WorkersLost)
	}
	if rr.LeasesReclaimed > 0 {
		log.Info("expired leases reclaimed", "leases", rr.LeasesReclaimed, "items", rr.ItemsReclaimed)
	}
	for range 3 {
		if spec, obs, err = r.C.Observe(ctx, job); err != nil {
			return false, err
		}
		t, ok := jobstate.Next(spec, obs)
		if !ok {
			break
		}
		applied, err := r.C.Apply(ctx, job, t)
		if err != nil {
			return false, err
		}
		if !applied {
			break
		}
		obs.Stored = t.To
		log.Info("job phase changed", "phase", t.To, "reason", t.Condition.Reason, "message", t.Condition.Message)
	}
	return obs.Stored.Finished(), nil
}

// recheckFinished is how often the Loop looks again at a finished Job:
// only `coordinator retry` brings one back, and its workers need no
// controller to run, only to be marked Complete.
const recheckFinished = 10 * time.Second

// Loop runs Reconcile for every Job every Interval until ctx ends; finished
// Jobs, which only a retry changes, are looked at every recheckFinished.
type Loop struct {
	R *Reconciler
	// Interval between sweeps. Default 500ms.
	Interval time.Duration

	finished map[string]time.Time // when a Job was last seen finished; owned by Run
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
		if err := l.sweep(ctx); err != nil && ctx.Err() == nil {
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

func (l *Loop) sweep(ctx context.Context) error {
	names, err := l.R.C.Names(ctx)
	if err != nil {
		return err
	}
	if l.finished == nil {
		l.finished = map[string]time.Time{}
	}
	seen := make(map[string]time.Time, len(l.finished))
	var errs []error
	for _, n := range names {
		if at, ok := l.finished[n]; ok && time.Since(at) < recheckFinished {
			seen[n] = at
			continue
		}
		done, err := l.R.Reconcile(ctx, n)
		switch {
		case err != nil && !errors.Is(err, queue.ErrNoJob):
			errs = append(errs, fmt.Errorf("job %q: %w", n, err))
		case done:
			seen[n] = time.Now()
		}
	}
	// Deleted and expired Jobs drop out.
	l.finished = seen
	return errors.Join(errs...)
}
