package store

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SnapshotCache reads the snapshots of many Jobs (Snapshots, Jobs) and
// keeps them, so that the next read runs the snapshot script only for the
// Jobs that changed since. A kept snapshot is reused when its Job is quiet
// (no workers, no leases, nothing succeeded in the last minute: nothing in
// it moves with time alone but the clock, which is moved forward) and one
// pipelined check finds the same incarnation, the same change counter
// (Snapshot.Ver, moved by every script that changes what a snapshot shows)
// and the same number of pending items (a plain RPUSH loads a Job without a
// script). A Job is read in full at least every MaxAge all the same (each
// after between half of MaxAge and MaxAge, so that the full reads of many
// Jobs spread out), so a change no script made shows within that: a key
// deleted or edited by hand (a lost state hash, a flush, a restart from an
// older file show at once: the uid or the counter differs).
//
// With 10,000 idle Jobs, a sweep of the controller or a dashboard read then
// costs Redis one HMGET and one LLEN per Job instead of a script each.
// It is safe for concurrent use; concurrent calls run one at a time.
type SnapshotCache struct {
	S *Store
	// MaxAge is how long a quiet Job's snapshot is reused at most.
	// Default 1m.
	MaxAge time.Duration
	// Now is the clock of MaxAge and of moving kept snapshots forward.
	// Default time.Now.
	Now func() time.Time

	mu     sync.Mutex
	kept   map[string]keptSnapshot
	read   int64
	reused int64
}

// keepFor is how long the snapshot of Job name is kept: between half of
// maxAge and maxAge, fixed per name, so that the full reads of many idle
// Jobs spread over the sweeps instead of all falling in one.
func keepFor(name string, maxAge time.Duration) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return maxAge - time.Duration(h.Sum32()%1024)*maxAge/2048
}

type keptSnapshot struct {
	snap Snapshot
	at   time.Time
}

// CacheStats counts what a SnapshotCache did: snapshots read with the
// snapshot script, and snapshots reused after the cheap check.
type CacheStats struct {
	Read, Reused int64
}

// Stats returns how many snapshots were read and reused so far.
func (c *SnapshotCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Read: c.read, Reused: c.reused}
}

func (c *SnapshotCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// quiet reports whether nothing in a snapshot but its clock moves until a
// script changes the Job: no worker whose heartbeat may expire, no lease
// that may expire, no successes in the throughput window, no active
// deadline running.
func quiet(s Snapshot) bool {
	st := s.Status
	deadline := st.Spec.ActiveDeadline.D() > 0 && st.StartTime != nil && !st.Suspended && !s.Observed.Stored.Finished()
	return st.Active == 0 && st.Leases == 0 && !s.rated && !deadline
}

// Jobs reads the counters of every Job, sorted by name, as Store.Jobs
// does, reading again only the Jobs that changed. The registry is read
// without a check per name (Store.Registered): the reads tell which Jobs
// are gone, and their names are dropped. It fails only when the Jobs
// cannot be listed.
func (c *SnapshotCache) Jobs(ctx context.Context) ([]JobStatus, error) {
	names, reg, err := c.S.Registered(ctx)
	if err != nil {
		return nil, err
	}
	snaps, errs := c.Snapshots(ctx, names)
	out := make([]JobStatus, 0, len(names))
	for i, n := range names {
		if errors.Is(errs[i], ErrNoJob) {
			c.S.Unregister(ctx, n, reg[n])
			continue
		}
		if errs[i] == nil && snaps[i].Status.UID != reg[n] {
			_ = c.S.register(ctx, n, snaps[i].Status.UID)
		}
		out = append(out, JobStatus{Name: n, Status: snaps[i].Status, Err: errs[i]})
	}
	return out, nil
}

// Snapshots is Store.Snapshots, reading again only the Jobs that changed
// since their kept snapshot (see SnapshotCache).
func (c *SnapshotCache) Snapshots(ctx context.Context, jobs []string) ([]Snapshot, []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = time.Minute
	}
	now := c.now()
	if c.kept == nil {
		c.kept = map[string]keptSnapshot{}
	}
	for n, k := range c.kept {
		if now.Sub(k.at) >= keepFor(n, maxAge) {
			delete(c.kept, n)
		}
	}
	snaps := make([]Snapshot, len(jobs))
	errs := make([]error, len(jobs))
	// Which kept snapshots still hold: one pipelined check.
	var cand []int
	for i, j := range jobs {
		if k, ok := c.kept[j]; ok && quiet(k.snap) {
			cand = append(cand, i)
		}
	}
	fresh := make([]bool, len(jobs))
	if len(cand) > 0 {
		if err := c.S.ready(ctx); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return snaps, errs
		}
		pipe := c.S.rdb().Pipeline()
		states := make([]*redis.SliceCmd, len(cand))
		lens := make([]*redis.IntCmd, len(cand))
		for x, i := range cand {
			k := c.S.keysOf(jobs[i])
			states[x] = pipe.HMGet(ctx, k.Key("state"), "uid", "ver")
			lens[x] = pipe.LLen(ctx, k.Key("pending"))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			// Read them all again: the full read reports the error.
			cand = nil
		}
		for x, i := range cand {
			k := c.kept[jobs[i]]
			v, err1 := states[x].Result()
			l, err2 := lens[x].Result()
			if err1 != nil || err2 != nil || len(v) != 2 {
				continue
			}
			uid, _ := v[0].(string)
			ver, _ := v[1].(string)
			if uid != k.snap.Status.UID || toInt(ver) != k.snap.Ver || l != k.snap.listed {
				continue
			}
			s := k.snap
			d := now.Sub(k.at)
			s.Status.Now = s.Status.Now.Add(d)
			s.Observed.Now = s.Observed.Now.Add(d)
			if s.Status.OldestPendingAge > 0 {
				s.Status.OldestPendingAge += d.Seconds()
			}
			snaps[i] = s
			fresh[i] = true
		}
	}
	var todo []string
	var at []int
	for i, j := range jobs {
		if fresh[i] {
			c.reused++
			continue
		}
		todo = append(todo, j)
		at = append(at, i)
	}
	if len(todo) == 0 {
		return snaps, errs
	}
	got, gerrs := c.S.Snapshots(ctx, todo)
	for x, i := range at {
		snaps[i], errs[i] = got[x], gerrs[x]
		c.read++
		if gerrs[x] != nil {
			delete(c.kept, todo[x])
			continue
		}
		c.kept[todo[x]] = keptSnapshot{snap: got[x], at: now}
	}
	return snaps, errs
}
