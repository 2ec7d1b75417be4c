package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
)

// groupFound is register's answer when the Job is a sharded one.
type groupFound struct{ g store.Group }

func (e *groupFound) Error() string { return fmt.Sprintf("job %q is sharded", e.g.Name) }

// runGroup works on sharded Job g: its executors are split into lanes, at
// most one per shard, and each lane runs a Worker on one shard until that
// shard is over, then on the next, until it has been through them all.
// Lanes start on different shards, and each worker process starts at a
// random one, so the shards' Redis nodes share the load; near the end,
// lanes whose shards are done help with the others. The first error of a
// lane (the Job failed, was deleted, ...) stops the others; nil means
// every shard succeeded.
func (w *Worker) runGroup(ctx context.Context, g store.Group) error {
	k := len(g.Shards)
	lanes := min(w.cfg.Concurrency, k)
	start := rand.IntN(k)
	w.log.Info("sharded job: working on its shards", "shards", k, "lanes", lanes)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for i := range lanes {
		cfg := w.cfg
		cfg.ID = fmt.Sprintf("%s-%d", w.cfg.ID, i)
		// Executors split as evenly as they go.
		cfg.Concurrency = w.cfg.Concurrency / lanes
		if i < w.cfg.Concurrency%lanes {
			cfg.Concurrency++
		}
		from := start + i*k/lanes
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.runLane(ctx, g, cfg, from)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			// The lanes stopped because of it report ErrStopped: not theirs.
			if first == nil {
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	if first != nil && !errors.Is(first, ErrStopped) {
		// Lanes stopped for another's failure left their shards to the
		// last worker's pass; this is it, so that the Job ends without a
		// controller running.
		rec := &controller.Reconciler{S: w.s, Log: w.log}
		for _, sh := range g.Shards {
			if _, err := rec.Reconcile(context.WithoutCancel(ctx), sh); err != nil && !errors.Is(err, ErrNoJob) {
				w.log.Warn("could not settle the phase of a shard", "shard", sh, "err", err)
			}
		}
	}
	return first
}

// runLane runs a Worker on each shard of g in turn, from shard from. A
// shard that drained with dead items failed without stopping the others:
// the lane goes on, and reports that failure once it has been through
// every shard.
func (w *Worker) runLane(ctx context.Context, g store.Group, cfg WorkerConfig, from int) error {
	var drainedDead error
	for j := range g.Shards {
		cfg.Job = g.Shards[(from+j)%len(g.Shards)]
		inner, err := NewWorker(w.c, cfg)
		if err != nil {
			return err
		}
		if err := inner.Run(ctx); err != nil {
			if errors.Is(err, ErrJobFailed) && !w.failedEarly(ctx, cfg.Job) {
				drainedDead = cmp.Or(drainedDead, err)
				continue
			}
			return err
		}
	}
	return drainedDead
}

// failedEarly reports whether shard failed in a way that stops its
// siblings (see store.FailsEarly); when its status cannot be read, it
// says yes, and the worker stops.
func (w *Worker) failedEarly(ctx context.Context, shard string) bool {
	st, err := w.s.Status(ctx, shard)
	return err != nil || store.FailsEarly(st)
}
