//go:build faults

package faults_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// hugeOutput is what the item of scenario 6a writes to its stdout.
const hugeOutput = 300 << 20

// maxCapture is how much of one item's stdout a worker keeps.
const maxCapture = 8 << 20

// scenarioOutput is case 6 of Reliability II: an item writing 300 MiB to
// its stdout must not take the worker's memory with it (its peak resident
// memory, VmHWM, stays bounded) and the worker says how much it dropped;
// an item whose command exits 0 but leaves a background child holding its
// stdout is acked, and the child is killed and reported.
func scenarioOutput(t *testing.T) []row {
	e := newEnv(t)
	return []row{hugeOutputRun(t, e), backgroundChildRun(t, e)}
}

func hugeOutputRun(t *testing.T, e *env) row {
	const job = "huge"
	e.coord("create", job)
	e.coord("push", job, "one")
	start := time.Now()
	w := e.worker("w", job, "", nil, itemCmd(`head -c `+strconv.Itoa(hugeOutput)+` /dev/zero`))
	testkit.Eventually(t, time.Minute, "the item is acked", func() (bool, string) {
		s := e.status(job)
		return s.Items.Succeeded == 1, fmt.Sprintf("%+v", s.Items)
	})
	// VmHWM is the worker's peak resident memory so far: read while it
	// still runs (the Job is not sealed), after the item.
	_, hwm, ok := procMem(w.Pid())
	require.True(t, ok, "the worker's /proc status")
	e.coord("seal", job)
	require.Equal(t, 0, w.Wait(t, time.Minute), "%s", w)
	st := e.status(job)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	require.Less(t, hwm, int64(maxWorkerRSS), "the worker's peak RSS stays bounded")
	dropped := fmt.Sprintf("[workq: %d more bytes of output dropped]", hugeOutput-maxCapture)
	require.Contains(t, w.Stdout(), dropped, "the worker says how much it dropped")
	require.Equal(t, maxCapture+len("\n"+dropped+"\n"), len(w.Stdout()), "the first 8 MiB are kept, then the note")
	v := incarnation{Job: job, UID: st.UID, Items: []string{"one"}, MaxAttempts: jobstate.DefaultMaxAttempts}.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations)
	return row{Scenario: "II.6a. one item writes 300 MiB to its stdout", Items: 1, Succeeded: st.Items.Succeeded, Bound: 0,
		TimeToComplete: time.Since(start),
		Note:           fmt.Sprintf("acked; worker peak VmHWM %.1f MiB (bound %d MiB); it kept the first 8 MiB and wrote %q", float64(hwm)/(1<<20), maxWorkerRSS>>20, dropped)}
}

func backgroundChildRun(t *testing.T, e *env) row {
	const job = "child"
	e.coord("create", job)
	e.coord("push", job, "one", "--seal")
	start := time.Now()
	w := e.worker("w2", job, "", nil, itemCmd(`sleep 1000 & echo $! > "$OUT/child.pid"`))
	pidFile := filepath.Join(e.out, "child.pid")
	// The child sleeps for 1000s: the item can only be acked (and the
	// worker exit) if the worker did not wait for it.
	require.Equal(t, 0, w.Wait(t, 2*time.Minute), "the item is acked and the Job done: %s", w)
	st := e.status(job)
	require.Equal(t, jobstate.PhaseComplete, st.Phase)
	require.Equal(t, int64(1), st.Items.Succeeded)
	require.Zero(t, st.Items.FailedAttempts, "exit status 0 acks the item")
	pid := readPid(t, pidFile)
	testkit.Eventually(t, 30*time.Second, "the background child is gone", func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if os.IsNotExist(err) {
			return true, ""
		}
		// "pid (comm) state ...": a zombie (Z) is dead, waiting for its reaper.
		f := strings.Fields(string(b))
		return len(f) > 2 && f[2] == "Z", string(b)
	})
	const note = "[workq: the command left background processes; they were killed]"
	require.Contains(t, w.Stderr(), note, "the item's output says so")
	require.Contains(t, w.Stderr(), "command left background processes; killed them", "the worker logs it")
	v := incarnation{Job: job, UID: st.UID, Items: []string{"one"}, MaxAttempts: jobstate.DefaultMaxAttempts}.check(st, e.dead(job), readRuns(t, e.out))
	require.Empty(t, v.Violations)
	return row{Scenario: "II.6b. a command exits 0 and leaves a background child (`sleep 1000 &`) holding its stdout", Items: 1,
		Succeeded: st.Items.Succeeded, Bound: 0, TimeToComplete: time.Since(start),
		Note: fmt.Sprintf("acked (0 failed attempts); the child was killed; the item's output ends %q", note)}
}
