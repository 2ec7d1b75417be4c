package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Most of these tests wait on leases, deadlines and child processes
	// rather than burn CPU: run more of them at once than there are CPUs,
	// unless -parallel was given.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 8)))
	}
	// WORKQ_E2E_RACE=1 builds the binaries with the race detector too.
	testkit.Main(m, testkit.BuildOptions{Race: os.Getenv("WORKQ_E2E_RACE") == "1"})
}

// repoRoot is the repository's root, where `coordinator run` finds the
// examples.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return root
}

// env is one test's world: a real redis-server, clients on it, and a
// temporary directory.
type env struct {
	t    *testing.T
	bins testkit.Bins
	srv  *redistest.Server
	url  string
	rdb  *redis.Client
	q    *queue.Client
	in   *queue.Inspector
	dir  string
}

func setup(t *testing.T) *env {
	t.Helper()
	srv := redistest.ForTest(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	q, err := queue.Open(t.Context(), queue.Options{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return &env{t: t, bins: testkit.Build(t), srv: srv, url: srv.URL(), rdb: rdb, q: q, in: q.Inspector(), dir: t.TempDir()}
}

func (e *env) redisEnv() []string { return []string{"WORKQ_REDIS_URL=" + e.url} }

// coord runs the coordinator against this env's Redis and returns what it
// left.
func (e *env) coord(args ...string) testkit.Result {
	e.t.Helper()
	return e.coordIn(nil, args...)
}

// coordIn is coord with stdin.
func (e *env) coordIn(stdin io.Reader, args ...string) testkit.Result {
	e.t.Helper()
	return testkit.Run(e.t, 2*time.Minute, testkit.Command{Bin: e.bins.Coordinator, Args: args, Env: e.redisEnv(), Stdin: stdin})
}

// ok runs the coordinator, requires exit 0 and returns its stdout.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.coord(args...)
	require.Equal(e.t, 0, r.Code, "coordinator %s: %s", strings.Join(args, " "), r)
	return r.Stdout
}

// startCoord starts a long-running coordinator command (serve, watch, run).
func (e *env) startCoord(args ...string) *testkit.Proc {
	e.t.Helper()
	return testkit.Start(e.t, testkit.Command{Bin: e.bins.Coordinator, Args: args, Env: e.redisEnv()})
}

// startWorker starts a worker process on this env's Redis.
func (e *env) startWorker(args ...string) *testkit.Proc {
	e.t.Helper()
	return e.startWorkerIn("", args...)
}

// startWorkerIn starts a worker process in dir.
func (e *env) startWorkerIn(dir string, args ...string) *testkit.Proc {
	e.t.Helper()
	return testkit.Start(e.t, testkit.Command{Bin: e.bins.Worker, Args: args, Env: e.redisEnv(), Dir: dir})
}

// status reads a Job's status through pkg/queue: cheap enough to poll.
func (e *env) status(job string) jobstate.Status {
	e.t.Helper()
	s, err := e.in.Status(context.Background(), job)
	require.NoError(e.t, err, "status of %s", job)
	return s
}

// statusCLI reads `coordinator status JOB -o json`, typed and raw.
func (e *env) statusCLI(job string) (jobstate.Status, map[string]any) {
	e.t.Helper()
	out := e.ok("status", job, "-o", "json")
	var s jobstate.Status
	require.NoError(e.t, json.Unmarshal([]byte(out), &s), out)
	var raw map[string]any
	require.NoError(e.t, json.Unmarshal([]byte(out), &raw), out)
	return s, raw
}

// waitStatus polls a Job's status until cond holds, and returns it; the
// test fails after timeout with the last status seen.
func (e *env) waitStatus(job string, timeout time.Duration, what string, cond func(jobstate.Status) bool) jobstate.Status {
	e.t.Helper()
	var s jobstate.Status
	testkit.Eventually(e.t, timeout, "job "+job+": "+what, func() (bool, string) {
		var err error
		s, err = e.in.Status(context.Background(), job)
		return err == nil && cond(s), fmt.Sprintf("last status %s (err %v)", brief(s), err)
	})
	return s
}

func brief(s jobstate.Status) string {
	it := s.Items
	return fmt.Sprintf("phase=%s sealed=%t suspended=%t done=%t items(total=%d pending=%d leased=%d retrying=%d returned=%d succeeded=%d dead=%d failedAttempts=%d takeovers=%d) workers(active=%d ready=%d succeeded=%d failed=%d) conditions=%v",
		s.Phase, s.Sealed, s.Suspended, s.Done, it.Total, it.Pending, it.Leased, it.Retrying, it.Returned, it.Succeeded, it.Dead,
		it.FailedAttempts, it.Takeovers, s.Active, s.Ready, s.Succeeded, s.Failed, s.Conditions)
}

// condition returns the Job's condition of type ct, or fails the test.
func condition(t *testing.T, s jobstate.Status, ct jobstate.ConditionType) jobstate.Condition {
	t.Helper()
	for _, c := range s.Conditions {
		if c.Type == ct {
			return c
		}
	}
	t.Fatalf("job %s has no %s condition: %v", s.Name, ct, s.Conditions)
	return jobstate.Condition{}
}

// jobKeys returns a snapshot of a Job's keys (testkit.SnapshotJob).
func (e *env) jobKeys(job string) testkit.JobKeys {
	e.t.Helper()
	return testkit.SnapshotJob(e.t, e.rdb, job)
}

// requireNoKeys requires that a Job has no key left, and whether the set
// of Jobs still names it.
func (e *env) requireNoKeys(job string, listed bool, msgAndArgs ...any) {
	e.t.Helper()
	s := e.jobKeys(job)
	require.Empty(e.t, s.Keys, msgAndArgs...)
	require.Equal(e.t, listed, s.Listed, msgAndArgs...)
}

// writeScript writes an sh script into dir and returns its path.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

// writeItems writes items, one per line, and returns the file's path.
func writeItems(t *testing.T, dir, name string, items []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(items, "\n")+"\n"), 0o644))
	return p
}

// readLines returns the lines of a file; a missing file has none.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// countLines is readLines' length, safe to call from a polling goroutine.
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// processGone reports whether pid no longer runs (gone, or a zombie that
// nothing reaped yet).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// requireGone requires that every pid ends within timeout.
func requireGone(t *testing.T, timeout time.Duration, what string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		require.Eventually(t, func() bool { return processGone(pid) }, timeout, 10*time.Millisecond, "%s (pid %d) still runs", what, pid)
	}
}

// pidsIn reads the pids a command recorded, one per line.
func pidsIn(t *testing.T, path string) []int {
	t.Helper()
	var out []int
	for _, l := range readLines(t, path) {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		require.NoError(t, err, "pid %q in %s", l, path)
		out = append(out, n)
	}
	return out
}

// sub returns the env for a subtest: the same Redis, the subtest's t and a
// directory of its own.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	c.dir = t.TempDir()
	return &c
}
