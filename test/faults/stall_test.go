//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// scenarioPause is case 3 of Reliability II: Redis itself stalls (CLIENT
// PAUSE 8000, as a slow fork or a failover would) for longer than twice
// the lease (3s) while four workers drain 20,000 items with
// --max-attempts 1. Every worker is healthy and its heartbeats wait behind
// the pause like every other command: nothing may be charged, nothing may
// die, no worker may be counted failed.
func scenarioPause(t *testing.T) []row {
	e := newEnv(t)
	const n, batch, workers = 20_000, 50, 4
	const pause = 8 * time.Second
	file, items := writeItems(t, "p", n)
	const job = "paused"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "3s", "--max-attempts", "1", "-f", file, "--seal")
	e.serve("serve")
	cmd := []string{"--batch-exec", "--", "sh", "-c",
		`awk -v w="$WORKQ_WORKER_ID" -v f="$WORKQ_FENCE" '{ print $0, w, f }' >> "$OUT/out.$WORKQ_WORKER_ID.$$"; sleep 0.1`}
	start := time.Now()
	var ws []*testkit.Proc
	for i := range workers {
		ws = append(ws, e.worker(fmt.Sprintf("w%d", i), job, "", []string{"--concurrency", "2"}, cmd))
	}
	testkit.Eventually(t, time.Minute, "a quarter drained", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded >= n/4, fmt.Sprintf("%+v", s.Items)
	})
	before := e.status(job)
	require.Positive(t, before.Items.Leased, "workers hold leases when Redis pauses")
	_, err := call(func(ctx context.Context) (bool, error) { return e.rdb.ClientPause(ctx, pause).Result() })
	require.NoError(t, err)
	st := e.waitFinished(job, 2*time.Minute)
	for _, w := range ws {
		require.Equal(t, 0, w.Wait(t, 30*time.Second), "%s", w)
		require.False(t, outputHas(w, lostLog), "no lease was taken over: %s", w)
		require.False(t, outputHas(w, staleLog), "no result was refused: %s", w)
	}
	inc := incarnation{Job: job, UID: st.UID, Items: items, MaxAttempts: 1}
	v := inc.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	require.Zero(t, st.Items.FailedAttempts, "the pause cost no attempt: %+v", st.Items)
	require.Zero(t, st.Items.Dead, "nothing died")
	require.Zero(t, st.Items.Takeovers, "no lease was taken over: %+v", st.Items)
	require.Zero(t, st.Failed, "no worker was counted failed")
	stalls, err := call(func(ctx context.Context) ([]any, error) {
		return e.rdb.HMGet(ctx, store.KeysFor(job).Key("state"), "stalls", "stallms").Result()
	})
	require.NoError(t, err)
	r := e.account(job, items, 0)
	r.Scenario = "II.3. Redis paused (`CLIENT PAUSE 8000`) mid-drain, lease 3s, `--max-attempts 1`"
	r.Faults = 1
	r.TimeToComplete = time.Since(start)
	r.Note = fmt.Sprintf("%d workers, batch %d, %d items leased when Redis paused; stalls the scripts noticed and the lease time they gave back: %v, %v ms; 0 failed attempts, 0 dead, 0 takeovers, 0 workers failed",
		workers, batch, before.Items.Leased, stalls[0], stalls[1])
	return []row{r}
}
