package queue

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
)

// pendingOf is a lease's part of a settle with n failures listed.
func pendingOf(token string, failures int) pending {
	return pending{s: store.Settlement{Token: token, All: true, Failed: make([]store.Failure, failures)}}
}

// Leases that finish together are settled in calls of bounded work: many
// light ones in one call, heavy ones in calls of their own.
func TestSettlesAreCutByTheirWork(t *testing.T) {
	tokens := func(calls [][]pending) [][]string {
		var out [][]string
		for _, c := range calls {
			var ts []string
			for _, p := range c {
				ts = append(ts, p.s.Token)
			}
			out = append(out, ts)
		}
		return out
	}
	var light []pending
	for i := range 300 {
		light = append(light, pendingOf(string(rune('a'+i%26)), 0))
	}
	calls := splitSettle(light)
	require.Len(t, calls, 3, "300 leases all acked: 128, 128 and 44")
	require.Len(t, calls[0], settleWeight)

	calls = splitSettle([]pending{pendingOf("a", 90), pendingOf("b", 20), pendingOf("c", 90), pendingOf("d", 0), pendingOf("e", 1000), pendingOf("f", 0)})
	require.Equal(t, [][]string{{"a", "b"}, {"c", "d"}, {"e"}, {"f"}}, tokens(calls))
	require.Empty(t, splitSettle(nil))
}
