//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// blockCmd is itemCmd whose item, once the file block.<worker> exists,
// writes its pid to blocked.<item> and sleeps instead of ending.
var blockCmd = itemCmd(`if [ -e "$OUT/block.$WORKQ_WORKER_ID" ]; then echo $$ > "$OUT/blocked.$1"; exec sleep 1000; fi`)

// scenarioStarted is case 5 of Reliability II: --max-attempts 1, and a
// worker is killed with kill -9 while one item of a lease runs and other
// items of its leases wait their turn. Worker A reaches Redis through a
// proxy that delays replies 100 ms, so its items (a few ms each) are fast
// next to a round trip and it leases ahead in batches of up to 10. Once it
// has run some, its next item blocks; once Redis knows that this item
// started and A holds more items than that one, A is killed. Only the
// blocked item may be charged (and be dead, its one attempt used); every
// other item must run, on its first attempt.
func scenarioStarted(t *testing.T) []row {
	e := newEnv(t)
	px := newProxy(t, e.srv.Addr)
	px.Delay(100 * time.Millisecond)
	const n, batch = 60, 10
	file, items := writeItems(t, "s", n)
	const job = "started"
	e.coord("create", job, "--batch-size", strconv.Itoa(batch), "--lease", "3s", "--max-attempts", "1", "-f", file, "--seal")
	e.serve("serve")
	start := time.Now()
	a := e.worker("A", job, px.URL(), nil, blockCmd)
	testkit.Eventually(t, time.Minute, "A runs items", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded >= 5, fmt.Sprintf("%+v", s.Items)
	})
	require.NoError(t, os.WriteFile(filepath.Join(e.out, "block.A"), nil, 0o644))
	var blocked string
	testkit.Eventually(t, time.Minute, "an item of A blocks", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(e.out, "blocked.*"))
		if len(m) != 1 {
			return false, fmt.Sprint(m)
		}
		blocked = strings.TrimPrefix(filepath.Base(m[0]), "blocked.")
		return true, ""
	})
	// The blocked item outlives A (it has a process group of its own); it
	// is killed once, by its pid, when A is, or when the test ends.
	pid := readPid(t, filepath.Join(e.out, "blocked."+blocked))
	killBlocked := sync.OnceValue(func() error { return syscall.Kill(pid, syscall.SIGKILL) })
	t.Cleanup(func() { _ = killBlocked() })

	// Redis knows that the blocked item, and nothing else, started: the
	// only lease with a start count is the blocked item's, which is the
	// first item left in it (its settled items are gone from its record).
	// And A holds more items. Redis learns this a round trip (100 ms)
	// after A does.
	keys := store.KeysFor(job)
	var held int64
	testkit.Eventually(t, time.Minute, "Redis knows that only A's blocked item started, and A holds more", func() (bool, string) {
		bstart, err := call(func(ctx context.Context) (map[string]string, error) {
			return e.rdb.HGetAll(ctx, keys.Key("bstart")).Result()
		})
		require.NoError(t, err)
		batches, err := call(func(ctx context.Context) (map[string]string, error) {
			return e.rdb.HGetAll(ctx, keys.Key("batches")).Result()
		})
		require.NoError(t, err)
		held = e.status(job).Items.Leased
		detail := fmt.Sprintf("started per lease %v, leases %q, %d items leased", bstart, batches, held)
		if len(bstart) != 1 || held < 2 {
			return false, detail
		}
		for tok, v := range bstart {
			rec := batches[tok]
			_, payloads, _ := strings.Cut(rec, "\n")
			// bstart holds "started:since-ms".
			if n, _, _ := strings.Cut(v, ":"); n != "1" || !strings.HasPrefix(payloads, blocked) {
				return false, detail
			}
		}
		return true, ""
	})
	a.Kill()
	require.NoError(t, killBlocked())

	b := e.worker("B", job, "", []string{"--concurrency", "2"}, blockCmd)
	st := e.waitFinished(job, time.Minute)
	require.Equal(t, 1, b.Wait(t, 30*time.Second), "the Job failed (a dead item): %s", b)
	log := readRuns(t, e.out)
	inc := incarnation{Job: job, UID: st.UID, Items: items, MaxAttempts: 1, FailReasons: []string{jobstate.ReasonFailedItems}}
	v := inc.check(st, e.dead(job), log)
	require.Empty(t, v.Violations)
	require.Equal(t, map[string]int{blocked: 1}, e.dead(job), "only the item that started is charged, and dead")
	require.Equal(t, int64(1), st.Items.FailedAttempts, "one attempt charged: %+v", st.Items)
	require.Equal(t, jobstate.PhaseFailed, st.Phase)
	require.Equal(t, jobstate.ReasonFailedItems, failedReason(st))
	onB := 0
	for _, it := range items {
		if it == blocked {
			continue
		}
		runs := log.of(it)
		require.NotEmpty(t, runs, "%s ran", it)
		for _, r := range runs {
			require.Equal(t, 1, r.Attempt, "%s ran on its first attempt only: %+v", it, runs)
		}
		if runs[0].Worker == "B" {
			onB++
		}
	}
	return []row{{Scenario: "II.5. `--max-attempts 1`, a worker `kill -9`ed while one item of its leases runs and others wait",
		Items: n, Succeeded: st.Items.Succeeded, Dead: st.Items.Dead, ExecutedTwice: int64(v.ExecutedTwice), Bound: -1, Faults: 1,
		TimeToComplete: time.Since(start),
		Note: fmt.Sprintf("A held %d items (leases of up to %d, replies delayed 100 ms) when killed, 1 of them started: only that one was charged (dead, 1 attempt); the %d others it held ran on B on their first attempt (%d items in all ran first on B); the Job ends Failed (FailedItems), as it must with a dead item",
			held, batch, held-1, onB)}}
}

// readPid reads a pid that a shell wrote to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, 10*time.Second, "a pid in "+path, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, fmt.Sprintf("%q", b)
	})
	return pid
}
