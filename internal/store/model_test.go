package store_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/workq/workq/internal/controller"
	"github.com/workq/workq/internal/store"
	"github.com/workq/workq/internal/testkit"
	"github.com/workq/workq/pkg/jobstate"
)

// The model-based test: random sequences of the store's calls (push,
// register, lease, settle with acks, failures, hand-backs and starts, a
// settle sent again, heartbeats that extend leases, time passing, reap,
// seal, crashed workers, retry of dead items, the controller's reconcile)
// run against the store and against a small in-memory model of one Job (a
// work-queue Job, or an Indexed Job of up to 12 indexes), written from the
// rules in docs/ARCHITECTURE.md and the scripts' headers, not from the
// store's code. After every step the store's counters, dead items, phase
// and completed indexes must equal the model's.

// TestModel runs the model on miniredis, whose clock the test moves (leases
// expire, retries come due, Redis stalls), and on a real redis-server,
// where every lease and backoff is an hour long so that no time passes for
// the model.
func TestModel(t *testing.T) {
	t.Parallel()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		s, mini := testkit.MiniStore(t, time.UnixMilli(1_700_000_000_000))
		rapid.Check(t, func(rt *rapid.T) {
			// Each check has a Job of its own; the clock only moves on.
			now, err := s.Now(context.Background())
			require.NoError(rt, err)
			h := newHarness(rt, s, now.UnixMilli(), false)
			h.setTime = func(ms int64) { mini.SetTime(time.UnixMilli(ms)) }
			h.run(rapid.IntRange(10, 150).Draw(rt, "steps"))
		})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		s := testkit.RealStore(t)
		rapid.Check(t, func(rt *rapid.T) {
			h := newHarness(rt, s, 0, true)
			h.run(rapid.IntRange(10, 60).Draw(rt, "steps"))
		})
	})
}

// The states of an item in the model.
type itemState int

const (
	inPending itemState = iota
	inReturned
	inLease
	inRetry
	inSucceeded
	inDead
)

func (s itemState) String() string {
	return [...]string{"pending", "returned", "leased", "retrying", "succeeded", "dead"}[s]
}

type mItem struct {
	id      int64
	payload string
	state   itemState
	used    int    // attempts used: returned, retrying, dead
	att     int    // the attempt running, while leased
	token   string // its lease, while leased
	retryAt int64  // when it may run again, while retrying
	// score is its score in Redis's retry set: retryAt, except for items
	// put back by retry-dead on a real Redis, whose clock moves while the
	// model's stands still: there it is the server's time of that call,
	// read back from Redis, since it orders items put back by different
	// calls.
	score int64
}

type mLease struct {
	token   string
	ids     []int64 // in lease order
	expires int64
	started int
}

type mWorker struct {
	id        string
	session   string
	leaseSeq  int64
	settleSeq int64
	// held is what the worker believes it holds: lease token -> item ids.
	held    map[string][]int64
	drained bool // a lease or register said DONE
	gone    bool // crashed or finished: it makes no more calls
	last    *store.SettleRequest
	lastRes store.SettleResult
}

func (w *mWorker) tokens() []string {
	out := make([]string, 0, len(w.held))
	for t := range w.held {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// model is the Job as the rules describe it.
type model struct {
	real        bool // on a real Redis: no time passes for the model
	indexed     bool // a fixed completion count Job: its items are the indexes
	leaseMs     int64
	maxAtt      int
	batch       int
	backoffLim  int64
	retryBaseMs int64
	retryMaxMs  int64

	now     int64
	seen    int64
	hasSeen bool

	items    []*mItem // by id
	pending  []int64
	returned []int64
	leases   map[string]*mLease
	lost     map[string]int64 // tokens taken over -> when
	workers  map[string]int64 // registered -> heartbeat deadline
	wended   map[string]string

	sealed, done          bool
	phase                 jobstate.Phase
	started               bool
	popped                int64
	takeovers, failedAtts int64
	wsucceeded, wfailed   int64
	lastFence             int64
}

func (m *model) stopping() bool { return m.phase != "" }
func (m *model) failing() bool {
	return m.phase == jobstate.PhaseFailing || m.phase == jobstate.PhaseFailed
}

// touch is a call that notices a silence of Redis: past half a lease since
// the last such call, every lease and heartbeat deadline moves by the
// silence beyond that half.
func (m *model) touch() {
	if !m.real && m.hasSeen {
		if d := m.now - m.seen - m.leaseMs/2; d > 0 {
			for _, l := range m.leases {
				l.expires += d
			}
			for w := range m.workers {
				m.workers[w] += d
			}
		}
	}
	m.seen, m.hasSeen = m.now, true
}

func (m *model) live() int64 {
	var n int64
	for _, d := range m.workers {
		if d >= m.now {
			n++
		}
	}
	return n
}

func (m *model) byState(s itemState) []*mItem {
	var out []*mItem
	for _, it := range m.items {
		if it.state == s {
			out = append(out, it)
		}
	}
	return out
}

func retryMember(it *mItem) string { return fmt.Sprintf("%d:%d:%s", it.id, it.used, it.payload) }

// dueRetries are the retrying items due now, in the order Redis's sorted
// set gives them: by time, then by member bytes.
func (m *model) dueRetries() []*mItem {
	var due []*mItem
	for _, it := range m.byState(inRetry) {
		if it.retryAt <= m.now {
			due = append(due, it)
		}
	}
	slices.SortFunc(due, func(a, b *mItem) int {
		return cmp.Or(cmp.Compare(a.retryAt, b.retryAt), cmp.Compare(a.score, b.score), cmp.Compare(retryMember(a), retryMember(b)))
	})
	return due
}

func (m *model) remaining() int64 {
	return int64(len(m.returned) + len(m.pending) + len(m.dueRetries()))
}

func (m *model) backoff(att int, jitter float64) int64 {
	d := m.retryBaseMs
	for i := 2; i <= att && d < m.retryMaxMs; i++ {
		d *= 2
	}
	d = min(d, m.retryMaxMs)
	return int64(math.Floor(float64(d)/2 + jitter*float64(d)/2))
}

// fail records a failed run: dead after the last attempt, else retried
// after delay. It reports whether the item died.
func (m *model) fail(it *mItem, delay int64) bool {
	it.token = ""
	it.used = it.att
	if it.att >= m.maxAtt {
		it.state = inDead
		return true
	}
	it.state, it.retryAt = inRetry, m.now+delay
	it.score = it.retryAt
	return false
}

func (m *model) giveBack(it *mItem) {
	it.state, it.token, it.used = inReturned, "", it.att-1
	m.returned = append(m.returned, it.id)
}

// reclaim takes over expired leases, at most 100 per call and about 1000
// items: started items use an attempt, the others go back.
func (m *model) reclaim() (leases, items int) {
	var expired []*mLease
	for _, l := range m.leases {
		if l.expires <= m.now {
			expired = append(expired, l)
		}
	}
	slices.SortFunc(expired, func(a, b *mLease) int {
		return cmp.Or(cmp.Compare(a.expires, b.expires), cmp.Compare(a.token, b.token))
	})
	charged := 0
	for i, l := range expired {
		if i >= 100 || items >= 1000 {
			break
		}
		for k, id := range l.ids {
			it := m.items[id]
			if k < l.started {
				charged++
				m.fail(it, 0)
			} else {
				m.giveBack(it)
			}
		}
		items += len(l.ids)
		delete(m.leases, l.token)
		m.lost[l.token] = m.now
		leases++
	}
	m.takeovers += int64(leases)
	m.failedAtts += int64(charged)
	return leases, items
}

// harness drives the store and the model side by side.
type harness struct {
	t       *rapid.T
	ctx     context.Context
	s       *store.Store
	rc      *controller.Reconciler
	job     string
	uid     string
	m       *model
	setTime func(ms int64)
	workers []*mWorker
}

func newHarness(t *rapid.T, s *store.Store, now int64, real bool) *harness {
	m := &model{
		real:       real,
		maxAtt:     rapid.IntRange(1, 3).Draw(t, "maxAttempts"),
		batch:      rapid.IntRange(1, 5).Draw(t, "batchSize"),
		backoffLim: int64(rapid.IntRange(0, 4).Draw(t, "backoffLimit")),
		now:        now,
		leases:     map[string]*mLease{},
		lost:       map[string]int64{},
		workers:    map[string]int64{},
		wended:     map[string]string{},
	}
	lease, retry, retryMax := time.Second, 200*time.Millisecond, 800*time.Millisecond
	if real {
		lease, retry, retryMax = time.Hour, time.Hour, 2*time.Hour
	}
	m.leaseMs, m.retryBaseMs, m.retryMaxMs = lease.Milliseconds(), retry.Milliseconds(), retryMax.Milliseconds()
	h := &harness{t: t, ctx: context.Background(), s: s, m: m, job: testkit.UniqueName("model"),
		rc: &controller.Reconciler{S: s, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	spec := jobstate.Spec{
		BatchSize: m.batch, Lease: jobstate.Duration(lease), MaxAttempts: m.maxAtt,
		BackoffLimit: jobstate.Ptr(int(m.backoffLim)), RetryBackoff: jobstate.Duration(retry),
		RetryBackoffMax: jobstate.Duration(retryMax),
	}
	if m.indexed = rapid.Bool().Draw(t, "indexed"); m.indexed {
		// An Indexed Job is sealed from the start; its items are the
		// indexes 0..k-1, leased in order after handed-back and retried
		// ones, each with its index as payload.
		k := rapid.IntRange(1, 12).Draw(t, "completions")
		spec.Completions = jobstate.Ptr(k)
		m.sealed = true
		for id := range int64(k) {
			m.items = append(m.items, &mItem{id: id, payload: strconv.FormatInt(id, 10), state: inPending})
			m.pending = append(m.pending, id)
		}
	}
	uid, err := s.Create(h.ctx, h.job, spec)
	require.NoError(t, err)
	h.uid = uid
	return h
}

// alive are the workers that still make calls.
func (h *harness) alive() []*mWorker {
	var out []*mWorker
	for _, w := range h.workers {
		if !w.gone {
			out = append(out, w)
		}
	}
	return out
}

// withHeld are the live workers that hold (or believe they hold) a lease.
func (h *harness) withHeld() []*mWorker {
	var out []*mWorker
	for _, w := range h.alive() {
		if len(w.held) > 0 {
			out = append(out, w)
		}
	}
	return out
}

func (h *harness) run(steps int) {
	type action struct {
		name   string
		weight int
		ok     func() bool
		do     func()
	}
	always := func() bool { return true }
	actions := []action{
		{"push", 2, always, h.push},
		{"register", 1, always, h.register},
		{"lease", 4, func() bool { return len(h.alive()) > 0 }, h.lease},
		{"settle", 5, func() bool { return len(h.withHeld()) > 0 }, h.settle},
		{"resend", 1, func() bool { return len(h.alive()) > 0 }, h.resend},
		{"release", 1, func() bool { return len(h.alive()) > 0 }, h.release},
		{"extend", 2, func() bool { return len(h.alive()) > 0 }, h.extend},
		{"tick", 2, func() bool { return !h.m.real }, h.tick},
		{"reap", 1, always, h.reap},
		{"seal", 1, always, h.seal},
		{"crash", 1, func() bool { return len(h.alive()) > 0 }, h.crash},
		{"finish", 1, func() bool { return len(h.alive()) > 0 }, h.finish},
		{"retrydead", 1, always, h.retryDead},
		{"reconcile", 1, always, h.reconcile},
	}
	h.check()
	for range steps {
		var ok []action
		for _, a := range actions {
			if a.ok() {
				for range a.weight {
					ok = append(ok, a)
				}
			}
		}
		a := rapid.SampledFrom(ok).Draw(h.t, "action")
		a.do()
		h.check()
	}
}

func (h *harness) pick(ws []*mWorker) *mWorker { return rapid.SampledFrom(ws).Draw(h.t, "worker") }

var payloadTails = []string{"", "", "", ":x:", "\n", "a\nb", "|", ",\x00"}

func (h *harness) push() {
	m := h.m
	n := rapid.IntRange(1, 6).Draw(h.t, "items")
	var batch [][]byte
	var add []*mItem
	for i := range n {
		id := int64(len(m.items) + i)
		p := "p" + strconv.FormatInt(id, 10) + rapid.SampledFrom(payloadTails).Draw(h.t, "tail")
		batch = append(batch, []byte(p))
		add = append(add, &mItem{id: id, payload: p, state: inPending})
	}
	got, err := h.s.Push(h.ctx, h.job, h.uid, batch, store.PushOptions{})
	switch {
	case m.sealed:
		require.ErrorIs(h.t, err, store.ErrSealed)
		require.Zero(h.t, got)
	case m.stopping():
		require.ErrorIs(h.t, err, store.ErrFinished)
		require.Zero(h.t, got)
	default:
		require.NoError(h.t, err)
		require.EqualValues(h.t, n, got)
		m.items = append(m.items, add...)
		for _, it := range add {
			m.pending = append(m.pending, it.id)
		}
	}
}

// refused checks the error of a call that a failing Job refuses with
// ErrJobFailed and a stopping or drained one with ErrDrained, and reports
// whether the Job is in either state.
func (h *harness) refused(err error) bool {
	m := h.m
	switch {
	case m.failing():
		require.ErrorIs(h.t, err, store.ErrJobFailed)
		return true
	case m.stopping() || m.done:
		require.ErrorIs(h.t, err, store.ErrDrained)
		return true
	}
	return false
}

func (h *harness) register() {
	m := h.m
	wid := fmt.Sprintf("w%d", len(h.workers))
	reg, err := h.s.Register(h.ctx, h.job, h.uid, wid, []byte(`{}`))
	if h.refused(err) {
		return
	}
	require.NoError(h.t, err)
	require.Equal(h.t, h.uid, reg.UID)
	m.touch()
	m.workers[wid] = m.now + m.leaseMs
	h.workers = append(h.workers, &mWorker{id: wid, session: reg.Session, held: map[string][]int64{}})
}

func (h *harness) lease() {
	m := h.m
	w := h.pick(h.alive())
	want := rapid.IntRange(1, 6).Draw(h.t, "want")
	w.leaseSeq++
	token := w.session + "." + strconv.FormatInt(w.leaseSeq, 10)
	r, err := h.s.Lease(h.ctx, h.job, store.LeaseRequest{UID: h.uid, Session: w.session, Worker: w.id, Seq: w.leaseSeq, Want: want})
	if h.refused(err) {
		if !m.failing() {
			w.drained = true
		}
		return
	}
	m.touch()
	m.workers[w.id] = m.now + m.leaseMs
	m.reclaim()
	n := max(1, min(want, m.batch))
	if n > 1 && len(m.pending) < n*len(m.workers) {
		live, left := max(m.live(), 1), m.remaining()
		n = max(1, min(n, int((left+live-1)/live)))
	}
	var got []*mItem
	for len(got) < n && len(m.returned) > 0 {
		it := m.items[m.returned[0]]
		m.returned = m.returned[1:]
		it.att = it.used + 1
		got = append(got, it)
	}
	for _, it := range m.dueRetries() {
		if len(got) == n {
			break
		}
		it.att = it.used + 1
		got = append(got, it)
	}
	for len(got) < n && len(m.pending) > 0 {
		it := m.items[m.pending[0]]
		m.pending = m.pending[1:]
		m.popped++
		it.att = 1
		got = append(got, it)
	}
	if len(got) == 0 {
		left := m.remaining()
		if m.sealed && left == 0 && len(m.leases) == 0 && len(m.byState(inRetry)) == 0 {
			require.ErrorIs(h.t, err, store.ErrDrained, "a sealed Job with nothing left is drained")
			m.done, w.drained = true, true
			return
		}
		require.NoError(h.t, err)
		require.Nil(h.t, r.Lease, "nothing to lease, yet a lease")
		want := "peers"
		if !m.sealed {
			want = "unsealed"
		}
		require.Equal(h.t, want, r.Wait)
		return
	}
	require.NoError(h.t, err)
	require.NotNil(h.t, r.Lease, "a lease of %d items expected, got %+v", len(got), r)
	l := r.Lease
	require.Equal(h.t, token, l.Token)
	require.Len(h.t, l.Items, len(got), "items of lease %s", token)
	ml := &mLease{token: token, expires: m.now + m.leaseMs}
	for i, it := range got {
		require.Equal(h.t, it.id, l.Items[i].ID, "item %d of lease %s", i, token)
		require.Equal(h.t, it.att, l.Items[i].Attempt, "attempt of item %d", it.id)
		require.Equal(h.t, it.payload, string(l.Items[i].Payload), "payload of item %d", it.id)
		require.LessOrEqual(h.t, l.Items[i].Attempt, m.maxAtt, "attempts never exceed maxAttempts")
		it.state, it.token = inLease, token
		ml.ids = append(ml.ids, it.id)
	}
	if !m.real {
		require.Equal(h.t, m.now+m.leaseMs, l.Expires.UnixMilli(), "lease expiry")
	}
	require.Greater(h.t, l.Fence, m.lastFence, "fences grow")
	m.lastFence = l.Fence
	m.leases[token] = ml
	m.started = true
	w.held[token] = slices.Clone(ml.ids)
}

// release sends one of a worker's lease calls again (a lost reply): the
// lease it made, as it stands now, or nothing; an older call without a
// lease is refused.
func (h *harness) release() {
	m := h.m
	w := h.pick(h.alive())
	if w.leaseSeq == 0 {
		return
	}
	seq := w.leaseSeq
	if rapid.Bool().Draw(h.t, "older") {
		seq = rapid.Int64Range(1, w.leaseSeq).Draw(h.t, "seq")
	}
	token := w.session + "." + strconv.FormatInt(seq, 10)
	r, err := h.s.Lease(h.ctx, h.job, store.LeaseRequest{UID: h.uid, Session: w.session, Worker: w.id, Seq: seq, Want: 1})
	l, ok := m.leases[token]
	switch {
	case ok:
		require.NoError(h.t, err)
		require.NotNil(h.t, r.Lease, "lease %s again", token)
		require.Equal(h.t, token, r.Lease.Token)
		require.Len(h.t, r.Lease.Items, len(l.ids))
		for i, id := range l.ids {
			it := m.items[id]
			require.Equal(h.t, []any{id, it.att, it.payload},
				[]any{r.Lease.Items[i].ID, r.Lease.Items[i].Attempt, string(r.Lease.Items[i].Payload)}, "item %d of lease %s again", i, token)
		}
		if !m.real {
			require.Equal(h.t, l.expires, r.Lease.Expires.UnixMilli(), "lease expiry")
		}
	case seq == w.leaseSeq:
		require.NoError(h.t, err)
		require.Nil(h.t, r.Lease)
		require.Equal(h.t, "repeat", r.Wait)
	default:
		require.ErrorIs(h.t, err, store.ErrStale)
	}
}

// settle sends outcomes for one or two of a worker's leases: for each item
// an ack, a failure, a hand-back or nothing, sometimes an id that is not
// in the lease, and how many items started.
func (h *harness) settle() {
	w := h.pick(h.withHeld())
	toks := w.tokens()
	chosen := []string{rapid.SampledFrom(toks).Draw(h.t, "token")}
	if len(toks) > 1 && rapid.Bool().Draw(h.t, "second lease") {
		if o := rapid.SampledFrom(toks).Draw(h.t, "token2"); o != chosen[0] {
			chosen = append(chosen, o)
		}
	}
	q := store.SettleRequest{UID: h.uid, Session: w.session}
	for _, tok := range chosen {
		ids := w.held[tok]
		st := store.Settlement{Token: tok, All: rapid.Bool().Draw(h.t, "all"), Started: -1}
		if rapid.Bool().Draw(h.t, "report starts") {
			st.Started = rapid.IntRange(0, len(ids)).Draw(h.t, "started")
		}
		for _, id := range ids {
			switch rapid.IntRange(0, 3).Draw(h.t, "outcome") {
			case 0:
				if !st.All {
					st.Acked = append(st.Acked, id)
				}
			case 1:
				j := rapid.SampledFrom([]float64{0, 0.25, 0.5}).Draw(h.t, "jitter")
				st.Failed = append(st.Failed, store.Failure{ID: id, Action: store.ActionCount, Jitter: j, Err: "boom"})
			case 2:
				st.Released = append(st.Released, id)
			}
		}
		if rapid.IntRange(0, 9).Draw(h.t, "bogus") == 0 {
			st.Acked = append(st.Acked, 1_000_000) // in no lease
		}
		if st.All {
			st.AckCount = len(ids) - len(st.Failed) - len(st.Released)
			st.Acked = nil
		}
		q.Leases = append(q.Leases, st)
	}
	w.settleSeq++
	q.Seq = w.settleSeq
	res, err := h.s.Settle(h.ctx, h.job, q)
	require.NoError(h.t, err)
	want := store.SettleResult{}
	for _, st := range q.Leases {
		h.settleOne(st, &want)
		// The worker forgets what it settled, and a lease it lost.
		if slices.Contains(want.Gone, st.Token) {
			delete(w.held, st.Token)
			continue
		}
		done := map[int64]bool{}
		for _, f := range st.Failed {
			done[f.ID] = true
		}
		for _, id := range st.Released {
			done[id] = true
		}
		for _, id := range st.Acked {
			done[id] = true
		}
		var left []int64
		for _, id := range w.held[st.Token] {
			if !done[id] && !st.All {
				left = append(left, id)
			}
		}
		if len(left) == 0 {
			delete(w.held, st.Token)
		} else {
			w.held[st.Token] = left
		}
	}
	require.Equal(h.t, want, res, "settle %+v", q)
	w.last, w.lastRes = &q, res
}

// settleOne applies one lease's outcomes to the model and adds up the
// reply the store should give.
func (h *harness) settleOne(st store.Settlement, r *store.SettleResult) {
	m := h.m
	l := m.leases[st.Token]
	nA := len(st.Acked)
	if st.All {
		nA = st.AckCount
	}
	if l == nil {
		r.Refused += nA + len(st.Failed) + len(st.Released)
		r.Gone = append(r.Gone, st.Token)
		return
	}
	in := map[int64]bool{}
	for _, id := range l.ids {
		in[id] = true
	}
	out := map[int64]bool{}
	take := func(id int64) bool {
		if !in[id] || out[id] {
			r.Refused++
			return false
		}
		out[id] = true
		return true
	}
	for _, f := range st.Failed {
		if take(f.ID) {
			r.Failed++
			m.failedAtts++
			it := m.items[f.ID]
			if m.fail(it, m.backoff(it.att, f.Jitter)) {
				r.Dead++
			}
		}
	}
	for _, id := range st.Released {
		if take(id) {
			r.Released++
			m.giveBack(m.items[id])
		}
	}
	var acked []int64
	if st.All {
		for _, id := range l.ids {
			if !out[id] {
				out[id] = true
				acked = append(acked, id)
			}
		}
	} else {
		for _, id := range st.Acked {
			if take(id) {
				acked = append(acked, id)
			}
		}
	}
	for _, id := range acked {
		it := m.items[id]
		require.NotEqual(h.t, inSucceeded, it.state, "item %d acked twice", id)
		it.state, it.token = inSucceeded, ""
	}
	r.Acked += len(acked)
	var left []int64
	for _, id := range l.ids {
		if !out[id] {
			left = append(left, id)
		}
	}
	l.ids = left
	if len(left) == 0 {
		delete(m.leases, l.token)
		return
	}
	if st.Started >= 0 {
		l.started = min(st.Started, len(left))
	}
}

// resend sends a worker's last settle again (a lost reply): the same
// reply, nothing changed; or an older one: refused.
func (h *harness) resend() {
	w := h.pick(h.alive())
	if w.last == nil {
		return
	}
	if w.settleSeq > 1 && rapid.Bool().Draw(h.t, "older") {
		q := *w.last
		q.Seq = w.settleSeq - 1
		_, err := h.s.Settle(h.ctx, h.job, q)
		require.ErrorIs(h.t, err, store.ErrStale)
		return
	}
	res, err := h.s.Settle(h.ctx, h.job, *w.last)
	require.NoError(h.t, err)
	require.Equal(h.t, w.lastRes, res, "a settle sent again gets the first reply")
}

// extend is a heartbeat with every lease the worker holds.
func (h *harness) extend() {
	m := h.m
	w := h.pick(h.alive())
	toks := w.tokens()
	r, err := h.s.Heartbeat(h.ctx, h.job, h.uid, w.id, toks)
	require.NoError(h.t, err)
	m.touch()
	rejoined := false
	if !m.stopping() {
		if _, ok := m.workers[w.id]; !ok && m.wended[w.id] == "lost" {
			rejoined = true
			delete(m.wended, w.id)
		}
		m.workers[w.id] = m.now + m.leaseMs
	}
	var lost []string
	for _, tok := range toks {
		if l, ok := m.leases[tok]; ok {
			l.expires = m.now + m.leaseMs
		} else if _, ok := m.lost[tok]; ok {
			lost = append(lost, tok)
		}
	}
	require.Equal(h.t, m.phase, r.Phase)
	require.Equal(h.t, m.done, r.Done)
	require.Equal(h.t, rejoined, r.Rejoined, "rejoined")
	require.Equal(h.t, lost, r.Lost, "leases reported lost")
	for _, tok := range lost {
		delete(w.held, tok)
	}
}

// tick lets time pass: leases and heartbeats expire, retries come due,
// and a long silence is a stall of Redis.
func (h *harness) tick() {
	d := rapid.SampledFrom([]int64{1, 100, 250, 499, 500, 501, 999, 1000, 1001, 1600}).Draw(h.t, "ms")
	h.m.now += d
	h.setTime(h.m.now)
}

func (h *harness) reap() {
	r, err := h.s.Reap(h.ctx, h.job)
	require.NoError(h.t, err)
	require.Equal(h.t, h.modelReap(), r)
}

func (h *harness) modelReap() store.ReapResult {
	m := h.m
	if m.stopping() && m.phase != jobstate.PhaseFailing {
		return store.ReapResult{}
	}
	m.touch()
	var r store.ReapResult
	var expired []string
	for w, d := range m.workers {
		if d <= m.now {
			expired = append(expired, w)
		}
	}
	for _, w := range expired {
		delete(m.workers, w)
		if _, ok := m.wended[w]; !ok {
			m.wended[w] = "lost"
			r.WorkersLost++
		}
	}
	m.wfailed += int64(r.WorkersLost)
	r.LeasesReclaimed, r.ItemsReclaimed = m.reclaim()
	for tok, at := range m.lost {
		if at <= m.now-600_000 {
			delete(m.lost, tok)
		}
	}
	return r
}

func (h *harness) seal() {
	ok, err := h.s.Seal(h.ctx, h.job, h.uid)
	require.NoError(h.t, err)
	require.Equal(h.t, !h.m.sealed, ok, "seal reports whether it sealed")
	h.m.sealed = true
}

// crash abandons a worker: it makes no more calls, its leases expire.
func (h *harness) crash() {
	h.pick(h.alive()).gone = true
}

func (h *harness) finish() {
	m := h.m
	w := h.pick(h.alive())
	outcome := store.OutcomeStopped
	if w.drained {
		outcome = store.OutcomeSucceeded
	} else if rapid.Bool().Draw(h.t, "failed") {
		outcome = store.OutcomeFailed
	}
	ok, err := h.s.Finish(h.ctx, h.job, h.uid, w.id, w.session, outcome)
	require.NoError(h.t, err)
	delete(m.workers, w.id)
	if _, ended := m.wended[w.id]; !ended {
		m.wended[w.id] = outcome
		switch outcome {
		case store.OutcomeSucceeded:
			m.wsucceeded++
		case store.OutcomeFailed:
			m.wfailed++
		}
	}
	require.Equal(h.t, m.wended[w.id] == outcome, ok, "finish reports whether its outcome is the one recorded")
	w.gone = true
}

func (h *harness) retryDead() {
	m := h.m
	n, err := h.s.RetryDead(h.ctx, h.job, false)
	if m.stopping() {
		require.ErrorIs(h.t, err, store.ErrFinished)
		return
	}
	require.NoError(h.t, err)
	dead := m.byState(inDead)
	require.Equal(h.t, len(dead), n, "dead items put back")
	for _, it := range dead {
		it.state, it.used, it.retryAt, it.score = inRetry, 0, m.now, m.now
		if m.real {
			score, err := h.s.Redis().ZScore(h.ctx, store.KeysFor(h.job).Key("retry"), retryMember(it)).Result()
			require.NoError(h.t, err, "item %d is in the retry set", it.id)
			it.score = int64(score)
		}
	}
	if len(dead) > 0 {
		m.done = false
	}
}

// reconcile runs the controller once: it reaps, then moves the Job through
// its phases by the Kubernetes Job rules.
func (h *harness) reconcile() {
	m := h.m
	_, err := h.rc.Reconcile(h.ctx, h.job)
	require.NoError(h.t, err)
	if m.phase == jobstate.PhaseComplete || m.phase == jobstate.PhaseFailed {
		return
	}
	h.modelReap()
	for range 4 {
		dead := int64(len(m.byState(inDead)))
		switch {
		case m.phase == jobstate.PhaseFailing && m.live() == 0:
			m.phase = jobstate.PhaseFailed
			// A failed Job holds no leases: their items go back.
			for _, tok := range slices.Sorted(maps.Keys(m.leases)) {
				for _, id := range m.leases[tok].ids {
					m.giveBack(m.items[id])
				}
				delete(m.leases, tok)
			}
		case m.phase == jobstate.PhaseSucceeding && m.live() == 0:
			m.phase = jobstate.PhaseComplete
		case m.phase != "":
		case m.wfailed > m.backoffLim:
			m.phase = jobstate.PhaseFailing
		case m.done && dead > 0:
			m.phase = jobstate.PhaseFailing
		case m.done:
			m.phase = jobstate.PhaseSucceeding
		}
	}
}

// check compares the store with the model, and the model with the rules.
func (h *harness) check() {
	t, m := h.t, h.m
	// The model itself: each item in exactly one place.
	where := map[int64]string{}
	put := func(id int64, place string) {
		if prev, ok := where[id]; ok {
			t.Fatalf("model: item %d is both %s and %s", id, prev, place)
		}
		where[id] = place
	}
	for _, id := range m.pending {
		require.Equal(t, inPending, m.items[id].state)
		put(id, "pending")
	}
	for _, id := range m.returned {
		require.Equal(t, inReturned, m.items[id].state)
		put(id, "returned")
	}
	leased := 0
	for tok, l := range m.leases {
		for _, id := range l.ids {
			require.Equal(t, inLease, m.items[id].state)
			require.Equal(t, tok, m.items[id].token)
			put(id, "leased by "+tok)
		}
		leased += len(l.ids)
	}
	for _, it := range m.items {
		switch it.state {
		case inRetry, inSucceeded, inDead:
			put(it.id, it.state.String())
		}
		require.LessOrEqual(t, it.used, m.maxAtt, "attempts of item %d", it.id)
	}
	require.Len(t, where, len(m.items), "every item is somewhere")

	snap, err := h.s.Snapshot(h.ctx, h.job)
	require.NoError(t, err)
	st := snap.Status
	want := jobstate.Items{
		Total:          m.popped + int64(len(m.pending)),
		Pending:        int64(len(m.pending)),
		Returned:       int64(len(m.returned)),
		Leased:         int64(leased),
		Retrying:       int64(len(m.byState(inRetry))),
		Succeeded:      int64(len(m.byState(inSucceeded))),
		Dead:           int64(len(m.byState(inDead))),
		FailedAttempts: m.failedAtts,
		Takeovers:      m.takeovers,
	}
	require.Equal(t, want, st.Items, "item counts")
	require.EqualValues(t, len(m.leases), st.Leases, "leases")
	require.Equal(t, m.sealed, st.Sealed, "sealed")
	require.Equal(t, m.done, st.Done, "done")
	require.Equal(t, m.started, st.StartTime != nil, "started: a lease happened")
	require.Equal(t, m.phase, snap.Observed.Stored, "phase")
	require.EqualValues(t, len(m.workers), st.Active, "registered workers")
	require.Equal(t, m.live(), st.Ready, "live workers")
	require.Equal(t, m.wsucceeded, st.Succeeded, "workers succeeded")
	require.Equal(t, m.wfailed, st.Failed, "workers failed")
	require.Empty(t, st.StateLost, "the books add up")

	dead, err := h.s.Dead(h.ctx, h.job, 0)
	require.NoError(t, err)
	var wantDead, gotDead []string
	for _, it := range m.byState(inDead) {
		wantDead = append(wantDead, fmt.Sprintf("%d@%d %q", it.id, it.used, it.payload))
	}
	for _, d := range dead {
		require.LessOrEqual(t, d.Attempts, m.maxAtt, "attempts never exceed maxAttempts")
		gotDead = append(gotDead, fmt.Sprintf("%d@%d %q", d.ID, d.Attempts, d.Payload))
	}
	require.Equal(t, wantDead, gotDead, "dead items")

	if m.indexed {
		ok := map[int64]bool{}
		for _, it := range m.byState(inSucceeded) {
			ok[it.id] = true
		}
		done, err := h.s.Redis().ZRange(h.ctx, store.KeysFor(h.job).Key("doneidx"), 0, -1).Result()
		require.NoError(t, err)
		var got []string // nil when none, as the model's
		got = append(got, done...)
		require.Equal(t, modelRanges(ok), got, "completed indexes, as ranges")
	}

	if m.phase == jobstate.PhaseComplete || m.phase == jobstate.PhaseSucceeding {
		// Complete only when sealed and every item succeeded (a drained
		// Job with dead items fails).
		require.True(t, m.sealed, "a Job succeeds only when sealed")
		require.Len(t, m.byState(inSucceeded), len(m.items), "a Job succeeds only when every item did")
	}
	if m.phase == jobstate.PhaseComplete {
		require.NotNil(t, st.CompletionTime)
	}
	if !m.real {
		require.Equal(t, m.now, st.Now.UnixMilli(), "the server's clock")
	}
}
