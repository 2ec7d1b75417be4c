package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

func TestLeaseAndAckABatch(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e *env) {
		e.create(t, jobstate.Spec{})
		e.push(t, "a", "b", "c")
		w := e.worker(t, "w1")
		l := w.mustLease(t, 10)
		require.Len(t, l.Items, 3)
		for i, it := range l.Items {
			require.EqualValues(t, i, it.ID)
			require.Equal(t, 1, it.Attempt)
		}
		require.Equal(t, "a", string(l.Items[0].Payload))
		require.Equal(t, "c", string(l.Items[2].Payload))
		st := e.status(t)
		require.EqualValues(t, 3, st.Items.Leased)
		r, err := w.settle(t, ackAll(l))
		require.NoError(t, err)
		require.Equal(t, 3, r.Acked)
		st = e.status(t)
		require.EqualValues(t, 3, st.Items.Succeeded)
		require.EqualValues(t, 0, st.Items.Leased)
		require.Empty(t, st.StateLost)
		_, err = e.s.Seal(t.Context(), e.job, "")
		require.NoError(t, err)
		_, err = w.lease(t, 10)
		require.ErrorIs(t, err, store.ErrDrained)
	})
}
