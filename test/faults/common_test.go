//go:build faults

package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
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

// env is one scenario's Redis, output directory and in-test client.
type env struct {
	t    *testing.T
	bins testkit.Bins
	srv  *redistest.Server
	url  string
	c    *queue.Client
	out  string // where worker commands record executions
}

func newEnv(t *testing.T, redisArgs ...string) *env {
	t.Helper()
	redistest.Available(t)
	srv, err := redistest.Start(t.TempDir(), redisArgs...)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	return newEnvOn(t, srv.URL(), srv)
}

func newEnvOn(t *testing.T, url string, srv *redistest.Server) *env {
	t.Helper()
	c, err := queue.Connect(queue.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	out := t.TempDir()
	return &env{t: t, bins: testkit.Build(t), srv: srv, url: url, c: c, out: out}
}

// runCoord runs the coordinator on this env's Redis to its end, within
// timeout.
func (e *env) runCoord(timeout time.Duration, args ...string) testkit.Result {
	e.t.Helper()
	return testkit.Run(e.t, timeout, testkit.Command{Bin: e.bins.Coordinator, Args: args, Env: []string{"WORKQ_REDIS_URL=" + e.url}})
}

// coord runs the coordinator to its end and requires exit 0.
func (e *env) coord(args ...string) testkit.Result {
	e.t.Helper()
	r := e.runCoord(2*time.Minute, args...)
	require.Equal(e.t, 0, r.Code, "coordinator %v: %s", args, r)
	return r
}

// startCoord starts a coordinator command on the Redis at url.
func (e *env) startCoord(name, url string, args ...string) *testkit.Proc {
	e.t.Helper()
	return testkit.Start(e.t, testkit.Command{Name: name, Bin: e.bins.Coordinator, Args: args, Env: []string{"WORKQ_REDIS_URL=" + url}})
}

// serve starts `coordinator serve` as the Job controller.
func (e *env) serve(name string) *testkit.Proc {
	e.t.Helper()
	return e.startCoord(name, e.url, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms")
}

// batchCmd records each batch's items in a file of its own (one per sh
// process), so executions can be counted per item.
var batchCmd = []string{"--batch-exec", "--", "sh", "-c", `cat >> "$OUT/out.$$"`}

// worker starts a worker process on job with extra flags before the
// command (which is cmd, batchCmd when nil).
func (e *env) worker(name, job string, url string, flags []string, cmd []string) *testkit.Proc {
	e.t.Helper()
	if cmd == nil {
		cmd = batchCmd
	}
	if url == "" {
		url = e.url
	}
	args := append([]string{"--job", job, "--log-level", "info"}, flags...)
	args = append(args, cmd...)
	return testkit.Start(e.t, testkit.Command{Name: name, Bin: e.bins.Worker, Args: args, Env: []string{"WORKQ_REDIS_URL=" + url, "OUT=" + e.out}})
}

// writeItems writes n items "<prefix>-%07d", one per line, and returns the
// file and the items.
func writeItems(t *testing.T, prefix string, n int) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), prefix+".txt")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("%s-%07d", prefix, i)
		fmt.Fprintln(w, items[i])
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return path, items
}

func (e *env) status(job string) jobstate.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.c.Status(ctx, job)
	require.NoError(e.t, err)
	return s
}

// waitComplete waits until job is Complete and returns when it saw it.
func (e *env) waitComplete(job string, timeout time.Duration) time.Time {
	e.t.Helper()
	testkit.Eventually(e.t, timeout, "job "+job+" Complete", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := e.c.Status(ctx, job)
		if err != nil {
			return false, err.Error()
		}
		require.NotEqual(e.t, jobstate.PhaseFailed, s.Phase, "job failed: %+v", s.Conditions)
		return s.Phase == jobstate.PhaseComplete, fmt.Sprintf("phase %s, items %+v, active %d", s.Phase, s.Items, s.Active)
	})
	return time.Now()
}

// row is one line of the reliability table.
type row struct {
	Scenario       string
	Items          int64
	Succeeded      int64
	Lost           int64
	CountedTwice   int64
	ExecutedTwice  int64
	Bound          int64 // the allowed executed-twice; -1: not asserted
	Faults         int
	TimeToComplete time.Duration
	Note           string
}

// account counts what happened to items: succeeded from Redis, executions
// from the files the worker command wrote. It requires the Job Complete
// with every item succeeded exactly once (nothing lost, nothing counted
// twice), and executed-twice within bound (-1: reported only).
func (e *env) account(job string, items []string, bound int64) row {
	e.t.Helper()
	s := e.status(job)
	want := map[string]bool{}
	for _, it := range items {
		want[it] = true
	}
	width := len(items[0])
	counts := testkit.Executions(e.t, e.out, "out.", func(_, l string) (string, bool) {
		return l, len(l) == width && want[l]
	})
	r := row{Items: int64(len(items)), Succeeded: s.Items.Succeeded, Bound: bound}
	for _, it := range items {
		switch n := counts[it]; {
		case n == 0:
			r.Lost++
		case n > 1:
			r.ExecutedTwice++
		}
	}
	executed := r.Items - r.Lost
	r.CountedTwice = max(0, s.Items.Succeeded-executed)
	// Lost also covers items that Redis does not count as succeeded.
	r.Lost = max(r.Lost, r.Items-s.Items.Succeeded)
	require.Equal(e.t, jobstate.PhaseComplete, s.Phase)
	require.Zero(e.t, r.Lost, "items lost: %+v", s.Items)
	require.Zero(e.t, r.CountedTwice, "items counted twice: %+v", s.Items)
	require.Equal(e.t, r.Items, s.Items.Total, "every item is accounted for: %+v", s.Items)
	require.Equal(e.t, r.Items, s.Items.Succeeded, "status.items.succeeded equals the distinct items: %+v", s.Items)
	require.Zero(e.t, s.Items.Dead+s.Items.Pending+s.Items.Leased+s.Items.Retrying, "nothing left over: %+v", s.Items)
	if bound >= 0 {
		require.LessOrEqual(e.t, r.ExecutedTwice, bound, "items executed twice must stay within the items in flight at the faults")
	}
	return r
}

// outputHas reports whether a process's output holds s.
func outputHas(p *testkit.Proc, s string) bool { return strings.Contains(p.Output(), s) }
