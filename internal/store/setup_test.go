package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/workq/workq/internal/redistest"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

func TestMain(m *testing.M) { testkit.Main(m, testkit.BuildOptions{}) }

// env is one test's Redis and Job: a miniredis of its own, or the shared
// real one.
type env struct {
	s    *store.Store
	rdb  redis.UniversalClient
	mini *miniredis.Miniredis
	job  string
}

// advance lets server time pass for leases and backoffs: miniredis's clock
// is moved; on real Redis the test sleeps (only tests that need real
// blocking or TTLs run there with short leases).
func (e *env) advance(t *testing.T, d time.Duration) {
	t.Helper()
	if e.mini != nil {
		now, err := e.s.Now(context.Background())
		require.NoError(t, err)
		e.mini.SetTime(now.Add(d))
		return
	}
	time.Sleep(d)
}

func miniEnv(t *testing.T) *env {
	t.Helper()
	s, m := testkit.MiniStore(t, time.UnixMilli(time.Now().UnixMilli()))
	return &env{s: s, rdb: s.Redis(), mini: m, job: "job"}
}

func realEnv(t *testing.T) *env {
	t.Helper()
	s := testkit.RealStore(t)
	return &env{s: s, rdb: s.Redis(), job: testkit.UniqueName("t")}
}

// both runs f on miniredis and on a real redis-server.
func both(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	testkit.Both(t, miniEnv, realEnv, f)
}

// session is a registered worker.
type session struct {
	e   *env
	wid string
	reg store.Registration
	seq int64
	set int64
}

func (e *env) create(t *testing.T, spec jobstate.Spec) string {
	t.Helper()
	uid, err := e.s.Create(context.Background(), e.job, spec)
	require.NoError(t, err)
	return uid
}

func (e *env) push(t *testing.T, items ...string) {
	t.Helper()
	testkit.Push(t, e.s, e.job, items...)
}

func (e *env) worker(t *testing.T, wid string) *session {
	t.Helper()
	reg, err := e.s.Register(context.Background(), e.job, "", wid, []byte(`{}`))
	require.NoError(t, err)
	return &session{e: e, wid: wid, reg: reg}
}

func (w *session) lease(t *testing.T, want int) (store.LeaseReply, error) {
	t.Helper()
	w.seq++
	return w.e.s.Lease(context.Background(), w.e.job, store.LeaseRequest{UID: w.reg.UID, Session: w.reg.Session,
		Worker: w.wid, Seq: w.seq, Want: want})
}

func (w *session) mustLease(t *testing.T, want int) *store.Lease {
	t.Helper()
	r, err := w.lease(t, want)
	require.NoError(t, err)
	require.NotNil(t, r.Lease, "a lease, not %+v", r)
	return r.Lease
}

func (w *session) settle(t *testing.T, ls ...store.Settlement) (store.SettleResult, error) {
	t.Helper()
	w.set++
	return w.e.s.Settle(context.Background(), w.e.job, store.SettleRequest{UID: w.reg.UID, Session: w.reg.Session, Seq: w.set, Leases: ls})
}

// dieHolding has worker w report that the first started items of its
// lease l have started, then die; a peer registers and heartbeats on while
// 1.2 s pass, so that a lease of 1 s expires with Redis up. It returns the
// peer.
func (e *env) dieHolding(t *testing.T, w *session, l *store.Lease, started int) *session {
	t.Helper()
	_, err := w.settle(t, store.Settlement{Token: l.Token, Started: started})
	require.NoError(t, err)
	p := e.worker(t, "w2")
	for range 3 {
		e.advance(t, 400*time.Millisecond)
		_, err = e.s.Heartbeat(context.Background(), e.job, p.reg.UID, p.wid, nil)
		require.NoError(t, err)
	}
	return p
}

func (e *env) status(t *testing.T) jobstate.Status {
	t.Helper()
	snap, err := e.s.Snapshot(context.Background(), e.job)
	require.NoError(t, err)
	return snap.Status
}

func ackAll(l *store.Lease) store.Settlement {
	return store.Settlement{Token: l.Token, All: true, AckCount: len(l.Items), Started: -1}
}

// startRedis starts a redis-server of the test's own with extra config
// and returns its URL.
func startRedis(t *testing.T, args ...string) string {
	t.Helper()
	redistest.Available(t)
	srv, err := redistest.Start("", args...)
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	return srv.URL()
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
