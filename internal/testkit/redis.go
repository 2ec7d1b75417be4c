package testkit

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/pkg/jobstate"
)

// shared is the suite's one real redis-server, started by the first
// SharedRedis and stopped by Main.
var shared struct {
	once sync.Once
	srv  *redistest.Server
	err  error
}

// SharedRedis returns the suite's one real redis-server, started at the
// first call; Main stops it when the suite ends. Tests that share it use
// Jobs of their own names. Without redis-server it skips or fails the test
// as redistest.Available says.
func SharedRedis(t testing.TB) *redistest.Server {
	t.Helper()
	redistest.Available(t)
	suite.mu.Lock()
	main := suite.main
	suite.mu.Unlock()
	if !main {
		t.Fatal("testkit.SharedRedis needs testkit.Main as the suite's TestMain, which stops the server: func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }")
	}
	shared.once.Do(func() { shared.srv, shared.err = redistest.Start("") })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// stopShared stops the shared server, if one was started.
func stopShared() {
	if shared.srv != nil {
		shared.srv.Stop()
	}
}

// MiniStore returns a store on a miniredis of the test's own. Its clock
// stands at start, moved only by the test (miniredis's SetTime); with the
// zero time it follows the real clock. The driver does not retry, so a test
// that stops the server sees the error at once.
func MiniStore(t testing.TB, start time.Time) (*store.Store, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	if !start.IsZero() {
		m.SetTime(start)
	}
	return open(t, m.Addr()), m
}

// RealStore returns a store on SharedRedis.
func RealStore(t testing.TB) *store.Store {
	t.Helper()
	return open(t, SharedRedis(t).Addr)
}

func open(t testing.TB, addr string) *store.Store {
	t.Helper()
	s := store.New(redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}))
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Clock is a clock the test sets and moves. Safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// CreateJob creates job with spec on s and pushes items, if any; it
// returns the Job's uid.
func CreateJob(t testing.TB, s *store.Store, job string, spec jobstate.Spec, items ...string) string {
	t.Helper()
	uid, err := s.Create(context.Background(), job, spec)
	if err != nil {
		t.Fatal(err)
	}
	Push(t, s, job, items...)
	return uid
}

// Push appends items to job, requiring that every one was taken.
func Push(t testing.TB, s *store.Store, job string, items ...string) {
	t.Helper()
	if len(items) == 0 {
		return
	}
	bs := make([][]byte, len(items))
	for i, it := range items {
		bs[i] = []byte(it)
	}
	n, err := s.Push(context.Background(), job, "", bs, store.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(items)) {
		t.Fatalf("push to %q took %d of %d items", job, n, len(items))
	}
}

var names atomic.Int64

// UniqueName returns prefix followed by a number no other call of this
// process returned, and this process's id: a Job name of the test's own
// on a Redis that other tests and other test binaries share.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), names.Add(1))
}

// Both runs f twice, in parallel subtests: on the environment mini makes
// (miniredis) and on the one real makes (a real redis-server).
func Both[E any](t *testing.T, mini, real func(*testing.T) E, f func(*testing.T, E)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		f(t, mini(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		f(t, real(t))
	})
}
