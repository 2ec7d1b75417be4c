//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// scenarioEviction is case 4 of Reliability II. A Redis whose
// maxmemory-policy may evict keys is refused by create, push and the
// worker, with a message that names noeviction, and nothing changes in
// it. A Job whose keys go anyway behind workq's back (its pending list, or
// its state hash, deleted as an eviction would) fails with reason
// StateLost and is never Complete. The push into a Redis at maxmemory with
// noeviction is scenario 6.
func scenarioEviction(t *testing.T) []row {
	var rows []row
	t.Run("EvictingRedisIsRefused", func(t *testing.T) { rows = append(rows, evictingRefused(t)) })
	for _, key := range []string{"pending", "state"} {
		t.Run("LostKey/"+key, func(t *testing.T) { rows = append(rows, lostKey(t, key)) })
	}
	return rows
}

func evictingRefused(t *testing.T) row {
	e := newEnv(t, "--maxmemory", "100mb", "--maxmemory-policy", "noeviction")
	const job = "evict"
	file, items := writeItems(t, "v", 100)
	e.coord("create", job, "-f", file, "--seal")
	_, err := call(func(ctx context.Context) (string, error) {
		return e.rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Result()
	})
	require.NoError(t, err)
	before := testkit.Snapshot(t, e.rdb, "*")

	var said []string
	var msg string
	refused := func(what string, r testkit.Result) {
		t.Helper()
		require.Equal(t, 1, r.Code, "%s is refused: %s", what, r)
		line := strings.TrimSpace(r.Stderr)
		line = line[strings.LastIndex(line, "\n")+1:]
		require.Contains(t, line, "maxmemory-policy is allkeys-lru", "%s says what is wrong: %s", what, r)
		require.Contains(t, line, "maxmemory-policy noeviction", "%s names the fix: %s", what, r)
		said = append(said, what)
		if len(said) == 1 {
			msg = line
		}
	}
	refused("create", e.runCoord(time.Minute, "create", "other"))
	refused("push", e.runCoord(time.Minute, "push", job, "one-more"))
	w := e.worker("w", job, "", []string{"--wait", "20s"}, itemCmd(""))
	w.Wait(t, time.Minute)
	refused("worker", w.Result())
	require.Equal(t, before, testkit.Snapshot(t, e.rdb, "*"), "nothing in Redis changed")
	require.Empty(t, readRuns(t, e.out).runs, "no item ran")
	return row{Scenario: "II.4a. Redis with `maxmemory-policy allkeys-lru`: create, push and worker refused", Items: int64(len(items)),
		Bound: -1, Faults: 1, Note: fmt.Sprintf("%s: each exits 1 and says why and what to do; create's: %q; every key of Redis unchanged, no item ran", strings.Join(said, ", "), msg)}
}

// lostKey deletes one key of a running Job, as an eviction would.
func lostKey(t *testing.T, key string) row {
	e := newEnv(t)
	const n, batch = 2000, 20
	const job = "lost"
	file, _ := writeItems(t, "l", n)
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "3s", "-f", file, "--seal")
	e.serve("serve")
	cmd := []string{"--batch-exec", "--", "sh", "-c",
		`awk -v w="$WORKQ_WORKER_ID" -v f="$WORKQ_FENCE" '{ print $0, w, f }' >> "$OUT/out.$WORKQ_WORKER_ID.$$"; sleep 0.02`}
	start := time.Now()
	w1 := e.worker("w1", job, "", nil, cmd)
	w2 := e.worker("w2", job, "", nil, cmd)
	testkit.Eventually(t, time.Minute, "a quarter drained", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded >= n/4, fmt.Sprintf("%+v", s.Items)
	})
	k := store.KeysFor(job).Key(key)
	gone, err := call(func(ctx context.Context) (int64, error) { return e.rdb.Del(ctx, k).Result() })
	require.NoError(t, err)
	require.Equal(t, int64(1), gone, "%s was there to lose", k)

	st := e.waitFinished(job, time.Minute)
	require.Equal(t, jobstate.PhaseFailed, st.Phase, "a Job that lost state fails, never Complete: %+v", st)
	require.Equal(t, jobstate.ReasonStateLost, failedReason(st), "%+v", st.Conditions)
	require.NotEmpty(t, st.StateLost, "status says what was lost")
	for _, w := range []*testkit.Proc{w1, w2} {
		require.Equal(t, 1, w.Wait(t, 30*time.Second), "a worker of a Job that lost its state exits 1: %s", w)
	}
	last := strings.TrimSpace(w1.Stderr())
	last = last[strings.LastIndex(last, "\n")+1:]
	require.Contains(t, last, jobstate.ReasonStateLost, "%s", w1)
	ran := readRuns(t, e.out).ended()
	require.LessOrEqual(t, st.Items.Succeeded, int64(len(ran)), "nothing counted that did not run")
	return row{Scenario: fmt.Sprintf("II.4%c. the Job's `%s` key deleted behind workq's back mid-drain (as an eviction would)", map[string]rune{"pending": 'b', "state": 'c'}[key], key),
		Items: n, Succeeded: st.Items.Succeeded, Lost: n - st.Items.Succeeded - st.Items.Dead, Bound: -1, Faults: 1, TimeToComplete: time.Since(start),
		Note: fmt.Sprintf("Failed, reason StateLost (%q), never Complete; both workers exit 1: %q", st.StateLost, last)}
}
