package e2e

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// The item commands of the schedule tests sleep for their duration and
// append "START_NS END_NS WORKER INDEX DURATION" to the log ($0), one short
// line per run (an O_APPEND write: lines never mix).
const (
	// sleepItem sleeps for the duration the item is (its stdin).
	sleepItem = `s=$(date +%s%N); d=$(cat); sleep "$d"; echo "$s $(date +%s%N) $WORKQ_WORKER_ID - $d" >> "$0"`
	// sleepItemLight is sleepItem with the fewest processes (a shell that
	// becomes sleep), for many items: it logs "- - WORKER - DURATION"
	// before it sleeps.
	sleepItemLight = `IFS= read -r d; echo "0 0 $WORKQ_WORKER_ID - $d" >> "$0"; exec sleep "$d"`
	// sleepIndex sleeps for $1 seconds, whatever its index.
	sleepIndex = `s=$(date +%s%N); sleep "$1"; echo "$s $(date +%s%N) $WORKQ_WORKER_ID $WORKQ_INDEX $1" >> "$0"`
)

// execution is one run of an item, from the log.
type execution struct {
	start, end time.Time
	worker     string
	index      string // "-" outside an Indexed Job
	duration   string
}

func executions(t *testing.T, log string) []execution {
	t.Helper()
	var out []execution
	for _, l := range readLines(t, log) {
		f := strings.Fields(l)
		require.Len(t, f, 5, "log line %q", l)
		s, err := strconv.ParseInt(f[0], 10, 64)
		require.NoError(t, err, l)
		e, err := strconv.ParseInt(f[1], 10, 64)
		require.NoError(t, err, l)
		out = append(out, execution{start: time.Unix(0, s), end: time.Unix(0, e), worker: f[2], index: f[3], duration: f[4]})
	}
	return out
}

// lptMakespan is how long p machines take for jobs of the given durations
// when each job, longest first, goes to the least loaded machine (the LPT
// rule; within 4/3 of the best schedule).
func lptMakespan(durations []time.Duration, p int) time.Duration {
	d := slices.Clone(durations)
	slices.SortFunc(d, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	load := make([]time.Duration, p)
	for _, x := range d {
		load[slices.Index(load, slices.Min(load))] += x
	}
	return slices.Max(load)
}

// TestSchedule is the acceptance test of heavy items running in parallel:
// `coordinator run` with p workers finishes N sleeping items of d seconds
// within 1.15 × ceil(N/p)·d (random durations: 1.2 × their LPT makespan),
// plus an allowance measured in the same test for what the run costs
// besides the sleeping: twice the longer of two runs of the same items with
// no sleep (duration 0) and the same flags, one just before the run
// measured and one just after. It covers starting the workers, a process
// per item, leasing and ending, and grows with the load of the machine at
// the time. Every bound is a ratio of what the work needs; there is no
// absolute slack.
//
// Not parallel: tests of this package running at the same time would
// stretch one run and not the runs the allowance is measured on.
func TestSchedule(t *testing.T) {
	e := setup(t)
	seq := 0
	// timed runs `coordinator run ARGS` to its end, requires exit 0 and
	// returns its wall time.
	timed := func(t *testing.T, args ...string) time.Duration {
		t.Helper()
		seq++
		job := fmt.Sprintf("sched-%d", seq)
		start := time.Now()
		r := testkit.Run(t, 5*time.Minute, e.runCommand(append([]string{"--job", job}, args...)...))
		took := time.Since(start)
		require.Equal(t, 0, r.Code, "run %v: %s", args, r)
		require.Equal(t, jobstate.PhaseComplete, e.status(job).Phase)
		return took
	}
	// measure runs args(log, false), between two runs of args(trivial log,
	// true) (the same items with no sleep), and requires its wall time
	// within factor × ideal plus the allowance.
	measure := func(t *testing.T, name string, factor float64, ideal time.Duration, log string, args func(log string, zero bool) []string) {
		t.Helper()
		trivial := filepath.Join(t.TempDir(), "trivial.log")
		before := timed(t, args(trivial, true)...)
		took := timed(t, args(log, false)...)
		after := timed(t, args(trivial, true)...)
		allowance := 2 * max(before, after)
		bound := time.Duration(factor*float64(ideal)) + allowance
		t.Logf("%s: %.2fs measured; bound %.2fs = %.2f × %.2fs + allowance %.2fs (2 × the longer run with no sleep: %.2fs, %.2fs)",
			name, took.Seconds(), bound.Seconds(), factor, ideal.Seconds(), allowance.Seconds(), before.Seconds(), after.Seconds())
		require.LessOrEqual(t, took, bound, "%s: the items did not run in parallel", name)
	}
	// queue is the args of a work-queue run of items on p workers, with
	// script; with zero, every item is 0.
	queue := func(t *testing.T, p int, script string, list ...string) func(string, bool) []string {
		t.Helper()
		seq++
		file := writeItems(t, e.dir, fmt.Sprintf("items-%d.txt", seq), list)
		zeros := writeItems(t, e.dir, fmt.Sprintf("zeros-%d.txt", seq), slices.Repeat([]string{"0"}, len(list)))
		return func(log string, zero bool) []string {
			f := file
			if zero {
				f = zeros
			}
			return []string{"-f", f, "-p", strconv.Itoa(p), "--", "sh", "-c", script, log}
		}
	}

	t.Run("FourItemsOfTwoSecondsOnFourWorkers", func(t *testing.T) {
		log := filepath.Join(e.dir, "four.log")
		measure(t, "4 items × 2s, -p 4", 1.15, 2*time.Second, log, queue(t, 4, sleepItem, "2", "2", "2", "2"))
		runs := executions(t, log)
		require.Len(t, runs, 4, "each item ran once")
		workers := map[string]bool{}
		for _, r := range runs {
			workers[r.worker] = true
		}
		require.Len(t, workers, 4, "the four items ran on four different workers: %+v", runs)
		requireAllAtOnce(t, runs)
	})

	t.Run("FiveCompletionsOfOneSecondOnFiveWorkers", func(t *testing.T) {
		log := filepath.Join(e.dir, "five.log")
		measure(t, "--completions 5 × 1s, -p 5", 1.15, time.Second, log, func(log string, zero bool) []string {
			d := "1"
			if zero {
				d = "0"
			}
			return []string{"--completions", "5", "-p", "5", "--", "sh", "-c", sleepIndex, log, d}
		})
		runs := executions(t, log)
		require.Len(t, runs, 5, "each index ran once")
		var indexes []string
		for _, r := range runs {
			indexes = append(indexes, r.index)
		}
		require.ElementsMatch(t, []string{"0", "1", "2", "3", "4"}, indexes)
		requireAllAtOnce(t, runs)
	})

	t.Run("OneItemOfThreeSecondsOnFourWorkers", func(t *testing.T) {
		log := filepath.Join(e.dir, "one.log")
		measure(t, "1 item × 3s, -p 4", 1.15, 3*time.Second, log, queue(t, 4, sleepItem, "3"))
		require.Len(t, executions(t, log), 1, "the item ran once")
	})

	t.Run("HundredRandomItemsOnEightWorkers", func(t *testing.T) {
		// 100 items of 0.05 to 0.5s, the same every run.
		rnd := rand.New(rand.NewPCG(20261128, 42))
		var list []string
		var durations []time.Duration
		for range 100 {
			ms := 50 + rnd.IntN(451)
			list = append(list, fmt.Sprintf("%d.%03d", ms/1000, ms%1000))
			durations = append(durations, time.Duration(ms)*time.Millisecond)
		}
		makespan := lptMakespan(durations, 8)
		var sum time.Duration
		for _, d := range durations {
			sum += d
		}
		t.Logf("100 items, %.2fs of work in all; LPT makespan on 8 workers %.2fs", sum.Seconds(), makespan.Seconds())
		log := filepath.Join(e.dir, "hundred.log")
		measure(t, "100 items × 0.05-0.5s, -p 8", 1.2, makespan, log, queue(t, 8, sleepItemLight, list...))
		runs := executions(t, log)
		require.Len(t, runs, 100, "each item ran once")
		var ran []string
		for _, r := range runs {
			ran = append(ran, r.duration)
		}
		require.ElementsMatch(t, list, ran)
	})
}

// requireAllAtOnce requires that every run was running at one instant:
// the last to start started before the first to end ended.
func requireAllAtOnce(t *testing.T, runs []execution) {
	t.Helper()
	lastStart, firstEnd := runs[0].start, runs[0].end
	for _, r := range runs {
		if r.start.After(lastStart) {
			lastStart = r.start
		}
		if r.end.Before(firstEnd) {
			firstEnd = r.end
		}
	}
	require.True(t, lastStart.Before(firstEnd), "the %d runs overlap: the last started %s after the first ended: %+v",
		len(runs), lastStart.Sub(firstEnd), runs)
}

// TestLPTMakespan checks the schedule tests' yardstick.
func TestLPTMakespan(t *testing.T) {
	t.Parallel()
	s := time.Second
	require.Equal(t, 2*s, lptMakespan([]time.Duration{2 * s, 2 * s, 2 * s, 2 * s}, 4))
	require.Equal(t, 4*s, lptMakespan([]time.Duration{2 * s, 2 * s, 2 * s, 2 * s}, 2))
	// Longest first, each to the least loaded: 7→A, 6→B, 5→B (11),
	// 4→A (11), 3→A (14). The best schedule takes 13 (7+6, 5+4+3).
	require.Equal(t, 14*s, lptMakespan([]time.Duration{3 * s, 5 * s, 7 * s, 4 * s, 6 * s}, 2))
	require.Equal(t, 3*s, lptMakespan([]time.Duration{3 * s}, 4), "more workers than items")
}
