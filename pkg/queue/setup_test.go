package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

func TestMain(m *testing.M) {
	// Some tests stop their Redis on purpose: the driver's retries are noise.
	store.SetDriverLogger(slog.New(slog.DiscardHandler))
	testkit.Main(m, testkit.BuildOptions{})
}

// env is one test's Redis and Job.
type env struct {
	c    *queue.Client
	url  string
	mini *miniredis.Miniredis
	job  string
}

func miniEnv(t *testing.T) *env {
	t.Helper()
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr() + "/0"
	c, err := queue.Open(context.Background(), queue.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &env{c: c, url: url, mini: m, job: "job"}
}

func realEnv(t *testing.T) *env { return realEnvB(t) }

func realEnvB(t testing.TB) *env {
	t.Helper()
	url := testkit.SharedRedis(t).URL()
	c, err := queue.Open(context.Background(), queue.Options{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &env{c: c, url: url, job: testkit.UniqueName("q")}
}

// both runs f on miniredis and on a real redis-server.
func both(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	testkit.Both(t, miniEnv, realEnv, f)
}

func (e *env) create(t *testing.T, spec jobstate.Spec) {
	t.Helper()
	require.NoError(t, e.c.Create(context.Background(), e.job, spec))
}

func (e *env) push(t *testing.T, items ...string) {
	t.Helper()
	b := make([][]byte, len(items))
	for i, it := range items {
		b[i] = []byte(it)
	}
	n, err := e.c.Push(context.Background(), e.job, b, queue.PushOptions{})
	require.NoError(t, err)
	require.EqualValues(t, len(items), n)
}

func (e *env) seal(t *testing.T) {
	t.Helper()
	_, err := e.c.Seal(context.Background(), e.job)
	require.NoError(t, err)
}

func (e *env) status(t *testing.T) jobstate.Status {
	t.Helper()
	st, err := e.c.Inspector().Status(context.Background(), e.job)
	require.NoError(t, err)
	return st
}

func items(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("item-%05d", i)
	}
	return out
}

// worker builds a Worker for the env's Job with a quiet logger.
func (e *env) worker(t *testing.T, cfg queue.WorkerConfig) *queue.Worker {
	t.Helper()
	cfg.Job = e.job
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Wait == 0 {
		cfg.Wait = 10 * time.Second
	}
	w, err := queue.NewWorker(e.c, cfg)
	require.NoError(t, err)
	return w
}

// runAsync runs w and returns a channel with its result.
func runAsync(ctx context.Context, w *queue.Worker) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- w.Run(ctx) }()
	return ch
}

// waitErr waits for a worker's result.
func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the worker did not end within 60s")
		return nil
	}
}

// eventually waits for cond with a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ok is a handler that counts its runs per item.
type counter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counter) handler() queue.Handler {
	return queue.HandlerFunc(func(_ context.Context, it queue.Item) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.runs == nil {
			c.runs = map[string]int{}
		}
		c.runs[string(it.Payload)]++
		return nil
	})
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs)
}
