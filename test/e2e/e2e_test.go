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
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// The binaries under test, built once by TestMain.
var (
	coordinatorBin string
	workerBin      string
	repoRoot       string
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
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "workq-e2e-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if os.Getenv("WORKQ_E2E_RACE") == "1" {
		args = append(args, "-race") // the binaries too, slower
	}
	build := exec.Command("go", append(args, "./cmd/coordinator", "./cmd/worker")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the binaries: %v\n%s", err, out)
		return 1
	}
	coordinatorBin = filepath.Join(dir, "coordinator")
	workerBin = filepath.Join(dir, "worker")
	return m.Run()
}

// baseEnv is this process's environment without any WORKQ_* setting, so
// the binaries see only what a test gives them.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WORKQ_") {
			out = append(out, kv)
		}
	}
	return append(out, "NO_COLOR=1")
}

// syncBuffer is a bytes.Buffer safe for a process's output copier and the
// test reading it at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// command is a process to start.
type command struct {
	bin   string
	args  []string
	env   []string // added to baseEnv
	dir   string
	stdin io.Reader
}

// proc is a started process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // set before done is closed
}

func startProc(t *testing.T, c command) *proc {
	t.Helper()
	cmd := exec.Command(c.bin, c.args...)
	cmd.Env = append(baseEnv(), c.env...)
	cmd.Dir = c.dir
	cmd.Stdin = c.stdin
	p := &proc{name: filepath.Base(c.bin) + " " + strings.Join(c.args, " "), cmd: cmd,
		stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start(), "start %s", p.name)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig), "signal %s", p.name)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit code; the test
// fails if it does not exit within timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %s\nstdout:\n%s\nstderr:\n%s", p.name, timeout, tail(p.stdout.String()), tail(p.stderr.String()))
	}
	return p.code()
}

func (p *proc) code() int {
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	return -1
}

func (p *proc) result() result {
	return result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.code()}
}

// result is what a finished process left.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, tail(r.stdout), tail(r.stderr))
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

func runProc(t *testing.T, c command, timeout time.Duration) result {
	t.Helper()
	p := startProc(t, c)
	p.wait(t, timeout)
	return p.result()
}

// env is one test's world: a real redis-server, clients on it, and a
// temporary directory.
type env struct {
	t   *testing.T
	srv *redistest.Server
	url string
	rdb *redis.Client
	q   *queue.Client
	dir string
}

func setup(t *testing.T) *env {
	t.Helper()
	srv := redistest.ForTest(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return &env{t: t, srv: srv, url: srv.URL(), rdb: rdb, q: queue.New(rdb), dir: t.TempDir()}
}

func (e *env) redisEnv() []string { return []string{"WORKQ_REDIS_URL=" + e.url} }

// coord runs the coordinator against this env's Redis and returns what it
// left.
func (e *env) coord(args ...string) result {
	e.t.Helper()
	return runProc(e.t, command{bin: coordinatorBin, args: args, env: e.redisEnv()}, 2*time.Minute)
}

// coordIn is coord with stdin.
func (e *env) coordIn(stdin io.Reader, args ...string) result {
	e.t.Helper()
	return runProc(e.t, command{bin: coordinatorBin, args: args, env: e.redisEnv(), stdin: stdin}, 2*time.Minute)
}

// ok runs the coordinator, requires exit 0 and returns its stdout.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.coord(args...)
	require.Equal(e.t, 0, r.code, "coordinator %s: %s", strings.Join(args, " "), r)
	return r.stdout
}

// startCoord starts a long-running coordinator command (serve, watch, run).
func (e *env) startCoord(args ...string) *proc {
	e.t.Helper()
	return startProc(e.t, command{bin: coordinatorBin, args: args, env: e.redisEnv()})
}

// startWorker starts a worker process on this env's Redis.
func (e *env) startWorker(args ...string) *proc {
	e.t.Helper()
	return startProc(e.t, command{bin: workerBin, args: args, env: e.redisEnv()})
}

// status reads a Job's status through pkg/queue: cheap enough to poll.
func (e *env) status(job string) jobstate.Status {
	e.t.Helper()
	s, err := e.q.Status(context.Background(), job)
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
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last jobstate.Status
	var lastErr error
	for {
		s, err := e.q.Status(context.Background(), job)
		if err == nil && cond(s) {
			return s
		}
		last, lastErr = s, err
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s: %s: not reached within %s; last status %s (err %v)", job, what, timeout, brief(last), lastErr)
		}
		<-tick.C
	}
}

func brief(s jobstate.Status) string {
	it := s.Items
	return fmt.Sprintf("phase=%s sealed=%t suspended=%t done=%t items(total=%d pending=%d leased=%d retrying=%d succeeded=%d dead=%d failedAttempts=%d takeovers=%d) workers(active=%d ready=%d succeeded=%d failed=%d) conditions=%v",
		s.Phase, s.Sealed, s.Suspended, s.Done, it.Total, it.Pending, it.Leased, it.Retrying, it.Succeeded, it.Dead,
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

// jobKeys returns every key of a Job with its type, content and whether it
// expires, so that two snapshots compare equal only if nothing of the Job
// changed. (DUMP is not canonical: a hash table dumps in iteration order.)
func (e *env) jobKeys(job string) map[string]string {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := e.rdb.Scan(ctx, 0, "workq:{"+job+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := e.keyContent(ctx, k)
		if errors.Is(err, redis.Nil) {
			continue
		}
		require.NoError(e.t, err, "read %s", k)
		out[k] = v
	}
	require.NoError(e.t, iter.Err())
	member, err := e.rdb.SIsMember(ctx, "workq:jobs", job).Result()
	require.NoError(e.t, err)
	out["workq:jobs has "+job] = strconv.FormatBool(member)
	return out
}

func (e *env) keyContent(ctx context.Context, k string) (string, error) {
	typ, err := e.rdb.Type(ctx, k).Result()
	if err != nil {
		return "", err
	}
	var v any
	switch typ {
	case "none":
		return "", redis.Nil
	case "string":
		v, err = e.rdb.Get(ctx, k).Result()
	case "list":
		v, err = e.rdb.LRange(ctx, k, 0, -1).Result()
	case "hash":
		v, err = e.rdb.HGetAll(ctx, k).Result() // a map: printed sorted
	case "set":
		var m []string
		m, err = e.rdb.SMembers(ctx, k).Result()
		v = sorted(m)
	case "zset":
		v, err = e.rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
	default:
		return "", fmt.Errorf("key %s has unexpected type %s", k, typ)
	}
	if err != nil {
		return "", err
	}
	ttl, err := e.rdb.PTTL(ctx, k).Result()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %q expires=%t", typ, fmt.Sprint(v), ttl > 0), nil
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
