package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// leaseMany is one lease call that may make up to leases leases.
func (w *session) leaseMany(t *testing.T, want, leases int) store.LeaseReply {
	t.Helper()
	w.seq++
	return w.leaseAgain(t, want, leases)
}

// leaseAgain repeats the session's last lease call.
func (w *session) leaseAgain(t *testing.T, want, leases int) store.LeaseReply {
	t.Helper()
	r, err := w.e.s.Lease(context.Background(), w.e.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session,
		Worker: w.wid, Seq: w.seq, Want: want, Leases: leases})
	require.NoError(t, err)
	require.NotNil(t, r.Lease, "a lease, not %+v", r)
	return r
}

// all returns the leases of a reply, first one first.
func all(r store.LeaseReply) []*store.Lease { return append([]*store.Lease{r.Lease}, r.More...) }

// ids returns the ids of a lease's items.
func ids(l *store.Lease) []int64 {
	out := make([]int64, len(l.Items))
	for i, it := range l.Items {
		out[i] = it.ID
	}
	return out
}

// tenItemsInBatchesOf3 creates a Job of batch size 3, pushes i0 to i9
// and returns a worker's session.
func (e *env) tenItemsInBatchesOf3(t *testing.T) *session {
	t.Helper()
	e.create(t, jobstate.Spec{BatchSize: 3})
	e.push(t, "i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9")
	return e.worker(t, "w1")
}

// A worker that wants more than a lease holds gets several leases in one
// call: each of at most the batch size, with a token and a fence of its
// own, settled on its own; a repeated call returns the same leases.
func TestOneCallMakesSeveralLeases(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		w := e.tenItemsInBatchesOf3(t)
		r := w.leaseMany(t, 12, 4)
		ls := all(r)
		require.Len(t, ls, 4)
		want := [][]int64{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}
		tokens := map[string]bool{}
		for k, l := range ls {
			require.Equal(t, want[k], ids(l), "lease %d", k)
			require.Equal(t, "i"+string(rune('0'+want[k][0])), string(l.Items[0].Payload))
			require.Equal(t, r.Lease.Expires, l.Expires)
			tokens[l.Token] = true
			if k > 0 {
				require.Greater(t, l.Fence, ls[k-1].Fence, "every lease has a fence of its own")
			}
		}
		require.Len(t, tokens, 4)
		require.EqualValues(t, 10, e.status(t).Items.Leased)

		again := all(w.leaseAgain(t, 12, 4))
		require.Len(t, again, 4, "a repeated call returns every lease it made")
		for k := range ls {
			require.Equal(t, ls[k].Token, again[k].Token)
			require.Equal(t, ids(ls[k]), ids(again[k]))
		}

		res, err := w.settle(t, ackAll(ls[0]), ackAll(ls[2]))
		require.NoError(t, err)
		require.Equal(t, 6, res.Acked)
		res, err = w.settle(t, ackAll(ls[1]), ackAll(ls[3]))
		require.NoError(t, err)
		require.Equal(t, 4, res.Acked)
		st := e.status(t)
		require.EqualValues(t, 10, st.Items.Succeeded)
		require.Zero(t, st.Items.Leased)
		require.Empty(t, st.StateLost)
	})
}

// The leases of one call together take no more than a fair share of what
// is left (left ÷ live workers), and a call without Leases makes one.
func TestSeveralLeasesKeepTheFairShare(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{BatchSize: 2})
		e.push(t, "a", "b", "c", "d", "e", "f", "g", "h")
		w1, w2 := e.worker(t, "w1"), e.worker(t, "w2")
		_, err := e.s.Heartbeat(context.Background(), e.job, w2.reg.UID, w2.wid, nil)
		require.NoError(t, err)
		one, err := w2.lease(t, 8)
		require.NoError(t, err)
		require.Len(t, one.Lease.Items, 2, "one lease, of the batch size")
		require.Empty(t, one.More)
		r := w1.leaseMany(t, 8, 4)
		got := 0
		for _, l := range all(r) {
			require.LessOrEqual(t, len(l.Items), 2)
			got += len(l.Items)
		}
		require.Equal(t, 3, got, "6 left over 2 live workers")
	})
}

// Further leases are runs of pending items (or next indexes) only, made
// while the lease before is full: a call whose first lease holds an item
// handed back makes that one only.
func TestFurtherLeasesComeOnlyFromPendingItems(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		w := e.tenItemsInBatchesOf3(t)
		l := w.mustLease(t, 3)
		_, err := w.settle(t, store.Settlement{Token: l.Token, All: true, AckCount: 2, Released: []int64{1}, Started: -1})
		require.NoError(t, err)
		r := w.leaseMany(t, 12, 4)
		require.Equal(t, []int64{1, 3, 4}, ids(r.Lease))
		require.Empty(t, r.More)
		r = w.leaseMany(t, 12, 4)
		ls := all(r)
		require.Len(t, ls, 2)
		require.Equal(t, []int64{5, 6, 7}, ids(ls[0]))
		require.Equal(t, []int64{8, 9}, ids(ls[1]))
	})
}

// An Indexed Job's further leases are runs of its next indexes.
func TestSeveralLeasesOfAnIndexedJob(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Completions: new(10), BatchSize: 4})
		w := e.worker(t, "w1")
		ls := all(w.leaseMany(t, 16, 4))
		require.Len(t, ls, 3)
		require.Equal(t, []int64{0, 1, 2, 3}, ids(ls[0]))
		require.Equal(t, []int64{4, 5, 6, 7}, ids(ls[1]))
		require.Equal(t, []int64{8, 9}, ids(ls[2]))
		var set []store.Settlement
		for _, l := range ls {
			set = append(set, ackAll(l))
		}
		res, err := w.settle(t, set...)
		require.NoError(t, err)
		require.Equal(t, 10, res.Acked)
		st := e.status(t)
		require.EqualValues(t, 10, st.Items.Succeeded)
		done, err := e.s.Completed(context.Background(), e.job)
		require.NoError(t, err)
		require.Equal(t, "0-9", done)
	})
}

// Each lease of a call expires on its own account: a worker that dies
// holding the leases of one call has charged an attempt only for the
// items it said had started, peers take every item over, and its late
// settles count nothing.
func TestTheLeasesOfADeadWorkersCallAreTakenOver(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{Lease: jobstate.Duration(time.Second), MaxAttempts: 1, BatchSize: 3})
		e.push(t, items(6)...)
		_, err := e.s.Seal(context.Background(), e.job, "")
		require.NoError(t, err)
		w := e.worker(t, "w1")
		ls := all(w.leaseMany(t, 6, 2))
		require.Len(t, ls, 2)
		// The second lease's first item started; the worker says so, then
		// dies.
		p := e.dieHolding(t, w, ls[1], 1)
		got := map[int64]int{}
		for {
			r, err := p.lease(t, 10)
			if errors.Is(err, store.ErrDrained) {
				break
			}
			require.NoError(t, err)
			require.NotNil(t, r.Lease, "a lease, not %+v", r)
			for _, it := range r.Lease.Items {
				got[it.ID] = it.Attempt
			}
			_, err = p.settle(t, ackAll(r.Lease))
			require.NoError(t, err)
		}
		require.Equal(t, map[int64]int{0: 1, 1: 1, 2: 1, 4: 1, 5: 1}, got, "every item not started runs again, its first attempt")
		res, err := w.settle(t, ackAll(ls[0]), ackAll(ls[1]))
		require.NoError(t, err)
		require.Zero(t, res.Acked)
		require.Equal(t, 6, res.Refused)
		st := e.status(t)
		require.EqualValues(t, 5, st.Items.Succeeded)
		require.EqualValues(t, 1, st.Items.Dead, "item 3 started and used its only attempt")
		require.EqualValues(t, 2, st.Items.Takeovers)
	})
}
