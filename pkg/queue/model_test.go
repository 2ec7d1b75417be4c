package queue_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/workq/workq/pkg/jobstate"
	"github.com/workq/workq/pkg/queue"
)

// TestModel checks the engine against a plain in-memory model of one Job:
// random sequences of push, lease, ack, nack, release, heartbeat, clock
// moves past leases and retries, seal, reap, crashes (a worker abandons its
// leases and comes back under a new id) and late acks of abandoned leases.
// After every step the Job's status must equal the model's counts, and every
// answer (items and attempts leased, acks counted or refused, lost leases,
// wait reasons and hints) must be the one the model predicts.
//
// On miniredis the model owns the clock (SetTime) and predicts exactly. On
// a real redis-server time is real: leases are short, the model knows each
// time only within the span of the call that read it, and before a call it
// waits until no lease expiry, retry or heartbeat deadline is close enough
// to make the answer uncertain; cases are shorter there.
func TestModel(t *testing.T) {
	t.Parallel()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		start := time.UnixMilli(time.Now().UnixMilli())
		m.SetTime(start)
		c := queue.New(redis.NewClient(&redis.Options{Addr: m.Addr()}))
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Ping(context.Background()))
		cfg := modelConfig{
			mini: m, now: start.UnixMilli(), maxSteps: 25,
			spec: jobstate.Spec{BatchSize: 3, Lease: jobstate.Duration(time.Second), MaxAttempts: 4,
				RetryBackoff: jobstate.Duration(100 * time.Millisecond), RetryBackoffMax: jobstate.Duration(400 * time.Millisecond)},
		}
		var st modelStats
		rapid.Check(t, func(rt *rapid.T) { runModel(rt, c, &cfg, &st) })
		st.log(t, true)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		c := realClient(t)
		cfg := modelConfig{
			maxSteps: 12, maxSleeps: 1, margin: 25,
			// Retries of nacked items are far in the future on real Redis
			// (miniredis covers backoff); expired leases come back at once.
			spec: jobstate.Spec{BatchSize: 3, Lease: jobstate.Duration(jobstate.MinLease), MaxAttempts: 2,
				RetryBackoff: jobstate.Duration(time.Hour), RetryBackoffMax: jobstate.Duration(time.Hour)},
		}
		var st modelStats
		rapid.Check(t, func(rt *rapid.T) { runModel(rt, c, &cfg, &st) })
		st.log(t, false) // too few steps to insist on every kind of event
	})
}

type modelConfig struct {
	spec      jobstate.Spec        // BatchSize and MaxAttempts are the largest drawn
	mini      *miniredis.Miniredis // nil: real Redis
	now       int64                // miniredis: the clock, in ms
	maxSteps  int
	maxSleeps int   // real Redis: clock moves per case
	margin    int64 // real Redis: ms kept between a call and any deadline
}

// modelStats counts what the cases exercised, so a run that never reached
// the interesting states shows it.
type modelStats struct {
	mu                                            sync.Mutex
	cases, steps, acked, refused, dead, takeovers int
	lost, drained, lateAcks, reaped, retried      int
}

func (s *modelStats) log(t *testing.T, strict bool) {
	t.Logf("%d cases, %d steps: %d acked, %d refused, %d retries leased, %d dead, %d takeovers, %d lost leases seen by heartbeats, %d drained, %d late acks, %d workers reaped",
		s.cases, s.steps, s.acked, s.refused, s.retried, s.dead, s.takeovers, s.lost, s.drained, s.lateAcks, s.reaped)
	if !strict {
		return
	}
	require.Positive(t, s.acked)
	require.Positive(t, s.refused, "stale settles were exercised")
	require.Positive(t, s.takeovers, "expired leases were exercised")
	require.Positive(t, s.drained, "drains were exercised")
}

// span is a server time in ms known to lie within [lo, hi].
type span struct{ lo, hi int64 }

func (s span) add(d int64) span { return span{s.lo + d, s.hi + d} }

type mLease struct {
	token  string
	worker string // "" once its worker crashed
	exp    span
	items  map[int64]int // id -> attempt, still in the lease
	issued []int64       // every id the lease handed out
}

type mRetry struct {
	att   int
	ready span
	now   bool // ready at the "now" of the call that made it (reclaim, release)
}

type mDead struct {
	att int
	err string
}

type jobModel struct {
	rt  *rapid.T
	c   *queue.Client
	cfg *modelConfig
	job string
	st  *modelStats

	leaseMs, maxAtt, batch, baseMs, capMs int64

	sealed, done, started bool
	pending               int64 // items in the list, not yet given ids
	popped                int64 // ids handed out so far
	lseq                  int64
	leases                map[string]*mLease
	gone                  map[string]*mLease // leases settled or reclaimed
	retry                 map[int64]mRetry
	dead                  map[int64]mDead
	succeeded             int64
	failedAttempts        int64
	takeovers             int64
	workers               map[string]span // heartbeat deadlines
	ended                 map[string]bool
	wfailed               int64
	slots                 []int    // generation of each worker slot
	abandoned             []string // tokens of crashed workers
	sleeps                int
	suspended             bool
}

func runModel(rt *rapid.T, c *queue.Client, cfg *modelConfig, st *modelStats) {
	ctx := context.Background()
	spec := cfg.spec
	spec.BatchSize = rapid.IntRange(1, cfg.spec.BatchSize).Draw(rt, "batchSize")
	spec.MaxAttempts = rapid.IntRange(1, cfg.spec.MaxAttempts).Draw(rt, "maxAttempts")
	spec = spec.WithDefaults()
	m := &jobModel{rt: rt, c: c, cfg: cfg, job: newJobName(), st: st,
		leaseMs: spec.Lease.D().Milliseconds(), maxAtt: int64(spec.MaxAttempts), batch: int64(spec.BatchSize),
		baseMs: spec.RetryBackoff.D().Milliseconds(), capMs: spec.RetryBackoffMax.D().Milliseconds(),
		leases: map[string]*mLease{}, gone: map[string]*mLease{}, retry: map[int64]mRetry{}, dead: map[int64]mDead{},
		workers: map[string]span{}, ended: map[string]bool{}, slots: make([]int, 3)}
	require.NoError(rt, c.Create(ctx, m.job, spec))
	defer func() { _ = c.Delete(ctx, m.job) }()

	actions := map[string]func(){
		"push": m.push, "lease": m.lease, "ack": m.ack, "nack": m.nack, "release": m.release,
		"heartbeat": m.heartbeat, "advance": m.advance, "seal": m.seal, "crash": m.crash,
		"lateAck": m.lateAck, "reap": m.reap, "suspend": m.suspend, "resume": m.resume,
	}
	// Weights: leases and settles dominate.
	names := []string{"push", "push", "lease", "lease", "lease", "ack", "ack", "nack", "nack", "release",
		"heartbeat", "advance", "advance", "seal", "crash", "lateAck", "reap", "suspend", "resume"}
	steps := rapid.IntRange(1, cfg.maxSteps).Draw(rt, "steps")
	m.check()
	for range steps {
		actions[rapid.SampledFrom(names).Draw(rt, "action")]()
		m.check()
	}
	m.finish()
	st.mu.Lock()
	st.cases++
	st.steps += steps
	st.mu.Unlock()
}

func (m *jobModel) count(f func(*modelStats)) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	f(m.st)
}

func wallMs() int64 { return time.Now().UnixMilli() }

// events are every time the model's answers depend on.
func (m *jobModel) events() []span {
	var out []span
	for _, l := range m.leases {
		out = append(out, l.exp)
	}
	for _, r := range m.retry {
		if !r.now {
			out = append(out, r.ready)
		}
	}
	for _, d := range m.workers {
		out = append(out, d)
	}
	return out
}

// call runs one Redis call and returns the span of server time it ran in.
// On real Redis it first waits until no deadline is near.
func (m *jobModel) call(f func()) span {
	if m.cfg.mini != nil {
		f()
		return span{m.cfg.now, m.cfg.now}
	}
	for {
		t := wallMs()
		var wait int64
		for _, e := range m.events() {
			if e.hi >= t-1 && e.lo <= t+m.cfg.margin {
				wait = max(wait, e.hi+2-t)
			}
		}
		if wait == 0 {
			break
		}
		time.Sleep(time.Duration(wait) * time.Millisecond)
	}
	lo := wallMs()
	f()
	return span{lo, wallMs()}
}

// le reports whether time e is at or before the call's now; a call that
// took so long that the answer is uncertain discards the case.
func (m *jobModel) le(e, now span) bool {
	switch {
	case e.hi <= now.lo:
		return true
	case e.lo > now.hi:
		return false
	}
	m.rt.Skipf("a call spanning %dms met a deadline; the model cannot tell its outcome", now.hi-now.lo)
	return false
}

func (m *jobModel) push() {
	k := rapid.IntRange(1, 4).Draw(m.rt, "pushItems")
	batch := make([][]byte, k)
	for i := range batch {
		batch[i] = []byte("p" + strconv.FormatInt(m.popped+m.pending+int64(i), 10))
	}
	var n int64
	var err error
	m.call(func() { n, err = m.c.Push(context.Background(), m.job, batch, queue.PushOptions{}) })
	if m.sealed {
		require.ErrorIs(m.rt, err, queue.ErrSealed)
		require.Zero(m.rt, n)
		return
	}
	require.NoError(m.rt, err)
	require.EqualValues(m.rt, k, n)
	m.pending += int64(k)
}

// reclaim mirrors the scripts' reclaim at time now.
func (m *jobModel) reclaim(now span) (leases, items int) {
	var tokens []string
	for tok, l := range m.leases {
		if m.le(l.exp, now) {
			tokens = append(tokens, tok)
		}
	}
	for _, tok := range tokens {
		l := m.leases[tok]
		for id, att := range l.items {
			if int64(att) >= m.maxAtt {
				m.dead[id] = mDead{att: att, err: "lease expired: the worker holding the item stopped heartbeating"}
				m.count(func(s *modelStats) { s.dead++ })
			} else {
				m.retry[id] = mRetry{att: att, ready: now, now: true}
			}
			items++
		}
		delete(m.leases, tok)
		m.gone[tok] = l
	}
	m.takeovers += int64(len(tokens))
	m.failedAttempts += int64(items)
	return len(tokens), items
}

func (m *jobModel) pickWorker() string {
	slot := rapid.IntRange(0, len(m.slots)-1).Draw(m.rt, "worker")
	return fmt.Sprintf("w%d.%d", slot, m.slots[slot])
}

func retryMember(id int64, att int) string {
	return fmt.Sprintf("%d:%d:p%d", id, att, id)
}

func (m *jobModel) lease() {
	wid := m.pickWorker()
	n := rapid.SampledFrom([]int{0, 1, 2, 5}).Draw(m.rt, "leaseN")
	m.leaseAs(wid, n)
}

// leaseAs leases for worker wid and checks the answer against the model.
// It returns the new lease, or nil and the wake-up hint.
func (m *jobModel) leaseAs(wid string, n int) (*mLease, time.Duration) {
	var res queue.LeaseResult
	var err error
	now := m.call(func() { res, err = m.c.Lease(context.Background(), m.job, wid, n) })
	if m.done {
		require.ErrorIs(m.rt, err, queue.ErrDrained, "a done Job stays done")
		return nil, 0
	}
	m.workers[wid] = now.add(m.leaseMs)
	nLeases, _ := m.reclaim(now)
	m.count(func(s *modelStats) { s.takeovers += nLeases })
	if m.suspended {
		require.NoError(m.rt, err)
		require.Empty(m.rt, res.Batch.Items, "a suspended Job hands out nothing")
		require.Equal(m.rt, "suspended", res.WaitReason)
		m.checkWake(res.WakeIn, now)
		return nil, res.WakeIn
	}
	want := int64(n)
	if want <= 0 {
		want = m.batch
	}

	// Due retries first, in the order of the retry zset: ready time, then
	// member bytes.
	type due struct {
		id     int64
		r      mRetry
		member string
	}
	var dues []due
	for id, r := range m.retry {
		if r.now || m.le(r.ready, now) {
			dues = append(dues, due{id, r, retryMember(id, r.att)})
		}
	}
	sort.Slice(dues, func(i, j int) bool {
		a, b := dues[i], dues[j]
		if a.r.ready.lo != b.r.ready.lo {
			return a.r.ready.lo < b.r.ready.lo
		}
		return a.member < b.member
	})
	nRetry := min(int64(len(dues)), want)
	nNew := min(m.pending, want-nRetry)
	if nRetry+nNew == 0 && m.sealed && m.pending == 0 && len(m.leases) == 0 && len(m.retry) == 0 {
		require.ErrorIs(m.rt, err, queue.ErrDrained, "sealed, nothing pending, leased or retrying")
		m.done = true
		m.count(func(s *modelStats) { s.drained++ })
		return nil, 0
	}
	require.NoError(m.rt, err)
	got := res.Batch.Items
	require.Len(m.rt, got, int(nRetry+nNew), "lease of %d: %d due retries, %d pending", want, len(dues), m.pending)
	if m.cfg.mini != nil || int64(len(dues)) <= want {
		// The order is known exactly on miniredis; on real Redis the set is.
		var wantIDs, gotIDs []int64
		for _, d := range dues[:nRetry] {
			wantIDs = append(wantIDs, d.id)
		}
		for _, it := range got[:nRetry] {
			gotIDs = append(gotIDs, it.ID)
		}
		if m.cfg.mini == nil {
			slices.Sort(wantIDs)
			slices.Sort(gotIDs)
		}
		require.Equal(m.rt, wantIDs, gotIDs, "due retries")
	}
	l := &mLease{items: map[int64]int{}}
	for i, it := range got {
		require.Equal(m.rt, "p"+strconv.FormatInt(it.ID, 10), string(it.Payload), "item %d keeps its payload", it.ID)
		if int64(i) < nRetry {
			r, ok := m.retry[it.ID]
			require.True(m.rt, ok, "item %d is due for a retry", it.ID)
			require.True(m.rt, r.now || m.le(r.ready, now))
			require.Equal(m.rt, r.att+1, it.Attempt, "item %d", it.ID)
			delete(m.retry, it.ID)
			m.count(func(s *modelStats) { s.retried++ })
		} else {
			require.Equal(m.rt, m.popped, it.ID, "pending items are leased in push order")
			require.Equal(m.rt, 1, it.Attempt)
			m.popped++
			m.pending--
		}
		l.items[it.ID] = it.Attempt
		l.issued = append(l.issued, it.ID)
	}
	if len(got) == 0 {
		require.Empty(m.rt, res.Batch.Token)
		wantReason := "peers"
		if !m.sealed {
			wantReason = "unsealed"
		}
		require.Equal(m.rt, wantReason, res.WaitReason)
		m.checkWake(res.WakeIn, now)
		return nil, res.WakeIn
	}
	m.lseq++
	require.Equal(m.rt, strconv.FormatInt(m.lseq, 10), res.Batch.Token, "lease tokens count up per Job")
	exp := res.Batch.Expires.UnixMilli()
	require.True(m.rt, exp >= now.lo+m.leaseMs && exp <= now.hi+m.leaseMs, "lease expires %d, call ran in %v", exp, now)
	l.token, l.worker, l.exp = res.Batch.Token, wid, span{exp, exp}
	m.workers[wid] = l.exp
	m.leases[l.token] = l
	m.started = true
	return l, 0
}

// finish seals the Job and drives it to the drain: every case must be
// able to end (on real Redis, unless nacked items wait for an hour).
func (m *jobModel) finish() {
	if m.suspended {
		m.resume()
		m.check()
	}
	if !m.sealed {
		m.seal()
		m.check()
	}
	for i := 0; !m.done; i++ {
		require.Less(m.rt, i, 100, "the Job drains")
		if m.cfg.mini == nil {
			for _, r := range m.retry {
				if !r.now && r.ready.lo > wallMs()+time.Second.Milliseconds() {
					return
				}
			}
		}
		l, wake := m.leaseAs("finisher", 0)
		switch {
		case m.done:
		case l != nil:
			m.settle(l, queue.Settlement{Acked: l.issued})
		case m.cfg.mini != nil:
			m.cfg.now += max(wake.Milliseconds(), 1)
			m.cfg.mini.SetTime(time.UnixMilli(m.cfg.now))
		default:
			time.Sleep(wake + time.Millisecond)
		}
		m.check()
	}
}

// checkWake checks a wait hint: the time until the first lease expiry or
// retry, or -1 when there is none.
func (m *jobModel) checkWake(wake time.Duration, now span) {
	var evs []span
	for _, l := range m.leases {
		evs = append(evs, l.exp)
	}
	for _, r := range m.retry {
		evs = append(evs, r.ready)
	}
	if len(evs) == 0 {
		require.Equal(m.rt, time.Duration(-1), wake, "no lease or retry: no wake-up is known")
		return
	}
	lo, hi := int64(math.MaxInt64), int64(math.MaxInt64)
	for _, e := range evs {
		lo, hi = min(lo, e.lo), min(hi, e.hi)
	}
	ms := wake.Milliseconds()
	require.GreaterOrEqual(m.rt, ms, max(0, lo-now.hi), "wake-up hint")
	require.LessOrEqual(m.rt, ms, max(0, hi-now.lo), "wake-up hint")
}

// pickHeld picks a lease held by a live worker, with some of the ids it
// issued (settled ones included, for refusals).
func (m *jobModel) pickHeld() (*mLease, []int64, bool) {
	var toks []string
	for tok, l := range m.leases {
		if l.worker != "" {
			toks = append(toks, tok)
		}
	}
	// Leases a worker held that ended (settled, or expired and taken
	// over) are still in its hands: settling them again must be refused.
	for tok, l := range m.gone {
		if l.worker != "" {
			toks = append(toks, tok)
		}
	}
	if len(toks) == 0 {
		return nil, nil, false
	}
	slices.Sort(toks)
	tok := rapid.SampledFrom(toks).Draw(m.rt, "token")
	l := m.leases[tok]
	if l == nil {
		l = m.gone[tok]
	}
	ids := rapid.SliceOfNDistinct(rapid.SampledFrom(l.issued), 1, len(l.issued), func(id int64) int64 { return id }).Draw(m.rt, "ids")
	return l, ids, true
}

// settle sends one settlement and checks it against the model.
func (m *jobModel) settle(l *mLease, s queue.Settlement) queue.SettleResult {
	s.Token = l.token
	var res queue.SettleResult
	var err error
	now := m.call(func() { res, err = m.c.Settle(context.Background(), m.job, []queue.Settlement{s}) })
	require.NoError(m.rt, err)
	var want queue.SettleResult
	cur := m.leases[l.token]
	if cur == nil {
		want.Refused = len(s.Acked) + len(s.Failed) + len(s.Released)
	} else {
		for _, id := range s.Acked {
			if _, ok := cur.items[id]; ok {
				delete(cur.items, id)
				want.Acked++
				m.succeeded++
			} else {
				want.Refused++
			}
		}
		for _, f := range s.Failed {
			att, ok := cur.items[f.ID]
			if !ok {
				want.Refused++
				continue
			}
			delete(cur.items, f.ID)
			want.Failed++
			if int64(att) >= m.maxAtt {
				m.dead[f.ID] = mDead{att: att, err: f.Err}
				m.count(func(s *modelStats) { s.dead++ })
				continue
			}
			d := m.baseMs
			for range att - 1 {
				if d >= m.capMs {
					break
				}
				d *= 2
			}
			d = min(d, m.capMs)
			fd := float64(d)
			delay := int64(math.Floor(fd/2 + f.Jitter*fd/2))
			m.retry[f.ID] = mRetry{att: att, ready: now.add(delay)}
		}
		for _, id := range s.Released {
			att, ok := cur.items[id]
			if !ok {
				want.Refused++
				continue
			}
			delete(cur.items, id)
			want.Released++
			m.retry[id] = mRetry{att: att - 1, ready: now, now: true}
		}
		m.failedAttempts += int64(want.Failed)
		if len(cur.items) == 0 {
			delete(m.leases, l.token)
			m.gone[l.token] = l
		}
	}
	require.Equal(m.rt, want, res, "settle %+v", s)
	m.count(func(st *modelStats) { st.acked += res.Acked; st.refused += res.Refused })
	return res
}

func (m *jobModel) ack() {
	l, ids, ok := m.pickHeld()
	if !ok {
		return
	}
	m.settle(l, queue.Settlement{Acked: ids})
}

func (m *jobModel) nack() {
	l, ids, ok := m.pickHeld()
	if !ok {
		return
	}
	var fs []queue.Failure
	for _, id := range ids {
		fs = append(fs, queue.Failure{ID: id, Err: fmt.Sprintf("exit status 1: item %d: bad", id),
			Jitter: rapid.SampledFrom([]float64{0, 0.25, 0.5, 0.9999}).Draw(m.rt, "jitter")})
	}
	m.settle(l, queue.Settlement{Failed: fs})
}

func (m *jobModel) release() {
	l, ids, ok := m.pickHeld()
	if !ok {
		return
	}
	m.settle(l, queue.Settlement{Released: ids})
}

func (m *jobModel) heldBy(wid string) []string {
	var toks []string
	for tok, l := range m.leases {
		if l.worker == wid {
			toks = append(toks, tok)
		}
	}
	for tok, l := range m.gone {
		if l.worker == wid {
			toks = append(toks, tok)
		}
	}
	slices.SortFunc(toks, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b)) })
	return toks
}

func (m *jobModel) heartbeat() {
	wid := m.pickWorker()
	toks := m.heldBy(wid)
	var hb queue.HeartbeatResult
	var err error
	now := m.call(func() { hb, err = m.c.Heartbeat(context.Background(), m.job, wid, toks) })
	require.NoError(m.rt, err)
	_, registered := m.workers[wid]
	require.Equal(m.rt, !registered, hb.Rejoined)
	require.Equal(m.rt, m.done, hb.Done)
	require.Empty(m.rt, hb.Phase)
	require.Equal(m.rt, m.suspended, hb.Suspended)
	m.workers[wid] = now.add(m.leaseMs)
	var lost []string
	for _, tok := range toks {
		if l := m.leases[tok]; l != nil {
			l.exp = now.add(m.leaseMs)
		} else {
			lost = append(lost, tok)
		}
	}
	require.Equal(m.rt, lost, hb.Lost, "the leases that are gone")
	m.count(func(s *modelStats) { s.lost += len(lost) })
}

// advance moves time: past a lease, a retry or a heartbeat deadline, or
// exactly onto one, so that the boundaries are hit.
func (m *jobModel) advance() {
	if m.cfg.mini == nil {
		if m.sleeps >= m.cfg.maxSleeps || len(m.leases) == 0 {
			return
		}
		m.sleeps++
		var until int64
		for _, l := range m.leases {
			until = max(until, l.exp.hi+1)
		}
		time.Sleep(time.Duration(until-wallMs()) * time.Millisecond)
		return
	}
	// The deadline that comes next, exactly or 1ms short of it, or a
	// random step.
	next := int64(math.MaxInt64)
	for _, e := range m.events() {
		if e.lo > m.cfg.now {
			next = min(next, e.lo)
		}
	}
	d := int64(rapid.IntRange(1, int(2*m.leaseMs)).Draw(m.rt, "advanceMs"))
	if next != math.MaxInt64 {
		switch rapid.IntRange(0, 2).Draw(m.rt, "advanceMode") {
		case 0:
			d = next - m.cfg.now
		case 1:
			d = max(1, next-m.cfg.now-1)
		}
	}
	m.cfg.now += d
	m.cfg.mini.SetTime(time.UnixMilli(m.cfg.now))
}

// suspend and resume: only a change of state reports true.
func (m *jobModel) suspend() {
	var changed bool
	var err error
	m.call(func() { changed, err = m.c.Suspend(context.Background(), m.job) })
	require.NoError(m.rt, err)
	require.Equal(m.rt, !m.suspended, changed)
	m.suspended = true
}

func (m *jobModel) resume() {
	var changed bool
	var err error
	m.call(func() { changed, err = m.c.Resume(context.Background(), m.job) })
	require.NoError(m.rt, err)
	require.Equal(m.rt, m.suspended, changed)
	m.suspended = false
}

func (m *jobModel) seal() {
	var err error
	m.call(func() { err = m.c.Seal(context.Background(), m.job) })
	require.NoError(m.rt, err)
	m.sealed = true
}

// crash: the worker of a slot dies holding its leases and a new process
// takes the slot under a new id.
func (m *jobModel) crash() {
	slot := rapid.IntRange(0, len(m.slots)-1).Draw(m.rt, "crashSlot")
	wid := fmt.Sprintf("w%d.%d", slot, m.slots[slot])
	for tok, l := range m.leases {
		if l.worker == wid {
			l.worker = ""
			m.abandoned = append(m.abandoned, tok)
		}
	}
	for _, l := range m.gone {
		if l.worker == wid {
			l.worker = ""
		}
	}
	m.slots[slot]++
}

// lateAck: a crashed worker was only paused; it acks what it held. That
// counts only if nobody took the lease over meanwhile.
func (m *jobModel) lateAck() {
	if len(m.abandoned) == 0 {
		return
	}
	i := rapid.IntRange(0, len(m.abandoned)-1).Draw(m.rt, "abandoned")
	tok := m.abandoned[i]
	m.abandoned = slices.Delete(m.abandoned, i, i+1)
	l := m.leases[tok]
	if l == nil {
		l = m.gone[tok]
	}
	m.settle(l, queue.Settlement{Acked: l.issued})
	m.count(func(s *modelStats) { s.lateAcks++ })
}

func (m *jobModel) reap() {
	var res queue.ReapResult
	var err error
	now := m.call(func() { res, err = m.c.Reap(context.Background(), m.job) })
	require.NoError(m.rt, err)
	lost := 0
	for w, d := range m.workers {
		if m.le(d, now) {
			delete(m.workers, w)
			if !m.ended[w] {
				m.ended[w] = true
				lost++
			}
		}
	}
	m.wfailed += int64(lost)
	nl, ni := m.reclaim(now)
	require.Equal(m.rt, queue.ReapResult{WorkersLost: lost, LeasesReclaimed: nl, ItemsReclaimed: ni}, res)
	m.count(func(s *modelStats) { s.reaped += lost; s.takeovers += nl })
}

// check compares the Job's status with the model.
func (m *jobModel) check() {
	var st jobstate.Status
	var err error
	now := m.call(func() { st, err = m.c.Status(context.Background(), m.job) })
	require.NoError(m.rt, err)
	var leased int64
	for _, l := range m.leases {
		leased += int64(len(l.items))
	}
	ready := int64(0)
	for _, d := range m.workers {
		if !m.le(d, span{now.lo - 1, now.hi - 1}) { // deadline >= now
			ready++
		}
	}
	phase := jobstate.PhasePending
	switch {
	case m.suspended:
		phase = jobstate.PhaseSuspended
	case m.started:
		phase = jobstate.PhaseRunning
	}
	want := jobstate.Items{
		Total: m.popped + m.pending, Pending: m.pending, Leased: leased, Retrying: int64(len(m.retry)),
		Succeeded: m.succeeded, Dead: int64(len(m.dead)), FailedAttempts: m.failedAttempts, Takeovers: m.takeovers,
	}
	require.Equal(m.rt, want, st.Items)
	require.EqualValues(m.rt, len(m.leases), st.Leases)
	require.Equal(m.rt, m.sealed, st.Sealed)
	require.Equal(m.rt, m.suspended, st.Suspended)
	require.Equal(m.rt, m.done, st.Done)
	require.Equal(m.rt, phase, st.Phase)
	require.EqualValues(m.rt, len(m.workers), st.Active)
	require.Equal(m.rt, ready, st.Ready)
	require.Equal(m.rt, m.wfailed, st.Failed)
	if len(m.dead) > 0 {
		dead, err := m.c.Dead(context.Background(), m.job, 0)
		require.NoError(m.rt, err)
		require.Len(m.rt, dead, len(m.dead))
		for _, d := range dead {
			w := m.dead[d.ID]
			require.Equal(m.rt, queue.DeadItem{ID: d.ID, Attempts: w.att, LastError: w.err,
				Payload: []byte("p" + strconv.FormatInt(d.ID, 10)), Item: "p" + strconv.FormatInt(d.ID, 10)}, d)
		}
	}
	// Every item is in exactly one place.
	where := map[int64]string{}
	put := func(id int64, place string) {
		if p, ok := where[id]; ok {
			m.rt.Fatalf("model: item %d is both %s and %s", id, p, place)
		}
		where[id] = place
	}
	for _, l := range m.leases {
		for id := range l.items {
			put(id, "leased")
		}
	}
	for id := range m.retry {
		put(id, "retrying")
	}
	for id := range m.dead {
		put(id, "dead")
	}
	require.Equal(m.rt, m.popped, int64(len(where))+m.succeeded, "every item handed out is leased, retrying, dead or succeeded")
}

// TestRetryBackoffMatchesSpecBackoff checks the Lua retry delay against
// its Go model, jobstate.Spec.Backoff, attempt by attempt: doubling, the
// cap and the jitter.
func TestRetryBackoffMatchesSpecBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backends(t, func(t *testing.T, e *env) {
		spec := jobstate.Spec{MaxAttempts: 6, Lease: jobstate.Duration(time.Hour),
			RetryBackoff: jobstate.Duration(100 * time.Millisecond), RetryBackoffMax: jobstate.Duration(700 * time.Millisecond)}.WithDefaults()
		require.NoError(t, e.c.Create(ctx, e.job, spec))
		_, err := e.c.Push(ctx, e.job, items(1), queue.PushOptions{})
		require.NoError(t, err)
		jitters := []float64{0, 0.5, 0.9999, 0.25, 0.75}
		for attempt := 1; attempt < spec.MaxAttempts; attempt++ {
			r, err := e.c.Lease(ctx, e.job, "w", 0)
			require.NoError(t, err)
			require.Len(t, r.Batch.Items, 1)
			require.Equal(t, attempt, r.Batch.Items[0].Attempt)
			jitter := jitters[attempt-1]
			_, err = e.c.Nack(ctx, e.job, r.Batch.Token, queue.Failure{ID: 0, Err: "x", Jitter: jitter})
			require.NoError(t, err)
			w, err := e.c.Lease(ctx, e.job, "w", 0)
			require.NoError(t, err)
			require.Empty(t, w.Batch.Items, "attempt %d waits for its backoff", attempt)
			want := spec.Backoff(attempt, jitter)
			if e.mini != nil {
				require.Equal(t, want.Truncate(time.Millisecond), w.WakeIn, "attempt %d, jitter %v", attempt, jitter)
			} else {
				// The clock moved between the nack and the lease.
				require.InDelta(t, want.Milliseconds(), w.WakeIn.Milliseconds(), 25, "attempt %d, jitter %v", attempt, jitter)
			}
			e.sleep(t, w.WakeIn+time.Millisecond)
		}
		dead, err := e.c.Dead(ctx, e.job, 0)
		require.NoError(t, err)
		require.Empty(t, dead)
	})
}
