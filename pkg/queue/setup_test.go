package queue_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/pkg/queue"
)

// shared is one real redis-server for the whole package; tests use Jobs of
// their own names on it.
var (
	shared     *redistest.Server
	sharedErr  error
	sharedOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

// env is one test's Redis: a miniredis of its own, or the shared real one.
type env struct {
	c    *queue.Client
	mini *miniredis.Miniredis
	job  string
}

// sleep lets time pass for leases and backoffs: miniredis's clock is moved,
// real Redis is waited for.
func (e *env) sleep(t *testing.T, d time.Duration) {
	t.Helper()
	if e.mini != nil {
		e.mini.SetTime(e.now().Add(d))
		return
	}
	time.Sleep(d)
}

func (e *env) now() time.Time {
	if e.mini != nil {
		t, err := e.c.Now(context.Background())
		if err == nil {
			return t
		}
	}
	return time.Now()
}

func newJobName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "t-" + hex.EncodeToString(b)
}

// backends runs f once on miniredis and once on a real redis-server (when
// installed; see redistest.Available).
func backends(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		m.SetTime(time.Now())
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		c := queue.New(rdb)
		t.Cleanup(func() { _ = c.Close() })
		f(t, &env{c: c, mini: m, job: newJobName()})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		c := realClient(t)
		f(t, &env{c: c, job: newJobName()})
	})
}

func realClient(t *testing.T) *queue.Client {
	t.Helper()
	redistest.Available(t)
	sharedOnce.Do(func() { shared, sharedErr = redistest.Start("") })
	require.NoError(t, sharedErr)
	c, err := queue.Open(context.Background(), queue.Options{URL: shared.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func items(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("item-%d", i))
	}
	return out
}
