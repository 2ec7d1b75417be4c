//go:build cluster

package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }

// env is one scenario: the URL of its Redis (a Cluster or a Sentinel
// group), the binaries, an in-test client on the same URL, and the
// directory where item commands record their runs.
type env struct {
	t    *testing.T
	bins testkit.Bins
	url  string
	c    *queue.Client
	out  string
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	c, err := queue.Connect(queue.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &env{t: t, bins: testkit.Build(t), url: url, c: c, out: t.TempDir()}
}

// runCoord runs the coordinator with WORKQ_REDIS_URL=url to its end.
func (e *env) runCoord(timeout time.Duration, url string, args ...string) testkit.Result {
	e.t.Helper()
	return testkit.Run(e.t, timeout, testkit.Command{Bin: e.bins.Coordinator, Args: args, Env: []string{"WORKQ_REDIS_URL=" + url}})
}

// coord runs the coordinator on the env's URL and requires exit 0.
func (e *env) coord(args ...string) testkit.Result {
	e.t.Helper()
	r := e.runCoord(2*time.Minute, e.url, args...)
	require.Equal(e.t, 0, r.Code, "coordinator %v: %s", args, r)
	return r
}

// startCoord starts a long-running coordinator command on the env's URL.
func (e *env) startCoord(name string, args ...string) *testkit.Proc {
	e.t.Helper()
	return testkit.Start(e.t, testkit.Command{Name: name, Bin: e.bins.Coordinator, Args: args, Env: []string{"WORKQ_REDIS_URL=" + e.url}})
}

// itemCmd appends the item, as one line, to $OUT/exec.log each time it
// runs: one write(2) of a short line with O_APPEND, whole even when many
// processes append at once.
var itemCmd = []string{"sh", "-c", `printf '%s\n' "$0" >> "$OUT/exec.log"`, "{}"}

// worker starts a worker on job through the env's URL, running itemCmd for
// each item, with flags before the command.
func (e *env) worker(name, job string, flags ...string) *testkit.Proc {
	e.t.Helper()
	args := append([]string{"--job", job, "--log-level", "info"}, flags...)
	args = append(append(args, "--"), itemCmd...)
	return testkit.Start(e.t, testkit.Command{Name: name, Bin: e.bins.Worker, Args: args,
		Env: []string{"WORKQ_REDIS_URL=" + e.url, "OUT=" + e.out}})
}

// load creates job with the coordinator's create, then pushes n items
// "JOB-00000".. from a file with push --seal. It returns the items.
func (e *env) load(job string, n int, createFlags ...string) []string {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), job+".txt")
	f, err := os.Create(path)
	require.NoError(e.t, err)
	w := bufio.NewWriter(f)
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("%s-%05d", job, i)
		fmt.Fprintln(w, items[i])
	}
	require.NoError(e.t, w.Flush())
	require.NoError(e.t, f.Close())
	e.coord(append([]string{"create", job}, createFlags...)...)
	r := e.coord("push", job, "-f", path, "--seal")
	require.Contains(e.t, r.Stdout, fmt.Sprintf("pushed %d items to %s; sealed", n, job))
	return items
}

func (e *env) status(job string) (jobstate.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.c.Inspector().Status(ctx, job)
}

// succeeded sums the succeeded items of jobs, as Redis counts them now.
func (e *env) succeeded(jobs ...string) (int64, string) {
	var n int64
	for _, j := range jobs {
		s, err := e.status(j)
		if err != nil {
			return n, err.Error()
		}
		n += s.Items.Succeeded
	}
	return n, ""
}

// restartMidRun restarts primary victim of c mid-run: once a quarter of
// victimTotal, the items of the Jobs victimJobs it serves, succeeded, it
// keeps the other nodes from marking it failed (which, without replicas,
// stops every slot) however slow this machine is, kills it, requires the
// Jobs otherJobs of the other nodes to make progress while it is down
// (within progress), and starts it again on its AOF. It returns how many
// of victimJobs' items had succeeded at the kill.
func (e *env) restartMidRun(t *testing.T, c *redistest.Cluster, victim int, victimJobs, otherJobs []string, victimTotal int64, progress time.Duration) int64 {
	t.Helper()
	testkit.Eventually(t, 3*time.Minute, "a quarter of the restarted node's items succeeded", func() (bool, string) {
		n, msg := e.succeeded(victimJobs...)
		return n >= victimTotal/4, fmt.Sprintf("%d of %d %s", n, victimTotal, msg)
	})
	before, msg := e.succeeded(victimJobs...)
	require.Empty(t, msg)
	require.Less(t, before, victimTotal, "the node is killed mid-run")
	othersBefore, msg := e.succeeded(otherJobs...)
	require.Empty(t, msg)
	for i, n := range c.Nodes {
		_, err := n.Do("CONFIG", "SET", "cluster-node-timeout", "60000")
		require.NoError(t, err, "node %d", i)
	}
	c.Kill(victim)
	t.Logf("killed node %d (%s), which serves %v, with %d of its %d items succeeded",
		victim, c.Nodes[victim].Addr, victimJobs, before, victimTotal)
	testkit.Eventually(t, progress, "Jobs of the other nodes make progress", func() (bool, string) {
		n, msg := e.succeeded(otherJobs...)
		return n >= othersBefore+10, fmt.Sprintf("%d succeeded, %d before the kill %s", n, othersBefore, msg)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Start(ctx, victim), "node %d restarts on its AOF", victim)
	return before
}

// waitComplete waits until every one of jobs is Complete; a Failed Job
// fails the test at once.
func (e *env) waitComplete(timeout time.Duration, jobs ...string) {
	e.t.Helper()
	testkit.Eventually(e.t, timeout, fmt.Sprintf("%d Jobs Complete", len(jobs)), func() (bool, string) {
		for _, j := range jobs {
			s, err := e.status(j)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", j, err)
			}
			require.NotEqual(e.t, jobstate.PhaseFailed, s.Phase, "job %s failed: %+v", j, s.Conditions)
			if s.Phase != jobstate.PhaseComplete {
				return false, fmt.Sprintf("%s: phase %s, items %+v, active %d", j, s.Phase, s.Items, s.Active)
			}
		}
		return true, ""
	})
}

// executions counts the runs of every item from the log that itemCmd
// writes.
func (e *env) executions() map[string]int {
	e.t.Helper()
	return testkit.Executions(e.t, e.out, "exec.", nil)
}

// tally is what happened to one Job's items.
type tally struct {
	Items         int64
	ExecutedTwice int64 // distinct items that ran more than once
	ExtraRuns     int64 // runs beyond the first, over all items
	Takeovers     int64 // leases taken over after they expired
}

// account requires job Complete with every item succeeded exactly once in
// Redis's accounting and run at least once by its command, nothing dead,
// pending or leased, and nothing run that is not an item of job. It
// returns how many items ran more than once.
func (e *env) account(job string, items []string, runs map[string]int) tally {
	e.t.Helper()
	s, err := e.status(job)
	require.NoError(e.t, err)
	require.Equal(e.t, jobstate.PhaseComplete, s.Phase, "job %s: %+v", job, s.Conditions)
	n := int64(len(items))
	require.Equal(e.t, n, s.Items.Total, "job %s: every item is known: %+v", job, s.Items)
	require.Equal(e.t, n, s.Items.Succeeded, "job %s: every item is counted succeeded exactly once: %+v", job, s.Items)
	require.Zero(e.t, s.Items.Dead+s.Items.Pending+s.Items.Leased+s.Items.Retrying+s.Items.Returned, "job %s: nothing left over: %+v", job, s.Items)
	tl := tally{Items: n, Takeovers: s.Items.Takeovers}
	var lost []string
	for _, it := range items {
		switch c := runs[it]; {
		case c == 0:
			lost = append(lost, it)
		case c > 1:
			tl.ExecutedTwice++
			tl.ExtraRuns += int64(c - 1)
		}
	}
	require.Empty(e.t, lost, "job %s: items counted succeeded that never ran", job)
	return tl
}

// requireOnlyItems requires that every run in the log is of one of the
// items: no stray or torn line.
func requireOnlyItems(t *testing.T, runs map[string]int, items map[string]bool) {
	t.Helper()
	for it := range runs {
		require.True(t, items[it], "the log holds %q, which is no item", it)
	}
}

// statusJSON runs `coordinator status NAME -o json` on url.
func (e *env) statusJSON(url, job string) jobstate.Status {
	e.t.Helper()
	r := e.runCoord(time.Minute, url, "status", job, "-o", "json")
	require.Equal(e.t, 0, r.Code, "status %s through %s: %s", job, url, r)
	var s jobstate.Status
	require.NoError(e.t, json.Unmarshal([]byte(r.Stdout), &s), r.Stdout)
	return s
}

// listJSON runs `coordinator list -o json` on url and returns the Jobs by
// name.
func (e *env) listJSON(url string) map[string]jobstate.Status {
	e.t.Helper()
	r := e.runCoord(time.Minute, url, "list", "-o", "json")
	require.Equal(e.t, 0, r.Code, "list through %s: %s", url, r)
	var all []jobstate.Status
	require.NoError(e.t, json.Unmarshal([]byte(r.Stdout), &all), r.Stdout)
	out := make(map[string]jobstate.Status, len(all))
	for _, s := range all {
		out[s.Name] = s
	}
	return out
}

// oneLine returns s trimmed, failing the test when it holds more than one
// line.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimSpace(s)
	require.NotEmpty(t, s)
	require.NotContains(t, s, "\n", "one line")
	return s
}

// runOutput runs a program and returns its standard output.
func runOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
