package jobstate_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

func TestEstimateETA(t *testing.T) {
	t.Parallel()
	items := func(total, succeeded, dead int64) jobstate.Items {
		return jobstate.Items{Total: total, Succeeded: succeeded, Dead: dead}
	}
	queue := func(sealed bool, rate float64, it jobstate.Items) jobstate.Status {
		return jobstate.Status{Kind: jobstate.KindWorkQueue, Phase: jobstate.PhaseRunning, Sealed: sealed, Throughput: rate, Items: it}
	}
	indexed := jobstate.Status{
		Kind: jobstate.KindIndexed, Phase: jobstate.PhaseRunning, Spec: jobstate.Spec{Completions: jobstate.Ptr(100)},
		Throughput: 4, Items: items(100, 20, 0),
	}
	with := func(s jobstate.Status, f func(*jobstate.Status)) jobstate.Status {
		f(&s)
		return s
	}
	cases := []struct {
		name string
		s    jobstate.Status
		d    time.Duration
		ok   bool
		text string
	}{
		{"SealedQueueLeftOverRate", queue(true, 2, items(1000, 800, 40)), 80 * time.Second, true, "1m20s"},
		{"DeadItemsAreNotLeft", queue(true, 1, items(10, 5, 5)), 0, true, "done"},
		{"FractionalSecondsRoundUp", queue(true, 3, items(10, 0, 0)), 3333333334 * time.Nanosecond, true, "4s"},
		{"UnsealedQueueIsUnknown", queue(false, 2, items(1000, 800, 0)), 0, false, "unknown"},
		{"UnsealedEmptyQueueIsUnknown", queue(false, 0, items(0, 0, 0)), 0, false, "unknown"},
		{"ZeroRateIsUnknown", queue(true, 0, items(1000, 800, 0)), 0, false, "unknown"},
		{"NegativeRateIsUnknown", queue(true, -1, items(1000, 800, 0)), 0, false, "unknown"},
		{"NaNRateIsUnknown", queue(true, math.NaN(), items(1000, 800, 0)), 0, false, "unknown"},
		{"InfiniteRateIsUnknown", queue(true, math.Inf(1), items(1000, 800, 0)), 0, false, "unknown"},
		{"NothingLeftIsDoneWithZeroRate", queue(true, 0, items(1000, 1000, 0)), 0, true, "done"},
		{"MoreSettledThanTotalIsDone", queue(true, 5, items(10, 9, 3)), 0, true, "done"},
		{"IndexedJobIsSealedWithoutTheFlag", indexed, 20 * time.Second, true, "20s"},
		{"IndexedKnownBySpecAlone", with(indexed, func(s *jobstate.Status) { s.Kind = "" }), 20 * time.Second, true, "20s"},
		{"IndexedZeroRateIsUnknown", with(indexed, func(s *jobstate.Status) { s.Throughput = 0 }), 0, false, "unknown"},
		{"CompleteIsDoneWhateverTheCounts", with(queue(false, 0, items(10, 3, 0)), func(s *jobstate.Status) { s.Phase = jobstate.PhaseComplete }), 0, true, "done"},
		{"FailedIsDone", with(queue(true, 3, items(10, 3, 7)), func(s *jobstate.Status) { s.Phase = jobstate.PhaseFailed }), 0, true, "done"},
		{"FailingIsUnknown", with(queue(true, 3, items(10, 3, 0)), func(s *jobstate.Status) { s.Phase = jobstate.PhaseFailing }), 0, false, "unknown"},
		{"SuspendedIsUnknown", with(queue(true, 3, items(10, 3, 0)), func(s *jobstate.Status) { s.Phase, s.Suspended = jobstate.PhaseSuspended, true }), 0, false, "unknown"},
		{"PendingSealedWithRateEstimates", with(queue(true, 1, items(30, 0, 0)), func(s *jobstate.Status) { s.Phase = jobstate.PhasePending }), 30 * time.Second, true, "30s"},
		{"HoursShowMinutes", queue(true, 1, items(11100, 0, 0)), 11100 * time.Second, true, "3h05m"},
		{"DaysShowHours", queue(true, 0.01, items(10000, 0, 0)), 1000000 * time.Second, true, "11d14h"},
		{"HugeCountTinyRateIsCapped", queue(true, 1e-9, items(math.MaxInt64, 0, 0)), jobstate.MaxETA, true, ">999d"},
		{"HugeCountGoodRate", queue(true, 1e13, items(math.MaxInt64, 0, 0)), 922337203685478, true, "10d17h"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d, ok := jobstate.EstimateETA(c.s)
			require.Equal(t, c.ok, ok)
			require.Equal(t, c.d, d)
			require.Equal(t, c.text, jobstate.FormatETA(d, ok))
		})
	}
}

func TestFormatETA(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	cases := []struct {
		d    time.Duration
		ok   bool
		want string
	}{
		{time.Minute, false, "unknown"},
		{0, false, "unknown"},
		{0, true, "done"},
		{-time.Second, true, "done"},
		{time.Nanosecond, true, "1s"},
		{time.Second, true, "1s"},
		{45 * time.Second, true, "45s"},
		{59*time.Second + time.Millisecond, true, "1m00s"},
		{80 * time.Second, true, "1m20s"},
		{10*time.Minute + 5*time.Second, true, "10m05s"},
		{59*time.Minute + 59*time.Second, true, "59m59s"},
		{59*time.Minute + 59*time.Second + time.Millisecond, true, "1h00m"},
		{time.Hour + time.Second, true, "1h01m"},
		{3*time.Hour + 5*time.Minute, true, "3h05m"},
		{47*time.Hour + 59*time.Minute, true, "47h59m"},
		{48 * time.Hour, true, "2d00h"},
		{4*day + 3*time.Hour, true, "4d03h"},
		{4*day + 3*time.Hour + time.Second, true, "4d04h"},
		{999 * day, true, "999d00h"},
		{999*day + time.Nanosecond, true, ">999d"},
		{jobstate.MaxETA, true, ">999d"},
		{time.Duration(math.MaxInt64), true, ">999d"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, jobstate.FormatETA(c.d, c.ok), "FormatETA(%v, %v)", c.d, c.ok)
	}
}
