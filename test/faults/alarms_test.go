//go:build faults

package faults_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// scenarioAlarms is case 7 of Reliability II. Fault-free runs (one worker,
// 20 items, lease 30s), 20 of them, must never warn that leases "expired
// and were taken over" nor count workq_worker_leases_lost_total: the
// workers heartbeat every 50 ms here (the default is a third of the lease,
// which a run this short would never reach), so heartbeats race settles
// and hand-backs all the time. And a worker whose Redis restarts without
// its data must exit 1 saying that the Job's state vanished.
func scenarioAlarms(t *testing.T) []row {
	return []row{calmRuns(t), vanished(t)}
}

func calmRuns(t *testing.T) row {
	e := newEnv(t)
	const runs, n, atOnce = 20, 20, 4
	start := time.Now()
	beats := 0
	for round := 0; round < runs; round += atOnce {
		type calm struct {
			job     string
			w       *testkit.Proc
			metrics string
			lost    float64
			scraped bool
			took    time.Duration
			err     error
		}
		cs := make([]*calm, atOnce)
		for i := range cs {
			c := &calm{job: fmt.Sprintf("calm-%02d", round+i), metrics: testkit.FreeAddr(t)}
			file, _ := writeItems(t, c.job, n)
			e.coord("create", c.job, "--lease", "30s", "-f", file)
			c.w = e.worker("w-"+c.job, c.job, "", []string{"--heartbeat", "50ms", "--concurrency", "4", "--metrics-listen", c.metrics}, itemCmd("sleep 0.2"))
			cs[i] = c
		}
		// Each run is watched at once; the metric is read while its worker
		// still runs (the Job is not sealed yet), once every item is done.
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() {
				began := time.Now()
				c.err = pollDrained(e, c.job, n, time.Minute)
				c.took = time.Since(began)
				if c.err == nil {
					c.lost, c.scraped = scrape(c.metrics, "workq_worker_leases_lost_total")
				}
			})
		}
		wg.Wait()
		for _, c := range cs {
			require.NoError(t, c.err, "%s", c.w)
			e.coord("seal", c.job)
		}
		for _, c := range cs {
			require.Equal(t, 0, c.w.Wait(t, time.Minute), "%s", c.w)
			require.True(t, c.scraped, "the worker's /metrics answered")
			require.Zero(t, c.lost, "workq_worker_leases_lost_total in a fault-free run: %s", c.w)
			require.False(t, outputHas(c.w, lostLog), "no false alarm: %s", c.w)
			require.False(t, outputHas(c.w, staleLog), "no false alarm: %s", c.w)
			s := e.status(c.job)
			require.Equal(t, jobstate.PhaseComplete, s.Phase)
			require.Zero(t, s.Items.Takeovers+s.Items.FailedAttempts, "%+v", s.Items)
			beats += int(c.took / (50 * time.Millisecond))
		}
	}
	twice := 0
	for _, k := range readRuns(t, e.out).ended() {
		if k > 1 {
			twice++
		}
	}
	require.Zero(t, twice, "with no fault, no item runs twice")
	return row{Scenario: fmt.Sprintf("II.7a. %d fault-free runs: one worker, %d items, lease 30s, heartbeat every 50 ms", runs, n),
		Items: runs * n, Succeeded: runs * n, Bound: 0, TimeToComplete: time.Since(start),
		Note: fmt.Sprintf("about %d heartbeats in all, racing settles; no \"leases expired and were taken over\" warning, `workq_worker_leases_lost_total` 0 and no takeover in any run", beats)}
}

// pollDrained waits until n items of job succeeded, asking every 20ms, and
// says why not after timeout. It reports to no test: it runs on a
// goroutine of its own.
func pollDrained(e *env, job string, n int64, timeout time.Duration) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for {
		s, err := e.tryStatus(job)
		if err == nil && s.Items.Succeeded == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d items not done within %s: %+v %v", job, n, timeout, s.Items, err)
		}
		<-tick.C
	}
}

func vanished(t *testing.T) row {
	e := newEnv(t)
	const job = "vanish"
	file, _ := writeItems(t, "z", 5)
	e.coord("create", job, "--lease", "3s", "-f", file, "--seal")
	e.hold("w")
	w := e.worker("w", job, "", nil, itemCmd(""))
	e.waitLog("the worker starts an item", 30*time.Second, func(r run) bool { return r.Worker == "w" }, w)
	require.NoError(t, e.srv.Restart())
	require.False(t, e.exists(job), "Redis restarted without its data")
	e.release("w")
	require.Equal(t, 1, w.Wait(t, time.Minute), "a worker whose Job vanished exits 1: %s", w)
	lines := strings.Split(strings.TrimSpace(w.Stderr()), "\n")
	last := lines[len(lines)-1]
	require.Contains(t, last, "vanished", "it says the Job's state vanished: %s", w)
	require.Contains(t, last, "lost in a Redis restart", "and names the restart among the causes: %s", w)
	return row{Scenario: "II.7b. Redis restarted without its data while a worker runs an item", Items: 5, Bound: -1, Faults: 1,
		Note: fmt.Sprintf("the worker exits 1: %q", last)}
}
