//go:build faults

package faults_test

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
)

// scenarioClocks shows that the clocks of the workers do not matter: only
// the server's does (the scripts call TIME). faketime cannot skew the
// workers (Go reads the clock through the vDSO, not libc) nor redis-server
// (libfaketime recurses into jemalloc and redis-server does not start), so
// the skew is made the other way round: the server's clock runs an hour
// ahead of, then an hour behind, the clock of every worker process. A
// miniredis in this test serves the real binaries over TCP, its TIME set
// to the host's time plus the offset every 2ms. Leases expire and are
// taken over, failed items come back after their backoff, and the Job
// completes in seconds, as with no skew.
func scenarioClocks(t *testing.T) []row {
	var rows []row
	for _, off := range []time.Duration{time.Hour, -time.Hour} {
		rows = append(rows, clockRun(t, off))
	}
	return rows
}

func clockRun(t *testing.T, off time.Duration) row {
	m := miniredis.NewMiniRedis()
	require.NoError(t, m.StartAddr("127.0.0.1:0"))
	t.Cleanup(m.Close)
	testkit.Repeat(t, 2*time.Millisecond, func() { m.SetTime(time.Now().Add(off)) })
	e := newEnvOn(t, "redis://"+m.Addr()+"/0", nil)
	srvNow, err := call(e.s.Now)
	require.NoError(t, err)
	require.InDelta(t, off.Seconds(), srvNow.Sub(time.Now()).Seconds(), 5, "the server's clock is off by %s", off)

	const n, batch, failing = 600, 10, 60
	file, items := writeItems(t, "c", n)
	job := "clock"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "1s", "--retry-backoff", "300ms",
		"--max-attempts", "3", "--backoff-limit", "100")
	e.coord("push", job, "-f", file, "--seal")
	e.serve("serve")
	// Per item: record it, and fail the first attempt of every tenth.
	cmd := append([]string{"--concurrency", "4"},
		itemCmd(`[ "$WORKQ_ATTEMPT" -gt 1 ] || [ $((WORKQ_ITEM_ID % 10)) -ne 0 ] || exit 1`)...)
	start := time.Now()
	w1 := e.worker("worker-1", job, "", nil, cmd)
	w2 := e.worker("worker-2", job, "", nil, cmd)
	testkit.Eventually(t, time.Minute, "progress", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded >= n/4, fmt.Sprintf("%+v", s.Items)
	})
	// What the killed worker held may run twice: items it ran and had not
	// settled, and the ones running. It is frozen first, so that what it
	// holds in Redis then bounds that. A worker whose round trip is
	// longer than an item (as on a loaded machine) holds several leases
	// of up to the batch size, not one or two.
	w1.Signal(t, syscall.SIGSTOP)
	held := e.heldBy(job, "worker-1")
	w1.Kill()
	killedAt := time.Now()
	testkit.Eventually(t, 30*time.Second, "the killed worker's leases are taken over", func() (bool, string) {
		s := e.status(job)
		return s.Items.Takeovers > 0, fmt.Sprintf("%+v", s.Items)
	})
	takeover := time.Since(killedAt)
	require.Less(t, takeover, 5*time.Second, "leases expire after the 1s lease, not an hour off")
	w3 := e.worker("worker-3", job, "", nil, cmd)
	done := e.waitComplete(job, time.Minute)
	require.Equal(t, 0, w2.Wait(t, 30*time.Second), w2)
	require.Equal(t, 0, w3.Wait(t, 30*time.Second), w3)
	s := e.status(job)
	require.GreaterOrEqual(t, s.Items.FailedAttempts, int64(failing), "every tenth item failed once and came back after its backoff")
	// The failed first runs of every tenth item did not end with exit 0
	// and are not counted as runs here.
	r := e.account(job, items, held)
	r.Scenario = fmt.Sprintf("7. server clock %+.0fh from every worker's (miniredis serving the real binaries)", off.Hours())
	r.Faults = 1
	r.TimeToComplete = done.Sub(start)
	r.Note = fmt.Sprintf("lease 1s: a killed worker's leases taken over %.1fs after the kill (it held %d items when it was killed); %d failed attempts (every tenth item's first, retried after a 300ms backoff, and the killed worker's reclaimed items); every tenth item's first run exited 1 by design, so %d items ran at least twice, the first time failing",
		takeover.Seconds(), held, s.Items.FailedAttempts, failing)
	return r
}
