package queue

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
)

// A leaser that waits for the executors to claim what is queued (the
// sizer says not now) waits for room. When the heartbeat hands the queued
// items back to an idle peer instead, the executors have nothing left to
// claim and never make room: the hand-back itself must, or the leaser
// waits for nothing while the worker holds nothing. (A lone worker hung
// so, in the e2e CLI test, once in a few runs on a loaded machine.)
func TestHandingBackWakesTheLeaser(t *testing.T) {
	w := &Worker{held: map[string]*batch{}, room: make(chan struct{}, 1), ready: make(chan *batch, 1)}
	w.claim = sync.NewCond(&w.mu)
	w.sizer.init(1, 10, false)
	w.sizer.observe(50*time.Millisecond, 1)    // items of 50 ms
	w.sizer.roundTrip(time.Millisecond, 1, 16) // a round trip of 1 ms
	w.enqueue(&batch{token: "s.1", raw: make([]store.Item, 1), index: -1})

	_, _, ok, at := w.sizer.want(w.queued, 1, time.Now())
	require.False(t, ok, "an item waits to be claimed: the leaser waits")
	require.True(t, at.IsZero(), "for room, with no timer")
	select {
	case <-w.room: // what made the leaser look before
	default:
	}

	require.Equal(t, 1, w.handBack())
	select {
	case <-w.room:
	default:
		t.Fatal("the hand-back left the leaser waiting for room")
	}
	_, _, ok, _ = w.sizer.want(w.queued, 1, time.Now())
	require.True(t, ok, "with nothing queued, the leaser asks for more")
	require.Len(t, w.ready, 1, "the lease handed back goes to the acker")
}
