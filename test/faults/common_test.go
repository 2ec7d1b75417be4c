//go:build faults

package faults_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }

// callTimeout bounds every call the test makes to Redis itself.
const callTimeout = 10 * time.Second

// env is one scenario's Redis, output directory and in-test client. The
// test reads Redis through the store directly (not through the binaries),
// with a client of its own that never goes through a proxy.
type env struct {
	t    *testing.T
	bins testkit.Bins
	srv  *redistest.Server
	url  string
	rdb  *redis.Client
	s    *store.Store
	out  string // where item commands record their runs
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
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	// Each call is bounded by its context (callTimeout), longer than any
	// pause a scenario puts Redis in.
	opts.ContextTimeoutEnabled = true
	opts.ReadTimeout = 2 * callTimeout
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return &env{t: t, bins: testkit.Build(t), srv: srv, url: url, rdb: rdb, s: store.New(rdb), out: t.TempDir()}
}

// call runs one call of the test to Redis, bounded by callTimeout.
func call[T any](fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return fn(ctx)
}

// tryStatus reads a Job's status.
func (e *env) tryStatus(job string) (jobstate.Status, error) {
	return call(func(ctx context.Context) (jobstate.Status, error) { return e.s.Status(ctx, job) })
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

// batchCmd records each item of a batch as a line "item worker fence", in
// a file of the batch's own (awk writes in blocks that may cut a line, so
// concurrent batches do not share a file): every item of a batch starts
// (and ends) with it.
var batchCmd = []string{"--batch-exec", "--", "sh", "-c",
	`awk -v w="$WORKQ_WORKER_ID" -v f="$WORKQ_FENCE" '{ print $0, w, f }' >> "$OUT/out.$WORKQ_WORKER_ID.$$"`}

// itemCmd runs one item and records it in the worker's file: a line
// "B item worker attempt fence" when it starts, then, while the file
// hold.<worker> exists in the output directory, it waits; then it runs
// extra (shell code, which may exit non-zero: the item fails), then
// appends "E item worker attempt fence" and exits 0. Each line is one
// write to a file opened for appending, so lines of concurrent items never
// mix.
func itemCmd(extra string) []string {
	extra = cmp.Or(extra, ":")
	return []string{"--", "sh", "-c",
		`f="$OUT/out.$WORKQ_WORKER_ID"; r="$1 $WORKQ_WORKER_ID $WORKQ_ATTEMPT $WORKQ_FENCE"; echo "B $r" >> "$f"; ` +
			`while [ -e "$OUT/hold.$WORKQ_WORKER_ID" ]; do sleep 0.05; done; ` + extra + `; echo "E $r" >> "$f"`,
		"sh", "{}"}
}

// worker starts a worker process named name (also its --id, so its item
// commands see WORKQ_WORKER_ID=name) on job, through url (this env's Redis
// when empty), with extra flags before the command (batchCmd when nil).
func (e *env) worker(name, job string, url string, flags []string, cmd []string) *testkit.Proc {
	e.t.Helper()
	if cmd == nil {
		cmd = batchCmd
	}
	if url == "" {
		url = e.url
	}
	args := append([]string{"--job", job, "--id", name, "--log-level", "info"}, flags...)
	args = append(args, cmd...)
	return testkit.Start(e.t, testkit.Command{Name: name, Bin: e.bins.Worker, Args: args, Env: []string{"WORKQ_REDIS_URL=" + url, "OUT=" + e.out}})
}

// hold makes the items of worker wait (see itemCmd) until release.
func (e *env) hold(worker string) {
	e.t.Helper()
	require.NoError(e.t, os.WriteFile(filepath.Join(e.out, "hold."+worker), nil, 0o644))
}

func (e *env) release(worker string) {
	e.t.Helper()
	require.NoError(e.t, os.Remove(filepath.Join(e.out, "hold."+worker)))
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
	s, err := e.tryStatus(job)
	require.NoError(e.t, err)
	return s
}

// heldBy counts the items that worker holds in leases of job (a Job of
// one shard): the items of every lease whose token carries the session
// its registration opened. Those are what may run again if it dies now:
// the ones it ran and has not settled, the ones running, the ones waiting.
func (e *env) heldBy(job, worker string) int64 {
	e.t.Helper()
	k := store.KeysFor(job)
	sess, err := call(func(ctx context.Context) (string, error) {
		return e.rdb.HGet(ctx, k.Key("reqs"), "w"+worker).Result()
	})
	if errors.Is(err, redis.Nil) {
		return 0 // not registered yet
	}
	require.NoError(e.t, err)
	recs, err := call(func(ctx context.Context) (map[string]string, error) {
		return e.rdb.HGetAll(ctx, k.Key("batches")).Result()
	})
	require.NoError(e.t, err)
	var held int64
	for tok, rec := range recs {
		if !strings.HasPrefix(tok, sess+".") {
			continue
		}
		// A record starts "n|fence|...": its items not yet settled.
		c, _, _ := strings.Cut(rec, "|")
		n, err := strconv.ParseInt(c, 10, 64)
		require.NoError(e.t, err, "lease record %q of %s", rec, tok)
		held += n
	}
	return held
}

// exists reports whether job exists.
func (e *env) exists(job string) bool {
	e.t.Helper()
	_, err := call(func(ctx context.Context) (string, error) { return e.s.UID(ctx, job) })
	if errors.Is(err, store.ErrNoJob) {
		return false
	}
	require.NoError(e.t, err)
	return true
}

// dead returns the payloads of job's dead items, with their attempts.
func (e *env) dead(job string) map[string]int {
	e.t.Helper()
	ds, err := call(func(ctx context.Context) ([]store.DeadItem, error) { return e.s.Dead(ctx, job, 0) })
	require.NoError(e.t, err)
	out := map[string]int{}
	for _, d := range ds {
		out[d.Item] = d.Attempts
	}
	return out
}

// waitFinished waits until job is Complete or Failed and returns its status.
func (e *env) waitFinished(job string, timeout time.Duration) jobstate.Status {
	e.t.Helper()
	var s jobstate.Status
	testkit.Eventually(e.t, timeout, "job "+job+" finished", func() (bool, string) {
		var err error
		s, err = e.tryStatus(job)
		if err != nil {
			return false, err.Error()
		}
		return s.Phase.Finished(), fmt.Sprintf("phase %s, items %+v, active %d", s.Phase, s.Items, s.Active)
	})
	return s
}

// waitComplete waits until job is Complete and returns when it saw it.
func (e *env) waitComplete(job string, timeout time.Duration) time.Time {
	e.t.Helper()
	testkit.Eventually(e.t, timeout, "job "+job+" Complete", func() (bool, string) {
		s, err := e.tryStatus(job)
		if err != nil {
			return false, err.Error()
		}
		require.NotEqual(e.t, jobstate.PhaseFailed, s.Phase, "job failed: %+v", s.Conditions)
		return s.Phase == jobstate.PhaseComplete, fmt.Sprintf("phase %s, items %+v, active %d", s.Phase, s.Items, s.Active)
	})
	return time.Now()
}

// waitLog waits until the execution log holds a line for which ok holds,
// and returns it. A failure shows the output of the processes in show.
func (e *env) waitLog(what string, timeout time.Duration, ok func(run) bool, show ...*testkit.Proc) run {
	e.t.Helper()
	var found run
	testkit.Eventually(e.t, timeout, what, func() (bool, string) {
		for _, r := range readRuns(e.t, e.out).runs {
			if ok(r) {
				found = r
				return true, ""
			}
		}
		var b strings.Builder
		b.WriteString("no such line in the execution log yet")
		for _, p := range show {
			b.WriteString("\n" + p.String())
		}
		return false, b.String()
	})
	return found
}

// row is one line of the reliability table.
type row struct {
	Scenario       string
	Items          int64
	Succeeded      int64
	Lost           int64
	CountedTwice   int64
	ExecutedTwice  int64
	Dead           int64
	Bound          int64 // the allowed executed-twice; -1: not asserted
	Faults         int
	TimeToComplete time.Duration
	Note           string
}

// account counts what happened to items: succeeded from Redis, executions
// from the lines the item commands wrote. It requires the Job Complete
// with every item succeeded exactly once (nothing lost, nothing counted
// twice), and executed-twice within bound (-1: reported only).
func (e *env) account(job string, items []string, bound int64) row {
	e.t.Helper()
	s := e.status(job)
	counts := readRuns(e.t, e.out).ended()
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
	require.Zero(e.t, s.Items.Dead+s.Items.Pending+s.Items.Leased+s.Items.Retrying+s.Items.Returned, "nothing left over: %+v", s.Items)
	if bound >= 0 {
		require.LessOrEqual(e.t, r.ExecutedTwice, bound, "items executed twice must stay within the items in flight at the faults")
	}
	return r
}

// outputHas reports whether a process's output holds s.
func outputHas(p interface{ Output() string }, s string) bool { return strings.Contains(p.Output(), s) }
