package jobstate_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/pkg/jobstate"
)

func TestIntervals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		bitmap []byte
		n      int
		want   string
	}{
		{"Empty", nil, 0, ""},
		{"NoBitsSet", []byte{0, 0}, 16, ""},
		{"NothingBelowN", []byte{0xFF}, 0, ""},
		{"BitZeroIsTheMostSignificantBit", []byte{0x80}, 8, "0"},
		{"BitSevenIsTheLeastSignificantBit", []byte{0x01}, 8, "7"},
		{"RangeAndSingle", []byte{0xF4}, 8, "0-3,5"}, // 1111 0100
		{"AllSet", []byte{0xFF, 0xFF}, 16, "0-15"},
		{"RangeAcrossBytes", []byte{0x01, 0x80}, 16, "7-8"},
		{"LimitedToN", []byte{0xFF}, 3, "0-2"},
		{"RangeEndsAtN", []byte{0x3F}, 5, "2-4"},
		{"NBeyondTheBitmapIsUnset", []byte{0x01}, 100, "7"},
		{"SecondByteOnly", []byte{0x00, 0x41}, 16, "9,15"},
		{"Alternating", []byte{0xAA}, 8, "0,2,4,6"},
		{"TwoRanges", []byte{0xC3}, 8, "0-1,6-7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, jobstate.Intervals(tc.bitmap, tc.n))
		})
	}
}

func TestIndexList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		idx  []int
		want string
	}{
		{"Nil", nil, ""},
		{"Empty", []int{}, ""},
		{"Zero", []int{0}, "0"},
		{"Single", []int{5}, "5"},
		{"RangeAndSingle", []int{0, 1, 2, 3, 5}, "0-3,5"},
		{"Singles", []int{0, 2, 4}, "0,2,4"},
		{"AcrossBytes", []int{6, 7, 8, 9, 10}, "6-10"},
		{"Large", []int{1000, 1001, 5000}, "1000-1001,5000"},
		{"NegativesAreIgnored", []int{-1, 2, 3}, "2-3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, jobstate.IndexList(tc.idx))
		})
	}

	t.Run("ParsesBackToTheSameIndexes", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(3, 4))
		for range 300 {
			var idx []int
			for i := range rng.IntN(200) {
				if rng.IntN(3) > 0 {
					idx = append(idx, i)
				}
			}
			s := jobstate.IndexList(idx)
			require.Equal(t, idx, parseIntervals(t, s), "%q", s)
			if len(idx) > 0 {
				require.NotContains(t, s, ",,")
				require.False(t, strings.HasSuffix(s, ","))
			}
		}
	})
}

// parseIntervals is an independent reader of "0-3,5".
func parseIntervals(t *testing.T, s string) []int {
	t.Helper()
	if s == "" {
		return nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		require.NoError(t, err)
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			require.NoError(t, err)
			require.Greater(t, b, a, "a range has two distinct ends: %q", part)
		}
		if len(out) > 0 {
			require.Greater(t, a, out[len(out)-1]+1, "adjacent intervals are merged: %q", s)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	require.True(t, slices.IsSorted(out))
	return out
}

func TestShiftAndJoinIntervals(t *testing.T) {
	t.Parallel()
	require.Equal(t, "3-5,8", jobstate.ShiftIntervals("0-2,5", 3))
	require.Equal(t, "10,12-13,...", jobstate.ShiftIntervals("0,2-3,...", 10))
	require.Equal(t, "0-2,5", jobstate.ShiftIntervals("0-2,5", 0))
	require.Empty(t, jobstate.ShiftIntervals("", 7))

	require.Equal(t, "0-5,7", jobstate.JoinIntervals("0-2", "3-5,7"))
	require.Equal(t, "0-1,3,5-9", jobstate.JoinIntervals("0-1,3", "", "5", "6-9"))
	require.Equal(t, "4", jobstate.JoinIntervals("", "4", ""))
	require.Empty(t, jobstate.JoinIntervals())
	require.Equal(t, "0-2,...", jobstate.JoinIntervals("0-1", "2,...", "9"), "a cut list ends the result")

	t.Run("AgreesWithIndexListOverRandomBlocks", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(5, 6))
		for range 300 {
			var all []int
			var lists []string
			base := 0
			for range 1 + rng.IntN(6) {
				size := 1 + rng.IntN(20)
				var local []int
				for i := range size {
					if rng.IntN(3) > 0 {
						local = append(local, i)
						all = append(all, base+i)
					}
				}
				lists = append(lists, jobstate.ShiftIntervals(jobstate.IndexList(local), base))
				base += size
			}
			require.Equal(t, jobstate.IndexList(all), jobstate.JoinIntervals(lists...), "blocks %v", lists)
		}
	})
}
