package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// TestCompletedIndexesStayMergedRanges drives an Indexed Job with leases
// that mix retried, handed-back and next indexes, settled in parts with
// failures (retried, or dead after the last attempt) and hand-backs, and
// checks after every settle that the stored ranges of succeeded indexes
// are exactly the acked indexes of an independent model, as sorted ranges
// that neither overlap nor touch, each scored by its start, and that the
// succeeded and dead counts agree with it.
func TestCompletedIndexesStayMergedRanges(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		const k = 600
		e.create(t, jobstate.Spec{Completions: jobstate.Ptr(k), MaxAttempts: 3,
			RetryBackoff: jobstate.Duration(time.Millisecond), RetryBackoffMax: jobstate.Duration(time.Millisecond)})
		rng := rand.New(rand.NewPCG(7, uint64(len(e.job))))
		workers := []*session{e.worker(t, "w1"), e.worker(t, "w2"), e.worker(t, "w3")}
		acked, dead := map[int64]bool{}, map[int64]bool{}
		key := store.KeysFor(e.job).Key("doneidx")
		for round := 0; len(acked)+len(dead) < k; round++ {
			require.Less(t, round, 5000, "the Job does not end")
			e.advance(t, 2*time.Millisecond) // retries come due
			w := workers[rng.IntN(len(workers))]
			r, err := w.lease(t, 1+rng.IntN(60))
			require.NoError(t, err)
			if r.Lease == nil {
				continue
			}
			l := r.Lease
			set := store.Settlement{Token: l.Token, Started: -1}
			partial := rng.IntN(3) == 0
			for _, it := range l.Items {
				switch x := rng.IntN(10); {
				case x == 0:
					set.Released = append(set.Released, it.ID)
				case x == 1:
					set.Failed = append(set.Failed, store.Failure{ID: it.ID, Action: store.ActionCount, Err: "boom"})
					if it.Attempt >= 3 {
						dead[it.ID] = true
					}
				case partial && x < 5:
					// Not settled by this call: settled whole below.
				default:
					set.Acked = append(set.Acked, it.ID)
				}
			}
			_, err = w.settle(t, set)
			require.NoError(t, err)
			for _, id := range set.Acked {
				acked[id] = true
			}
			if partial {
				_, err = w.settle(t, store.Settlement{Token: l.Token, All: true, AckCount: len(l.Items) - len(set.Acked) - len(set.Released) - len(set.Failed), Started: -1})
				require.NoError(t, err)
				for _, it := range l.Items {
					if !slices.Contains(set.Released, it.ID) && !slices.ContainsFunc(set.Failed, func(f store.Failure) bool { return f.ID == it.ID }) {
						acked[it.ID] = true
					}
				}
			}
			z, err := e.rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
			require.NoError(t, err)
			var got []string
			for _, m := range z {
				s := m.Member.(string)
				lo, _, _ := strings.Cut(s, "-")
				require.Equal(t, lo, fmt.Sprint(int64(m.Score)), "range %s is scored by its start", s)
				got = append(got, s)
			}
			require.Equal(t, modelRanges(acked), got, "after round %d", round)
			items := e.status(t).Items
			require.EqualValues(t, len(acked), items.Succeeded, "after round %d", round)
			require.EqualValues(t, len(dead), items.Dead, "after round %d", round)
		}
	})
}

// modelRanges writes a set of ids as the sorted "a-b" ranges that neither
// overlap nor touch.
func modelRanges(ids map[int64]bool) []string {
	var l []int64
	for id := range ids {
		l = append(l, id)
	}
	slices.Sort(l)
	var out []string
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", l[i], l[j]))
		i = j + 1
	}
	return out
}

// TestATakenOverIndexedLeaseComesBackWhole: a worker holding ten indexes
// dies after three of them started. The next lease takes its lease over:
// the seven that never started come back at once on their first attempt,
// the three that did are retried on their second; all ten then complete,
// as one range, once each.
func TestATakenOverIndexedLeaseComesBackWhole(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Completions: jobstate.Ptr(10), Lease: jobstate.Duration(time.Second),
			RetryBackoff: jobstate.Duration(time.Millisecond), RetryBackoffMax: jobstate.Duration(time.Millisecond)})
		w := e.worker(t, "w1")
		l := w.mustLease(t, 10)
		require.Len(t, l.Items, 10)
		p := e.dieHolding(t, w, l, 3)
		attempts := map[int64]int{}
		for len(attempts) < 10 {
			r, err := p.lease(t, 10)
			require.NoError(t, err)
			if r.Lease == nil {
				e.advance(t, 5*time.Millisecond) // the retries come due
				continue
			}
			for _, it := range r.Lease.Items {
				require.Equal(t, fmt.Sprint(it.ID), string(it.Payload), "an index's payload is the index")
				require.NotContains(t, attempts, it.ID, "index %d leased twice", it.ID)
				attempts[it.ID] = it.Attempt
			}
			_, err = p.settle(t, ackAll(r.Lease))
			require.NoError(t, err)
		}
		for id := range int64(10) {
			want := 1
			if id < 3 {
				want = 2 // started, charged an attempt by the takeover
			}
			require.Equal(t, want, attempts[id], "index %d", id)
		}
		done, err := e.s.Completed(context.Background(), e.job)
		require.NoError(t, err)
		require.Equal(t, "0-9", done)
		st := e.status(t)
		require.EqualValues(t, 10, st.Items.Succeeded)
		require.EqualValues(t, 1, st.Items.Takeovers)
		require.EqualValues(t, 3, st.Items.FailedAttempts)
	})
}
