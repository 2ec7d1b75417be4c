//go:build faults

package faults_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// scenarioRetries is case 2 of Reliability II: the Redis client sends
// again a command whose reply was lost. Four workers reach Redis through a
// proxy that delays every reply 30 ms and, twice during the drain, drops
// every connection, with replies on their way: go-redis re-sends those
// commands (leases, settles, heartbeats) on a new connection. With
// --max-attempts 1 any lease leased twice, or any item charged for a
// re-sent call, would leave dead items that never ran; a re-sent settle
// would log a false "stale results refused". None of it may happen.
func scenarioRetries(t *testing.T) []row {
	e := newEnv(t)
	px := newProxy(t, e.srv.Addr)
	px.Delay(30 * time.Millisecond)
	const n, batch, workers = 4000, 40, 4
	file, items := writeItems(t, "r", n)
	const job = "retries"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "5s", "--max-attempts", "1", "-f", file, "--seal")
	e.serve("serve")
	cmd := []string{"--batch-exec", "--", "sh", "-c",
		`awk -v w="$WORKQ_WORKER_ID" -v f="$WORKQ_FENCE" '{ print $0, w, f }' >> "$OUT/out.$WORKQ_WORKER_ID.$$"; sleep 0.05`}
	start := time.Now()
	var ws []*testkit.Proc
	for i := range workers {
		ws = append(ws, e.worker(fmt.Sprintf("w%d", i), job, px.URL(), []string{"--concurrency", "2"}, cmd))
	}
	for _, frac := range []int64{3, 2} {
		testkit.Eventually(t, time.Minute, "the drain goes on", func() (bool, string) {
			s := e.status(job)
			return s.Items.Succeeded >= n/frac, fmt.Sprintf("%+v", s.Items)
		})
		px.DropReplying(30 * time.Second)
	}
	st := e.waitFinished(job, 2*time.Minute)
	for _, w := range ws {
		require.Equal(t, 0, w.Wait(t, 30*time.Second), "%s", w)
		require.False(t, outputHas(w, staleLog), "no false stale results: %s", w)
		require.False(t, outputHas(w, lostLog), "no lease was taken over: %s", w)
	}
	inc := incarnation{Job: job, UID: st.UID, Items: items, MaxAttempts: 1}
	v := inc.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	require.Zero(t, st.Items.FailedAttempts, "no attempt charged: %+v", st.Items)
	require.Zero(t, st.Items.Takeovers, "no lease orphaned by a re-sent command: %+v", st.Items)
	require.Zero(t, st.Failed, "no worker counted failed")
	require.Positive(t, px.LostReplies(), "replies were lost, so commands were sent again")
	r := e.account(job, items, 0)
	r.Scenario = "II.2. client retries: replies delayed 30 ms, every connection dropped twice mid-drain, `--max-attempts 1`"
	r.Faults = px.Cuts()
	r.TimeToComplete = time.Since(start)
	r.Note = fmt.Sprintf("%d workers through toxiproxy, batch %d, lease 5s; %d reply chunks were on their way when the connections dropped (their commands were sent again); 0 dead, 0 failed attempts, 0 takeovers, no \"stale\" or \"taken over\" log",
		workers, batch, px.LostReplies())
	return []row{r}
}
