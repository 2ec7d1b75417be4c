package poller_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/jobmetrics"
	"github.com/workq/workq/internal/poller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/internal/web"
	"github.com/workq/workq/pkg/jobstate"
)

// serve hands the poller to the dashboard and to the metrics collector.
var (
	_ web.Source        = (*poller.Poller)(nil)
	_ jobmetrics.Source = (*poller.Poller)(nil)
)

func TestMain(m *testing.M) {
	// Some tests stop their Redis on purpose: the driver's retries are noise.
	store.SetDriverLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// counter is a Redis hook that counts the commands on workq's keys that
// the poller sends, and can hold the next one.
type counter struct {
	mu   sync.Mutex
	n    int
	next *hold
}

// hold stops one command, before or after it runs, until released.
type hold struct {
	before bool
	in     chan struct{} // closed when the command is held
	out    chan struct{} // closed to let it go on
}

// holdNext holds the next command on a Job's keys; before says whether
// it waits before it runs (else after it ran, with its reply).
func (c *counter) holdNext(before bool) *hold {
	h := &hold{before: before, in: make(chan struct{}), out: make(chan struct{})}
	c.mu.Lock()
	c.next = h
	c.mu.Unlock()
	return h
}

func (h *hold) release() { close(h.out) }

// reads is how many commands on workq's keys reached Redis so far.
func (c *counter) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) take(n int) *hold {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
	h := c.next
	c.next = nil
	return h
}

func onWorkqKeys(cmd redis.Cmder) bool {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.HasPrefix(s, store.Prefix) {
			return true
		}
	}
	return false
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !onWorkqKeys(cmd) {
			return next(ctx, cmd)
		}
		h := c.take(1)
		if h != nil && h.before {
			close(h.in)
			<-h.out
		}
		err := next(ctx, cmd)
		if h != nil && !h.before {
			close(h.in)
			<-h.out
		}
		return err
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if onWorkqKeys(cmd) {
				n++
			}
		}
		c.mu.Lock()
		c.n += n
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// env is one test's Redis (a miniredis of its own), a store the test
// changes Jobs with, and a poller on a store of its own whose commands
// are counted.
type env struct {
	m     *miniredis.Miniredis
	s     *store.Store
	p     *poller.Poller
	cnt   *counter
	clock *testkit.Clock
}

const every = time.Second

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	s, m := testkit.MiniStore(t, time.Time{})
	cnt := &counter{}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	rdb.AddHook(cnt)
	ps := store.New(rdb)
	t.Cleanup(func() { _ = ps.Close() })
	require.NoError(t, ps.Ping(ctx))
	c := testkit.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	return &env{m: m, s: s, p: &poller.Poller{S: ps, Every: every, Now: c.Now}, cnt: cnt, clock: c}
}

func (e *env) create(t *testing.T, job string, spec jobstate.Spec, items ...string) {
	t.Helper()
	testkit.CreateJob(t, e.s, job, spec, items...)
}

func (e *env) push(t *testing.T, job string, items ...string) {
	t.Helper()
	testkit.Push(t, e.s, job, items...)
}

// kill makes the first item of job dead (MaxAttempts 1) with worker wid,
// which stays registered.
func (e *env) kill(t *testing.T, job, wid string) {
	t.Helper()
	ctx := context.Background()
	reg, err := e.s.Register(ctx, job, "", wid, []byte(`{"id":"`+wid+`","host":"h"}`))
	require.NoError(t, err)
	r, err := e.s.Lease(ctx, job, store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: wid, Seq: 1, Want: 1, Max: 1})
	require.NoError(t, err)
	require.NotNil(t, r.Lease)
	res, err := e.s.Settle(ctx, job, store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1, Leases: []store.Settlement{{
		Token: r.Lease.Token, Started: -1, Failed: []store.Failure{{ID: r.Lease.Items[0].ID, Action: store.ActionCount, Err: "boom"}}}}})
	require.NoError(t, err)
	require.Equal(t, 1, res.Dead)
}

func (e *env) status(t *testing.T, job string) jobstate.Status {
	t.Helper()
	st, err := e.p.Status(context.Background(), job)
	require.NoError(t, err)
	return st
}

// sharedRead calls Status for a test that counts its callers by their
// stacks (see waitJoined); no other test uses it.
func sharedRead(ctx context.Context, p *poller.Poller, job string, out chan<- result) {
	st, err := p.Status(ctx, job)
	out <- result{st, err}
}

type result struct {
	st  jobstate.Status
	err error
}

// waitJoined waits until n goroutines started with sharedRead by the
// calling goroutine are inside the poller's shared read (singleflight's
// Do). Goroutines of parallel subtests, held in reads of their own, are
// not counted: each names the goroutine that created it.
func waitJoined(t *testing.T, n int) {
	t.Helper()
	self := make([]byte, 64)
	self = self[:runtime.Stack(self, false)]
	creator := "in goroutine " + strings.Fields(string(self))[1] + "\n"
	testkit.Eventually(t, 30*time.Second, "every caller waits on the one read", func() (bool, string) {
		buf := make([]byte, 1<<20)
		for {
			m := runtime.Stack(buf, true)
			if m < len(buf) {
				buf = buf[:m]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		k := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "poller_test.sharedRead") && strings.Contains(g, "singleflight.(*Group).Do") &&
				strings.Contains(g, creator) {
				k++
			}
		}
		return k == n, fmt.Sprintf("%d of %d callers are in the shared read", k, n)
	})
}

func TestPoller(t *testing.T) {
	t.Parallel()

	t.Run("AnswersFromTheCacheUntilEveryHasPassed", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "thumbs", jobstate.Spec{}, "a", "b", "c")
		require.EqualValues(t, 3, e.status(t, "thumbs").Items.Pending)
		n := e.cnt.reads()
		require.Positive(t, n)

		e.push(t, "thumbs", "d", "e")
		e.clock.Add(every - time.Nanosecond)
		require.EqualValues(t, 3, e.status(t, "thumbs").Items.Pending, "an answer younger than Every is served again")
		require.Equal(t, n, e.cnt.reads(), "without asking Redis")

		e.clock.Add(time.Nanosecond)
		require.EqualValues(t, 5, e.status(t, "thumbs").Items.Pending, "an answer Every old is read again")
		require.Greater(t, e.cnt.reads(), n)
	})

	t.Run("IndexListsAreReadLessOftenThanCounters", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.p.IndexesEvery = 10 * time.Second
		three := 3
		e.create(t, "idx", jobstate.Spec{Completions: &three, MaxAttempts: 1})
		e.kill(t, "idx", "w1") // index 0 is dead
		st := e.status(t, "idx")
		require.EqualValues(t, 1, st.Items.Dead)
		require.Equal(t, "0", st.FailedIndexes)
		require.Empty(t, st.CompletedIndexes)

		// Index 1 succeeds: the counters show it after Every, the lists
		// only after IndexesEvery.
		ctx := context.Background()
		reg, err := e.s.Register(ctx, "idx", "", "w2", []byte(`{}`))
		require.NoError(t, err)
		r, err := e.s.Lease(ctx, "idx", store.LeaseRequest{UID: reg.UID, Session: reg.Session, Worker: "w2", Seq: 1, Want: 1, Max: 1})
		require.NoError(t, err)
		_, err = e.s.Settle(ctx, "idx", store.SettleRequest{UID: reg.UID, Session: reg.Session, Seq: 1,
			Leases: []store.Settlement{{Token: r.Lease.Token, All: true, AckCount: 1, Started: -1}}})
		require.NoError(t, err)
		e.clock.Add(every)
		st = e.status(t, "idx")
		require.EqualValues(t, 1, st.Items.Succeeded)
		require.Empty(t, st.CompletedIndexes, "the lists are kept for IndexesEvery")
		e.clock.Add(10*time.Second - every)
		require.Equal(t, "1", e.status(t, "idx").CompletedIndexes)
	})

	t.Run("CachesEachReadOnItsOwn", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		e.create(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		e.create(t, "other", jobstate.Spec{})
		e.kill(t, "thumbs", "w1")

		// Each read reaches Redis the first time, with its own answer.
		var last int
		reads := func(what string) {
			t.Helper()
			n := e.cnt.reads()
			require.Greater(t, n, last, "%s read Redis", what)
			last = n
		}
		jobs, err := e.p.Jobs(ctx)
		require.NoError(t, err)
		require.Len(t, jobs, 2)
		require.Equal(t, "other", jobs[0].Name)
		require.Equal(t, "thumbs", jobs[1].Name)
		require.EqualValues(t, 1, jobs[1].Status.Items.Dead)
		reads("Jobs")
		st := e.status(t, "thumbs")
		require.EqualValues(t, 1, st.Items.Pending)
		reads("Status")
		require.EqualValues(t, 0, e.status(t, "other").Items.Pending)
		reads("Status of another Job")
		ws, err := e.p.Workers(ctx, "thumbs")
		require.NoError(t, err)
		require.Len(t, ws, 1)
		require.Equal(t, "w1", ws[0].ID)
		reads("Workers")
		dead, err := e.p.Dead(ctx, "thumbs", 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)
		require.Equal(t, "boom", dead[0].LastError)
		reads("Dead")
		_, err = e.p.Dead(ctx, "thumbs", 100)
		require.NoError(t, err)
		reads("Dead with another limit")

		// The same reads again are answered from the cache.
		again, err := e.p.Jobs(ctx)
		require.NoError(t, err)
		require.Equal(t, jobs, again)
		require.Equal(t, st, e.status(t, "thumbs"))
		ws2, err := e.p.Workers(ctx, "thumbs")
		require.NoError(t, err)
		require.Equal(t, ws, ws2)
		dead2, err := e.p.Dead(ctx, "thumbs", 10)
		require.NoError(t, err)
		require.Equal(t, dead, dead2)
		require.Equal(t, last, e.cnt.reads())
	})

	t.Run("TheDeadListAgreesWithTheStatusItIsServedWith", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		e.create(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b", "c")
		e.kill(t, "thumbs", "w1")
		require.EqualValues(t, 1, e.status(t, "thumbs").Items.Dead)
		e.clock.Add(every / 2)
		dead, err := e.p.Dead(ctx, "thumbs", 10)
		require.NoError(t, err)
		require.Len(t, dead, 1)

		// Another item dies. The Status, read earlier than the list, is
		// read again first; the list is younger than Every, yet it must
		// not be served beside a Status that counts one more.
		e.kill(t, "thumbs", "w2")
		e.clock.Add(every / 2)
		require.EqualValues(t, 2, e.status(t, "thumbs").Items.Dead)
		dead, err = e.p.Dead(ctx, "thumbs", 10)
		require.NoError(t, err)
		require.Len(t, dead, 2, "the list of as many dead items as the Status served with it counts")
	})

	t.Run("ConcurrentCallersShareOneRead", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "thumbs", jobstate.Spec{}, "a", "b", "c")
		const callers = 5
		out := make(chan result, callers)
		// The first caller's read runs and is held; the others come while
		// it is in flight.
		h := e.cnt.holdNext(false)
		go sharedRead(context.Background(), e.p, "thumbs", out)
		<-h.in
		n := e.cnt.reads()
		for range callers - 1 {
			go sharedRead(context.Background(), e.p, "thumbs", out)
		}
		waitJoined(t, callers)
		h.release()
		for range callers {
			r := <-out
			require.NoError(t, r.err)
			require.EqualValues(t, 3, r.st.Items.Pending)
		}
		require.Equal(t, n, e.cnt.reads(), "one read for every caller")
	})

	t.Run("ACallerThatGivesUpDoesNotFailTheOthers", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.create(t, "thumbs", jobstate.Spec{}, "a")
		// The first caller's read is held before it reaches Redis; that
		// caller gives up meanwhile.
		h := e.cnt.holdNext(true)
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan result, 2)
		go sharedRead(ctx, e.p, "thumbs", out)
		<-h.in
		go sharedRead(context.Background(), e.p, "thumbs", out)
		waitJoined(t, 2)
		cancel()
		h.release()
		for range 2 {
			r := <-out
			require.NoError(t, r.err, "the read is not the first caller's to cancel")
			require.EqualValues(t, 1, r.st.Items.Pending)
		}
		n := e.cnt.reads()
		require.EqualValues(t, 1, e.status(t, "thumbs").Items.Pending, "the good answer is cached, not a cancellation")
		require.Equal(t, n, e.cnt.reads())
	})

	t.Run("ForgetDropsWhatIsCachedOfTheJobOnly", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		e.create(t, "thumbs", jobstate.Spec{MaxAttempts: 1}, "a", "b")
		e.create(t, "thumbs-2", jobstate.Spec{}, "a")
		e.create(t, "big-thumbs", jobstate.Spec{}, "a")
		e.kill(t, "thumbs", "w1")
		read := func(jobs ...string) {
			t.Helper()
			for _, job := range jobs {
				_, err := e.p.Status(ctx, job)
				require.NoError(t, err)
				_, err = e.p.Workers(ctx, job)
				require.NoError(t, err)
				_, err = e.p.Dead(ctx, job, 100)
				require.NoError(t, err)
			}
		}
		_, err := e.p.Jobs(ctx)
		require.NoError(t, err)
		read("thumbs", "thumbs-2", "big-thumbs")

		_, err = e.s.SetSuspended(ctx, "thumbs", true)
		require.NoError(t, err)
		_, err = e.s.SetSuspended(ctx, "thumbs-2", true)
		require.NoError(t, err)
		_, err = e.s.RetryDead(ctx, "thumbs", false)
		require.NoError(t, err)
		e.p.Forget("thumbs")

		// Jobs whose names contain the forgotten one's keep their answers.
		n := e.cnt.reads()
		read("thumbs-2", "big-thumbs")
		require.Equal(t, n, e.cnt.reads(), "nothing of another Job was dropped")
		require.True(t, e.status(t, "thumbs").Suspended, "the change shows at once")
		dead, err := e.p.Dead(ctx, "thumbs", 100)
		require.NoError(t, err)
		require.Empty(t, dead, "the dead items came back")
		jobs, err := e.p.Jobs(ctx)
		require.NoError(t, err)
		require.True(t, jobs[1].Status.Suspended, "the list of every Job shows it too: %+v", jobs[1])
		require.False(t, e.status(t, "thumbs-2").Suspended, "another Job's answer is kept until Every")
		ws, err := e.p.Workers(ctx, "thumbs")
		require.NoError(t, err)
		require.Len(t, ws, 1)
		n = e.cnt.reads()
		read("thumbs", "thumbs-2", "big-thumbs")
		require.Equal(t, n, e.cnt.reads(), "the forgotten Job's answers are cached again")
	})

	t.Run("ForgetDuringAReadStillServesTheChange", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		e.create(t, "thumbs", jobstate.Spec{}, "a")
		// A viewer's read has the Job as it was, and is still in flight
		// when the Job is suspended and forgotten.
		h := e.cnt.holdNext(false)
		before := make(chan result, 1)
		go sharedRead(ctx, e.p, "thumbs", before)
		<-h.in
		changed, err := e.s.SetSuspended(ctx, "thumbs", true)
		require.NoError(t, err)
		require.True(t, changed)
		e.p.Forget("thumbs")
		// A read asked after Forget does not wait on the one from before it.
		after := make(chan result, 1)
		go sharedRead(ctx, e.p, "thumbs", after)
		select {
		case r := <-after:
			require.NoError(t, r.err)
			require.True(t, r.st.Suspended)
		case <-time.After(30 * time.Second):
			t.Fatal("a read asked after Forget waits on the read that began before it")
		}
		h.release()
		r := <-before
		require.NoError(t, r.err)
		require.False(t, r.st.Suspended, "the read that began before the change")
		require.True(t, e.status(t, "thumbs").Suspended, "what was read before Forget is not cached after it")
	})

	t.Run("AnErrorIsSharedUntilEveryThenReadAgain", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		ctx := context.Background()
		_, err := e.p.Status(ctx, "thumbs")
		require.ErrorIs(t, err, store.ErrNoJob)
		e.create(t, "thumbs", jobstate.Spec{}, "a")
		_, err = e.p.Status(ctx, "thumbs")
		require.ErrorIs(t, err, store.ErrNoJob, "a missing Job is an answer like any other")
		e.p.Forget("thumbs")
		require.EqualValues(t, 1, e.status(t, "thumbs").Items.Pending)

		e.clock.Add(every)
		e.m.Close()
		_, err = e.p.Jobs(ctx)
		require.ErrorIs(t, err, store.ErrUnavailable)
		_, err = e.p.Status(ctx, "thumbs")
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.NoError(t, e.m.Restart())
		n := e.cnt.reads()
		_, err = e.p.Status(ctx, "thumbs")
		require.ErrorIs(t, err, store.ErrUnavailable, "while Redis is down, one read per Every tells every viewer so")
		require.Equal(t, n, e.cnt.reads())

		e.clock.Add(every)
		require.EqualValues(t, 1, e.status(t, "thumbs").Items.Pending, "Redis is back")
		jobs, err := e.p.Jobs(ctx)
		require.NoError(t, err)
		require.Len(t, jobs, 1)
	})

	t.Run("EveryDefaultsToOneSecond", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.p.Every = 0
		e.create(t, "thumbs", jobstate.Spec{}, "a")
		e.status(t, "thumbs")
		n := e.cnt.reads()
		e.clock.Add(time.Second - time.Nanosecond)
		e.status(t, "thumbs")
		require.Equal(t, n, e.cnt.reads())
		e.clock.Add(time.Nanosecond)
		e.status(t, "thumbs")
		require.Greater(t, e.cnt.reads(), n)
	})
}
