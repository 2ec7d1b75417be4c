package queue

import (
	"math"
	"sync"
	"time"
)

// Lease sizing: how many items to ask for, and when. A worker measures how
// long items take and learns the Job's figure from Redis (every worker's
// measurements), and compares it with its lease round trip:
//   - slow items (longer than a round trip) are leased one per free
//     executor, never ahead, so a peer that is idle gets the next one;
//   - fast items are leased in batches that cover leaseStretch of work for
//     all executors, and the next batch is asked for while the last one
//     still has work for two round trips, so executors never wait.
//
// Redis caps every lease at a fair share of what is left (left ÷ live
// workers), so the tail of a Job spreads over every worker.

// justInTime is how many round trips an item may take for the next one to
// be asked for while it runs, timed to arrive as it ends: for items that
// take a few round trips (a process per item), so executors do not wait a
// round trip per item. Longer items are only leased when an executor is
// free.
const justInTime = 20

// leaseStretch is the work one lease of fast items covers.
const leaseStretch = 100 * time.Millisecond

// maxLeaseBytes caps a lease call's payloads, by the items' average size.
const maxLeaseBytes = 8 << 20

// A worker of fast items that wants more than a lease holds asks for
// several in one round trip, not one each (each lease still holds at most
// the batch size, with its own token and fence): up to maxLeasesPerCall,
// and no more than callItems items in all unless one lease holds more, so
// that no call keeps Redis longer than a lease of a large batch does.
const (
	maxLeasesPerCall = 8
	callItems        = 2000
)

type sizer struct {
	mu       sync.Mutex
	conc     int
	max      int
	batchFn  bool
	item     time.Duration // EWMA of one item's run time; 0 unknown
	rtt      time.Duration // EWMA of a lease round trip
	itemSize float64       // EWMA of payload bytes per item
	timedN   int           // items timed since takeTimed
	timedSum time.Duration
	running  map[time.Time]int // start times of running executors
}

// started and ended track when each running executor began, for
// just-in-time leases.
func (s *sizer) started(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = map[time.Time]int{}
	}
	s.running[t]++
}

func (s *sizer) ended(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[t] <= 1 {
		delete(s.running, t)
		return
	}
	s.running[t]--
}

func (s *sizer) init(conc, max int, batchFn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conc, s.max, s.batchFn = conc, max, batchFn
}

// observe folds in n items that took d together.
func (s *sizer) observe(d time.Duration, n int) {
	per := d / time.Duration(max(n, 1))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.item = ewma(s.item, per)
	s.timedN += n
	s.timedSum += d
}

// takeTimed returns the items timed since the last call and their total
// duration, to share with the Job through Redis.
func (s *sizer) takeTimed() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, d := s.timedN, s.timedSum
	s.timedN, s.timedSum = 0, 0
	return n, d
}

// learn takes the Job's item duration from Redis while this worker has
// measured none.
func (s *sizer) learn(job time.Duration) {
	if job <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.item == 0 {
		s.item = job
	}
}

func (s *sizer) roundTrip(d time.Duration, items int, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtt = ewma(s.rtt, d)
	if items > 0 {
		per := float64(bytes) / float64(items)
		if s.itemSize == 0 {
			s.itemSize = per
		} else {
			s.itemSize = s.itemSize*0.7 + per*0.3
		}
	}
}

func ewma(old, v time.Duration) time.Duration {
	if old == 0 {
		return v
	}
	return time.Duration(float64(old)*0.7 + float64(v)*0.3)
}

// fast reports whether items take less than a lease round trip.
func (s *sizer) fastLocked() bool {
	return s.item > 0 && s.rtt > 0 && s.item < s.rtt
}

// tiny reports whether items are so short that executors should claim them
// in chunks.
func (s *sizer) tiny() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.item > 0 && s.item < 50*time.Microsecond
}

// want decides whether to lease now and how many items (n, in leases of
// at most per items): queued is what the worker holds unclaimed, free its
// idle executors. When it says not now, at (if not zero) is when to ask
// again: the just-in-time moment.
func (s *sizer) want(queued, free int, now time.Time) (n, per int, ok bool, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok, at = s.wantLocked(queued, free, now)
	return n, s.perLocked(), ok, at
}

func (s *sizer) wantLocked(queued, free int, now time.Time) (n int, ok bool, at time.Time) {
	if !s.fastLocked() {
		if s.batchFn {
			// A batch handler runs a batch at a time: lease one when an
			// executor is free, sized by the work it holds.
			if queued > 0 || free == 0 {
				return 0, false, time.Time{}
			}
			return s.capLocked(s.max, 1), true, time.Time{}
		}
		if queued > 0 {
			return 0, false, time.Time{}
		}
		if free > 0 {
			return free, true, time.Time{}
		}
		// Every executor is busy: for items of a few round trips, ask
		// for the next one so that it arrives as the first running one
		// should end.
		if s.item > 0 && s.rtt > 0 && s.item < justInTime*s.rtt && len(s.running) > 0 {
			var first time.Time
			for t := range s.running {
				if first.IsZero() || t.Before(first) {
					first = t
				}
			}
			due := first.Add(s.item - s.rtt)
			if !now.Before(due) {
				return 1, true, time.Time{}
			}
			return 0, false, due
		}
		return 0, false, time.Time{}
	}
	target := s.max
	if s.item > 0 {
		target = int(math.Ceil(float64(leaseStretch) * float64(s.conc) / float64(s.item)))
	}
	if s.batchFn {
		target = s.capLocked(target, 1)
	} else {
		target = s.capLocked(target, s.leasesLocked())
	}
	// Keep enough for two round trips of every executor.
	low := s.conc
	if s.item > 0 {
		low += int(math.Ceil(2 * float64(s.rtt) * float64(s.conc) / float64(s.item)))
	}
	if s.batchFn {
		low = 1
	}
	if queued >= min(low, target) {
		return 0, false, time.Time{}
	}
	return target, true, time.Time{}
}

// perLocked is the most items of one lease: max, and maxLeaseBytes by
// the items' average size.
func (s *sizer) perLocked() int {
	per := s.max
	if s.itemSize > 0 {
		per = min(per, int(maxLeaseBytes/s.itemSize))
	}
	return max(1, per)
}

// leasesLocked is how many leases a call may make.
func (s *sizer) leasesLocked() int { return min(maxLeasesPerCall, max(1, callItems/s.perLocked())) }

// capLocked caps n at leases leases of at most max items, and all of
// them at maxLeaseBytes by the items' average size: a call brings no more
// bytes than one lease could.
func (s *sizer) capLocked(n, leases int) int {
	n = min(n, s.max*leases)
	if s.itemSize > 0 {
		n = min(n, int(maxLeaseBytes/s.itemSize))
	}
	return max(1, n)
}

// holdsTooMuch reports whether unclaimed items are worth handing to idle
// peers: more work than two round trips.
func (s *sizer) worthHandingBack(queued int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if queued == 0 {
		return false
	}
	if s.item == 0 || s.rtt == 0 {
		return true
	}
	return time.Duration(queued)*s.item/time.Duration(max(s.conc, 1)) > 2*s.rtt
}
