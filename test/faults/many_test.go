//go:build faults

package faults_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// maxWorkerRSS is the bound on any worker's peak resident memory.
const maxWorkerRSS = 100 << 20

// procMem reads VmRSS and VmHWM (bytes) of a live process.
func procMem(pid int) (rss, hwm int64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, hwm > 0
}

// scenarioManyJobs: 100 Jobs of 10,000 items at once, one worker process
// each, one controller; every Job completes and no worker's memory grows.
func scenarioManyJobs(t *testing.T) []row {
	e := newEnv(t)
	const jobs, per, batch = 100, 10_000, 1000
	names := make([]string, jobs)
	items := map[string][]string{}
	loadStart := time.Now()
	for i := range names {
		names[i] = fmt.Sprintf("many-%03d", i)
		file, its := writeItems(t, fmt.Sprintf("j%03d", i), per)
		items[names[i]] = its
		e.coord("create", names[i], "--batch-size", strconv.Itoa(batch), "--lease", "30s", "-f", file, "--seal")
	}
	t.Logf("created and loaded %d Jobs in %s", jobs, time.Since(loadStart).Round(time.Millisecond))
	// One controller for all; its default interval, as in production.
	srv := e.startCoord("serve", e.url, "serve", "--listen", "127.0.0.1:0")
	start := time.Now()
	ws := make([]*testkit.Proc, jobs)
	for i, name := range names {
		ws[i] = e.worker("worker-"+name, name, "", []string{"--concurrency", "2"}, nil)
	}

	// Sample every worker's memory while they run.
	var mu sync.Mutex
	var peakHWM, peakRSS int64
	var samples int
	stopSampling := testkit.Repeat(t, 100*time.Millisecond, func() {
		for _, p := range ws {
			if p.Exited() {
				continue
			}
			if rss, hwm, ok := procMem(p.Pid()); ok {
				mu.Lock()
				peakHWM, peakRSS = max(peakHWM, hwm), max(peakRSS, rss)
				samples++
				mu.Unlock()
			}
		}
	})

	testkit.Eventually(t, 3*time.Minute, "every Job Complete", func() (bool, string) {
		time.Sleep(time.Second) // 100 status reads per round: not too often
		left := 0
		for _, name := range names {
			s := e.status(name)
			require.NotEqual(t, jobstate.PhaseFailed, s.Phase, "%s failed: %+v", name, s.Conditions)
			if s.Phase != jobstate.PhaseComplete {
				left++
			}
		}
		return left == 0, fmt.Sprintf("%d Jobs not Complete", left)
	})
	took := time.Since(start)
	for _, p := range ws {
		require.Equal(t, 0, p.Wait(t, 30*time.Second), p)
	}
	stopSampling()

	counts := readRuns(t, e.out).ended()
	var takeovers, failed int64
	total := row{Scenario: fmt.Sprintf("8. %d Jobs at once, %d items in total, one worker each", jobs, jobs*per), Bound: 0}
	for _, name := range names {
		s := e.status(name)
		require.Equal(t, jobstate.PhaseComplete, s.Phase)
		require.Equal(t, int64(per), s.Items.Total, name)
		total.Items += int64(per)
		total.Succeeded += s.Items.Succeeded
		for _, it := range items[name] {
			switch counts[it] {
			case 0:
				total.Lost++
			case 1:
			default:
				total.ExecutedTwice++
			}
		}
		total.CountedTwice += max(0, s.Items.Succeeded-int64(per))
		takeovers += s.Items.Takeovers
		failed += s.Items.FailedAttempts
	}
	total.Lost = max(total.Lost, total.Items-total.Succeeded)
	require.Zero(t, total.Lost)
	require.Zero(t, total.CountedTwice)
	if total.ExecutedTwice > 0 {
		for _, p := range ws {
			if strings.Contains(p.Output(), "WARN") {
				t.Logf("%s:\n%s", p.Name(), p.Output())
				break
			}
		}
		t.Logf("serve:\n%s", srv.Output())
	}
	// No fault is injected: an item runs twice only if a lease expired
	// because its worker was starved of CPU for most of the 30s lease.
	require.LessOrEqual(t, total.ExecutedTwice, takeovers*batch, "only items of expired leases run twice (%d leases taken over, %d failed attempts)", takeovers, failed)
	require.Positive(t, samples)
	require.Less(t, peakHWM, int64(maxWorkerRSS), "worker peak RSS (VmHWM) stays bounded")
	total.TimeToComplete = took
	total.Bound = takeovers * batch
	total.Note = fmt.Sprintf("batch %d, lease 30s, `--concurrency 2`, %d leases expired; worker peak VmHWM %.1f MB, VmRSS %.1f MB (bound %d MB, %d samples)",
		batch, takeovers, float64(peakHWM)/(1<<20), float64(peakRSS)/(1<<20), maxWorkerRSS>>20, samples)
	return []row{total}
}
