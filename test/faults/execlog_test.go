//go:build faults

package faults_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/workq/workq/pkg/jobstate"
)

// run is one line of the execution log that item commands write: what
// ran, where, and whether it got to its end (exit 0). It is the suite's
// own record, independent of workq's counters.
type run struct {
	Item    string
	Worker  string
	Attempt int   // WORKQ_ATTEMPT; 0 for a batch command, which has none
	Fence   int64 // WORKQ_FENCE
	Ended   bool  // an "E" line (the command exited 0), or a batch line
}

// runs is the whole execution log.
type runs struct{ runs []run }

// readRuns reads every out.* file in dir: lines "B item worker attempt
// fence" (started) and "E item worker attempt fence" (exits 0) of itemCmd,
// and lines "item worker fence" of batchCmd. A last line without '\n' was
// cut short and is not counted.
func readRuns(t testing.TB, dir string) runs {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("execution log: %v", err)
	}
	var out runs
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), "out.") {
			continue
		}
		if err := out.read(filepath.Join(dir, e.Name())); err != nil {
			t.Fatalf("execution log: %v", err)
		}
	}
	return out
}

func (l *runs) read(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256*1024)
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && (f[0] == "B" || f[0] == "E"):
			att, err1 := strconv.Atoi(f[3])
			fence, err2 := strconv.ParseInt(f[4], 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("%s: bad line %q", path, line)
			}
			l.runs = append(l.runs, run{Item: f[1], Worker: f[2], Attempt: att, Fence: fence, Ended: f[0] == "E"})
		case len(f) == 3:
			fence, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: bad line %q", path, line)
			}
			l.runs = append(l.runs, run{Item: f[0], Worker: f[1], Fence: fence, Ended: true})
		default:
			return fmt.Errorf("%s: bad line %q", path, line)
		}
	}
}

// ended counts, per item, the runs that exited 0.
func (l runs) ended() map[string]int {
	m := map[string]int{}
	for _, r := range l.runs {
		if r.Ended {
			m[r.Item]++
		}
	}
	return m
}

// started counts, per item, the runs that started (for batch lines, that
// ended).
func (l runs) started() map[string]int {
	m := map[string]int{}
	for _, r := range l.runs {
		if !r.Ended || r.Attempt == 0 {
			m[r.Item]++
		}
	}
	return m
}

// of returns the runs of one item.
func (l runs) of(item string) []run {
	var out []run
	for _, r := range l.runs {
		if r.Item == item {
			out = append(out, r)
		}
	}
	return out
}

// incarnation is what the test pushed to one incarnation of a Job, and
// how that incarnation is allowed to end.
type incarnation struct {
	Job         string
	UID         string
	Items       []string // pushed, each distinct; no other incarnation has them
	MaxAttempts int
	// FailReasons are the reasons a Failed end may have; none: it must be
	// Complete.
	FailReasons []string
}

// verdict is what the invariant checker found about one incarnation.
type verdict struct {
	Violations    []string
	Ran           int // distinct items that ran to exit 0
	ExecutedTwice int // distinct items that ran to exit 0 more than once
}

func (v *verdict) add(format string, a ...any) {
	v.Violations = append(v.Violations, fmt.Sprintf(format, a...))
}

// check holds the invariants of the issue against a finished incarnation
// (its status st and dead items, read once it was Complete or Failed) and
// the execution log:
//   - every item pushed is accounted for: total == pushed, and a finished
//     Job holds nothing pending, leased, retrying or handed back;
//   - succeeded + dead == pushed: no item is counted twice or lost;
//   - every item counted succeeded ran to exit 0 in this incarnation;
//   - an item is dead only after it started max-attempts times;
//   - Complete only with no dead item; Failed only for an allowed reason.
func (inc incarnation) check(st jobstate.Status, dead map[string]int, log runs) verdict {
	var v verdict
	want := map[string]bool{}
	for _, it := range inc.Items {
		want[it] = true
	}
	ended, started := log.ended(), log.started()
	for _, it := range inc.Items {
		if ended[it] > 0 {
			v.Ran++
		}
		if ended[it] > 1 {
			v.ExecutedTwice++
		}
	}
	n := int64(len(inc.Items))
	if !st.Phase.Finished() {
		v.add("%s is %s, not finished", inc.Job, st.Phase)
	}
	if st.UID != inc.UID {
		v.add("%s has uid %s, not the incarnation checked (%s)", inc.Job, st.UID, inc.UID)
	}
	it := st.Items
	if it.Total != n {
		v.add("%d items pushed, but total is %d", n, it.Total)
	}
	if left := it.Pending + it.Leased + it.Retrying + it.Returned; left != 0 {
		v.add("finished with items left: %+v", it)
	}
	if it.Succeeded+it.Dead != n {
		v.add("succeeded %d + dead %d != %d pushed: %+v", it.Succeeded, it.Dead, n, it)
	}
	if int64(len(dead)) != it.Dead {
		v.add("%d dead items listed, status says %d", len(dead), it.Dead)
	}
	var deadNames []string
	for d, att := range dead {
		deadNames = append(deadNames, d)
		if !want[d] {
			v.add("dead item %q was never pushed to this incarnation", d)
			continue
		}
		if started[d] < inc.MaxAttempts {
			v.add("item %q is dead after %d attempts (recorded %d) but started only %d times", d, att, inc.MaxAttempts, started[d])
		}
	}
	sort.Strings(deadNames)
	// What is not dead is what was counted succeeded (the books add up,
	// checked above): each of those must have run to exit 0 here.
	var never []string
	for _, x := range inc.Items {
		if _, isDead := dead[x]; !isDead && ended[x] == 0 {
			never = append(never, x)
		}
	}
	if len(never) > 0 {
		v.add("%d items counted succeeded never ran to exit 0 in this incarnation, such as %s", len(never), strings.Join(never[:min(5, len(never))], " "))
	}
	if int64(v.Ran) < it.Succeeded {
		v.add("succeeded %d > %d distinct items that ran to exit 0", it.Succeeded, v.Ran)
	}
	switch st.Phase {
	case jobstate.PhaseComplete:
		if it.Dead != 0 {
			v.add("Complete with %d dead items: %v", it.Dead, deadNames)
		}
	case jobstate.PhaseFailed:
		reason := failedReason(st)
		ok := false
		for _, r := range inc.FailReasons {
			ok = ok || r == reason
		}
		if !ok {
			v.add("Failed with reason %s (allowed: %v): %+v", reason, inc.FailReasons, st.Conditions)
		}
	}
	return v
}

// failedReason is the reason of a Job's Failed condition ("" if none).
func failedReason(s jobstate.Status) string {
	for _, c := range s.Conditions {
		if c.Type == jobstate.ConditionFailed && c.Status == "True" {
			return c.Reason
		}
	}
	return ""
}
