//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// scenarioRollback: Redis comes back with an older state than the workers
// saw, as after a restart from an RDB snapshot, a failover to a replica
// that had not received the last writes, or a crash with appendfsync
// everysec (up to a second or two back). It is made deterministic with
// RDB: SAVE, work on, kill -9, restart from the snapshot. Work after the
// snapshot may be lost and run again, but nothing may be counted for an
// item that did not run.
//
// Worker A registers and leases after the snapshot, so both are lost; A
// keeps running its item. After the restart, worker B registers and
// leases three items, which it holds; then A's item ends and A settles its
// lease. That settle must be refused (A's lease is gone), and succeeded
// must never exceed the items that ran to their end.
func scenarioRollback(t *testing.T) []row {
	e := newEnv(t)
	const job, n = "rolled", 10
	file, items := writeItems(t, "b", n)
	e.coord("create", job, "--lease", "5s", "-f", file, "--seal")
	_, err := call(func(ctx context.Context) (string, error) { return e.rdb.Save(ctx).Result() })
	require.NoError(t, err, "the snapshot: the Job, nothing leased, no worker")

	e.hold("A")
	a := e.worker("A", job, "", nil, itemCmd(""))
	first := e.waitLog("A starts an item", 30*time.Second, func(r run) bool { return r.Worker == "A" }, a)
	aTokens := e.leaseTokens(job)
	require.Len(t, aTokens, 1)
	// Once Redis knows A's item started, A has nothing to tell it until
	// the item ends.
	testkit.Eventually(t, 30*time.Second, "Redis knows A's item started", func() (bool, string) {
		v, err := call(func(ctx context.Context) (string, error) {
			return e.rdb.HGet(ctx, store.KeysFor(job).Key("bstart"), aTokens[0]).Result()
		})
		n, _, _ := strings.Cut(v, ":") // "started:since-ms"
		return err == nil && n == "1", fmt.Sprint(v, err)
	})
	require.NoError(t, e.srv.Restart(), "kill -9, and back from the snapshot")
	require.Empty(t, e.leaseTokens(job), "the restarted Redis has the snapshot's state: nothing leased")

	e.hold("B")
	b := e.worker("B", job, "", []string{"--concurrency", "3"}, itemCmd(""))
	testkit.Eventually(t, 30*time.Second, "B starts three items", func() (bool, string) {
		n := 0
		for _, r := range readRuns(t, e.out).runs {
			if r.Worker == "B" {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d\n%s", n, b)
	})
	bTokens := e.leaseTokens(job)

	e.release("A")
	e.waitLog("A's item ends", 30*time.Second, func(r run) bool { return r.Worker == "A" && r.Ended && r.Item == first.Item }, a)
	var s jobstate.Status
	testkit.Eventually(t, 30*time.Second, "A's result reaches Redis", func() (bool, string) {
		s = e.status(job)
		return s.Items.Succeeded > 0 || outputHas(a, staleLog) || outputHas(a, lostLog), fmt.Sprintf("%+v\n%s", s.Items, a)
	})
	// An item's "E" line is written before its worker acks it: at any
	// moment, succeeded <= the items that ran to their end.
	ended := readRuns(t, e.out).ended()
	require.LessOrEqual(t, s.Items.Succeeded, int64(len(ended)),
		"succeeded counts only items that ran: A's settle of its lost lease %v must not count B's lease %v", aTokens, bTokens)

	e.release("B")
	st := e.waitFinished(job, time.Minute)
	require.Equal(t, 0, b.Wait(t, time.Minute), "%s", b)
	require.Equal(t, 0, a.Wait(t, time.Minute), "%s", a)
	inc := incarnation{Job: job, UID: st.UID, Items: items, MaxAttempts: jobstate.DefaultMaxAttempts}
	v := inc.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	return []row{{Scenario: "II.R. Redis back with an older state: restarted from an RDB snapshot taken before a worker registered and leased",
		Items: n, Succeeded: st.Items.Succeeded, ExecutedTwice: int64(v.ExecutedTwice), Bound: -1, Faults: 1,
		Note: fmt.Sprintf("A's lease %v was lost with the rollback, B's after it: %v; A's late settle refused", aTokens, bTokens)}}
}
