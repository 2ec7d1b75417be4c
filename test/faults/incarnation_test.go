//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// replaceMsg is what a worker says when its Job was replaced while it ran.
const replaceMsg = "job was replaced by a new job of the same name"

// scenarioReplaced is case 1 of Reliability II: a Job is deleted and
// created again under the same name while a worker of the old one is
// frozen with a finished item in hand (SIGSTOP), in four ways: `coordinator
// delete`, FLUSHALL, a Redis restart without data, and --ttl-after-finished
// removing a finished Job whose name a nightly Job reuses. The new Job's
// first worker gets the same lease token the frozen one holds (both are the
// first session's first lease), so a late ack checked by token alone would
// count the new Job's item. The frozen worker is let go while the new
// Job's item is held: its results must be refused, it must exit 1 saying
// the Job was replaced, and the new Job must count its own items only.
func scenarioReplaced(t *testing.T) []row {
	variants := []struct {
		name, label string
		ttl         bool
		replace     func(t *testing.T, e *env, job string)
	}{
		{"Deleted", "`coordinator delete`, then `create`", false, func(t *testing.T, e *env, job string) {
			e.coord("delete", job)
		}},
		{"Flushed", "FLUSHALL, then `create`", false, func(t *testing.T, e *env, job string) {
			_, err := call(func(ctx context.Context) (string, error) { return e.rdb.FlushAll(ctx).Result() })
			require.NoError(t, err)
		}},
		{"RedisRestartedEmpty", "Redis `kill -9`ed and restarted without persistence, then `create`", false, func(t *testing.T, e *env, job string) {
			require.NoError(t, e.srv.Restart())
			require.False(t, e.exists(job), "the restarted Redis is empty")
		}},
		{"ExpiredAfterFinishing", "the old Job finished (a peer took the frozen worker's item over) and `--ttl-after-finished 1s` removed it; a nightly Job reuses the name", true,
			func(t *testing.T, e *env, job string) {
				b0 := e.worker("B0", job, "", nil, itemCmd(""))
				require.Equal(t, 0, b0.Wait(t, time.Minute), "the old Job completes without the frozen worker: %s", b0)
				testkit.Eventually(t, 30*time.Second, "the finished Job expires", func() (bool, string) {
					return !e.exists(job), "still there"
				})
			}},
	}
	var rows []row
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			r := replacedRun(t, v.ttl, func(e *env, job string) { v.replace(t, e, job) })
			r.Scenario = fmt.Sprintf("II.1%c. Job replaced while its worker was frozen: %s", 'a'+i, v.label)
			rows = append(rows, r)
		})
	}
	return rows
}

func replacedRun(t *testing.T, ttl bool, replace func(e *env, job string)) row {
	e := newEnv(t)
	const job, n = "nightly", 3
	e.serve("serve")
	create := func(file string) string {
		args := []string{"create", job, "--lease", "2s", "-f", file, "--seal"}
		if ttl {
			args = append(args, "--ttl-after-finished", "1s")
		}
		e.coord(args...)
		return e.status(job).UID
	}
	oldFile, _ := writeItems(t, "old", n)
	oldUID := create(oldFile)

	// Worker A starts an item of the old Job and is frozen; the item ends
	// meanwhile, so A has a result to send when it wakes.
	e.hold("A")
	a := e.worker("A", job, "", nil, itemCmd(""))
	first := e.waitLog("A starts an old item", 30*time.Second, func(r run) bool { return r.Worker == "A" }, a)
	aTokens := e.leaseTokens(job)
	require.Len(t, aTokens, 1, "A holds one lease")
	a.Signal(t, syscall.SIGSTOP)
	e.release("A")
	e.waitLog("A's item ends while A is frozen", 30*time.Second, func(r run) bool { return r.Worker == "A" && r.Ended && r.Item == first.Item })

	replace(e, job)
	newFile, newItems := writeItems(t, "new", n)
	newUID := create(newFile)
	require.NotEqual(t, oldUID, newUID, "a new incarnation")

	// Worker B starts an item of the new Job and holds it.
	start := time.Now()
	e.hold("B")
	b := e.worker("B", job, "", nil, itemCmd(""))
	e.waitLog("B starts a new item", 30*time.Second, func(r run) bool { return r.Worker == "B" }, b)
	bTokens := e.leaseTokens(job)
	collided := slices.Contains(bTokens, aTokens[0])

	a.Signal(t, syscall.SIGCONT)
	require.Equal(t, 1, a.Wait(t, time.Minute), "the old worker exits 1: %s", a)
	lines := strings.Split(strings.TrimSpace(a.Stderr()), "\n")
	last := lines[len(lines)-1]
	require.Contains(t, last, replaceMsg, "A says why it stopped: %s", a)
	s := e.status(job)
	require.Equal(t, newUID, s.UID)
	require.Zero(t, s.Items.Succeeded, "nothing of the old worker counts in the new Job: %+v", s.Items)
	require.Zero(t, s.Items.FailedAttempts+s.Items.Takeovers+s.Items.Dead, "the old worker changed nothing: %+v", s.Items)
	require.Equal(t, int64(1), s.Items.Leased, "B's item is still held: %+v", s.Items)

	e.release("B")
	st := e.waitFinished(job, time.Minute)
	require.Equal(t, 0, b.Wait(t, 30*time.Second), "the new Job's worker exits 0: %s", b)
	inc := incarnation{Job: job, UID: newUID, Items: newItems, MaxAttempts: jobstate.DefaultMaxAttempts}
	v := inc.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations, "the new incarnation's invariants")
	require.Equal(t, jobstate.PhaseComplete, st.Phase)

	collision := "no"
	if collided {
		collision = "yes"
	}
	return row{Items: n, Succeeded: st.Items.Succeeded, ExecutedTwice: int64(v.ExecutedTwice), Bound: 0, Faults: 1,
		TimeToComplete: time.Since(start),
		Note: fmt.Sprintf("the frozen worker's lease token %s, reissued to the new Job's worker: %s; the new Job counted 0 while its item was held; the old worker exit 1: %q",
			aTokens[0], collision, last)}
}

// leaseTokens lists the lease tokens a Job's workers hold.
func (e *env) leaseTokens(job string) []string {
	e.t.Helper()
	ts, err := call(func(ctx context.Context) ([]string, error) {
		return e.rdb.HKeys(ctx, store.KeysFor(job).Key("batches")).Result()
	})
	require.NoError(e.t, err)
	return ts
}
