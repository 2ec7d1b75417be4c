package queue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fastSizer is a sizer that has seen items of size bytes take per, with
// lease round trips of 200 µs.
func fastSizer(max int, batchFn bool, per time.Duration, size int) *sizer {
	s := &sizer{}
	s.init(8, max, batchFn)
	s.observe(per, 1)
	s.roundTrip(200*time.Microsecond, 1, size)
	return s
}

// Fast items are asked for several leases at a time, each of at most the
// batch size, and never more bytes a call than one lease may hold.
func TestTheSizerAsksForSeveralLeasesOfFastItems(t *testing.T) {
	n, per, ok, _ := fastSizer(100, false, time.Microsecond, 16).want(0, 8, time.Now())
	require.True(t, ok)
	require.Equal(t, 100, per)
	require.Equal(t, 800, n, "8 leases of 100")

	n, per, ok, _ = fastSizer(1000, false, time.Microsecond, 16).want(0, 8, time.Now())
	require.True(t, ok)
	require.Equal(t, 1000, per)
	require.Equal(t, 2000, n, "2 leases of 1000: 2000 items a call")

	n, per, ok, _ = fastSizer(5000, false, time.Microsecond, 16).want(0, 8, time.Now())
	require.True(t, ok)
	require.Equal(t, 5000, per)
	require.Equal(t, 5000, n, "one lease of a batch larger than a call's items")

	n, per, ok, _ = fastSizer(1000, false, time.Microsecond, 1<<20).want(0, 8, time.Now())
	require.True(t, ok)
	require.Equal(t, 8, per, "8 MiB a lease")
	require.Equal(t, 8, n, "8 MiB a call")

	n, per, ok, _ = fastSizer(100, true, time.Microsecond, 16).want(0, 8, time.Now())
	require.True(t, ok)
	require.Equal(t, 100, per)
	require.Equal(t, 100, n, "a batch handler runs a lease at a time")
}
