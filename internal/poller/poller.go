// Package poller shares reads of Job state among many readers: every
// dashboard viewer, every event stream and every metrics scrape of one
// `coordinator serve` is answered from at most one read of Redis per Job
// per interval, however many there are.
package poller

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// Poller caches the answers of a Store for Every. It is safe for
// concurrent use; it has no goroutine of its own (reads happen on demand,
// one at a time per key).
type Poller struct {
	S *store.Store
	// Every is how old an answer may be. Default 1s.
	Every time.Duration
	// IndexesEvery is how old the completed and failed index lists of a
	// Status may be: walking them costs more than the counters, and a
	// viewer needs them less often. Default 10s.
	IndexesEvery time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Cache reads every Job's counters for Jobs, reading again only the
	// Jobs that changed. Default: one of the Poller's own over S.
	Cache *store.SnapshotCache

	mu    sync.Mutex
	cache map[string]entry
	// gen counts Forget calls: a read begun before one is neither cached
	// nor shared with callers that come after it.
	gen   uint64
	group singleflight.Group
}

type entry struct {
	at  time.Time
	v   any
	err error
}

func (p *Poller) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// get returns the cached answer for key if it is fresh, else reads it once
// for every caller waiting on it.
func (p *Poller) get(ctx context.Context, key string, read func(context.Context) (any, error)) (any, error) {
	return p.getEvery(ctx, key, cmp.Or(p.Every, time.Second), read)
}

// getEvery is get with answers kept for every.
func (p *Poller) getEvery(ctx context.Context, key string, every time.Duration, read func(context.Context) (any, error)) (any, error) {
	p.mu.Lock()
	if e, ok := p.cache[key]; ok && p.now().Sub(e.at) < every {
		p.mu.Unlock()
		return e.v, e.err
	}
	gen := p.gen
	p.mu.Unlock()
	v, err, _ := p.group.Do(key+"@"+strconv.FormatUint(gen, 10), func() (any, error) {
		// The read outlives one caller's cancellation: others wait on it.
		v, err := read(context.WithoutCancel(ctx))
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.gen != gen {
			// Forgotten while in flight: it may predate the change.
			return v, err
		}
		if p.cache == nil {
			p.cache = map[string]entry{}
		}
		if len(p.cache) > 10000 {
			clear(p.cache)
		}
		p.cache[key] = entry{at: p.now(), v: v, err: err}
		return v, err
	})
	return v, err
}

// Forget drops what is cached of job (after a change to it), so the next
// read sees the change. Reads in flight when it is called are not cached
// and callers after it do not share them: they may predate the change.
func (p *Poller) Forget(job string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	for k := range p.cache {
		if k == "jobs" || strings.HasSuffix(k, ":"+job) || strings.Contains(k, ":"+job+":") {
			delete(p.cache, k)
		}
	}
}

// Jobs reads every Job's counters (see store.Store.Jobs).
func (p *Poller) Jobs(ctx context.Context) ([]store.JobStatus, error) {
	p.mu.Lock()
	if p.Cache == nil {
		p.Cache = &store.SnapshotCache{S: p.S}
	}
	c := p.Cache
	p.mu.Unlock()
	v, err := p.get(ctx, "jobs", func(ctx context.Context) (any, error) { return c.Jobs(ctx) })
	js, _ := v.([]store.JobStatus)
	return js, err
}

// Status reads one Job (see store.Store.Status): its counters at most
// every Every, and the index lists of a fixed completion count Job at most
// every IndexesEvery.
func (p *Poller) Status(ctx context.Context, job string) (jobstate.Status, error) {
	v, err := p.get(ctx, "status:"+job, func(ctx context.Context) (any, error) {
		snap, err := p.S.Snapshot(ctx, job)
		if errors.Is(err, store.ErrNoJob) {
			// Perhaps a sharded Job: the sum of its shards.
			return p.S.Status(ctx, job)
		}
		if err != nil {
			return jobstate.Status{}, err
		}
		st := snap.Status
		if st.Spec.Counted() {
			iv, err := p.getEvery(ctx, "indexes:"+job, cmp.Or(p.IndexesEvery, 10*time.Second), func(ctx context.Context) (any, error) {
				c, f, err := p.S.Indexes(ctx, job, st.Items.Dead)
				return [2]string{c, f}, err
			})
			if err != nil {
				return jobstate.Status{}, err
			}
			ix, _ := iv.([2]string)
			st.CompletedIndexes = jobstate.ShiftIntervals(ix[0], st.Spec.IndexBase)
			st.FailedIndexes = jobstate.ShiftIntervals(ix[1], st.Spec.IndexBase)
		}
		return st, nil
	})
	st, _ := v.(jobstate.Status)
	return st, err
}

// Workers lists a Job's workers (see store.Store.Workers).
func (p *Poller) Workers(ctx context.Context, job string) ([]store.WorkerInfo, error) {
	v, err := p.get(ctx, "workers:"+job, func(ctx context.Context) (any, error) { return p.S.Workers(ctx, job) })
	ws, _ := v.([]store.WorkerInfo)
	return ws, err
}

// Dead lists a Job's first dead items (see store.Store.Dead). The list is
// kept for the dead count of the Job's Status as the Poller has it, and
// read again as soon as that count moves: a list cached a moment before
// the last items died would otherwise be served beside a Status that
// counts them, and a live page, which reads the list only when the count
// changes, would keep showing it short.
func (p *Poller) Dead(ctx context.Context, job string, limit int) ([]store.DeadItem, error) {
	st, err := p.Status(ctx, job)
	if err != nil {
		return nil, err
	}
	key := "dead:" + job + ":" + strconv.Itoa(limit) + ":" + strconv.FormatInt(st.Items.Dead, 10)
	v, err := p.get(ctx, key, func(ctx context.Context) (any, error) { return p.S.Dead(ctx, job, limit) })
	ds, _ := v.([]store.DeadItem)
	return ds, err
}

// WithGroups adds a row for each sharded Job to Jobs' rows (see
// store.Store.WithGroups).
func (p *Poller) WithGroups(ctx context.Context, all []jobstate.Status) []jobstate.Status {
	return p.S.WithGroups(ctx, all)
}
