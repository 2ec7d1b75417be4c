package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/pkg/jobstate"
)

// Worker outcomes of the worker-side calls.
var (
	// ErrDrained: the Job is drained (or has succeeded): the worker ends.
	ErrDrained = errors.New("job is drained")
	// ErrJobFailed: the Job is failing or failed: the worker stops.
	ErrJobFailed = errors.New("job failed")
)

// Registration is what a worker learns when it joins a Job.
type Registration struct {
	UID     string // the incarnation it is bound to
	Session string // the prefix of its lease tokens
	Spec    jobstate.Spec
}

// Register binds worker wid to the incarnation uid of job ("" is the
// current one) and opens a session for its leases. info is its JSON
// WorkerInfo. It returns ErrDrained (the worker exits 0 at once, uncounted),
// ErrJobFailed, ErrNoJob, ErrReplaced or ErrStateLost.
func (s *Store) Register(ctx context.Context, job, uid, wid string, info []byte) (Registration, error) {
	v, err := s.run(ctx, s.sc.register, job, uid, wid, string(info), newSession())
	if err != nil {
		return Registration{}, err
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return Registration{}, replyErr("register", v)
	}
	switch r[0] {
	case "DONE":
		return Registration{}, ErrDrained
	case "FAILED":
		return Registration{}, ErrJobFailed
	case "OK":
	default:
		return Registration{}, replyErr("register", v)
	}
	if len(r) != 4 {
		return Registration{}, replyErr("register", v)
	}
	reg := Registration{UID: str(r[1]), Session: str(r[2])}
	if err := json.Unmarshal([]byte(str(r[3])), &reg.Spec); err != nil {
		return Registration{}, fmt.Errorf("%w: spec: %v", ErrReply, err)
	}
	reg.Spec = reg.Spec.WithDefaults()
	return reg, nil
}

// newSession returns a random session id: 64 bits, in base 36.
func newSession() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36)
}

// Item is one unit of work as a lease holds it.
type Item struct {
	ID      int64
	Attempt int
	Payload []byte
}

// Lease is a batch of items leased together under one fencing token.
type Lease struct {
	Token   string
	Fence   int64     // increases with every lease of the Job, across incarnations
	Expires time.Time // the Redis server's clock
	Items   []Item
}

// LeaseRequest is a worker's call for items.
type LeaseRequest struct {
	UID, Session, Worker string
	// Seq numbers the session's lease calls; send the same Seq again to
	// repeat a call whose reply was lost.
	Seq int64
	// Want is how many items the worker can use now; Max caps a lease (0:
	// the spec's batch size). The store also caps it at a fair share.
	Want, Max int
	// Leases is how many leases of at most Max items the call may make
	// when Want is more than Max (0 or 1: one; at most 8). The ones after
	// the first are made only while the one before is full, from pending
	// items or next indexes: they come in LeaseReply.More.
	Leases int
}

// LeaseReply is a lease, or why there is none.
type LeaseReply struct {
	Lease *Lease
	More  []*Lease // further leases of the call (LeaseRequest.Leases)
	// Wait is why no item came: unsealed, peers, suspended, repeat, lost.
	Wait   string
	WakeIn time.Duration // when a lease expires or a retry is due; -1 unknown
	// AvgItem is the Job's recent item duration; -1 while unknown.
	AvgItem time.Duration
	Live    int   // live workers
	Left    int64 // items that could still be leased
}

// Lease leases items for a worker in one round trip, taking over expired
// leases on the way. It returns ErrDrained (the worker must end), ErrJobFailed,
// ErrNoJob, ErrReplaced, ErrStateLost or ErrStale.
func (s *Store) Lease(ctx context.Context, job string, q LeaseRequest) (LeaseReply, error) {
	v, err := s.run(ctx, s.sc.lease, job, q.UID, q.Session, q.Seq, q.Worker, q.Want, q.Max, max(q.Leases, 1))
	if err != nil {
		return LeaseReply{}, err
	}
	r, ok := v.([]any)
	if !ok || len(r) == 0 {
		return LeaseReply{}, replyErr("lease", v)
	}
	switch r[0] {
	case "DONE":
		return LeaseReply{}, ErrDrained
	case "FAILED":
		return LeaseReply{}, ErrJobFailed
	case "WAIT":
		if len(r) != 5 {
			return LeaseReply{}, replyErr("lease", v)
		}
		return LeaseReply{Wait: str(r[1]), WakeIn: msDuration(toInt(r[2])), AvgItem: usDuration(toInt(r[3])), Live: int(toInt(r[4]))}, nil
	case "LEASE":
		if len(r) < 7 || len(r)%2 == 0 {
			return LeaseReply{}, replyErr("lease", v)
		}
		expires := time.UnixMilli(toInt(r[2]))
		lease := func(token, rec any) (*Lease, error) {
			l, err := decodeRecord(str(rec))
			if err != nil {
				return nil, err
			}
			l.Token, l.Expires = str(token), expires
			return &l, nil
		}
		first, err := lease(r[1], r[3])
		if err != nil {
			return LeaseReply{}, err
		}
		out := LeaseReply{Lease: first, AvgItem: usDuration(toInt(r[4])), Live: int(toInt(r[5])), Left: toInt(r[6]), WakeIn: -1}
		for i := 7; i < len(r); i += 2 {
			l, err := lease(r[i], r[i+1])
			if err != nil {
				return LeaseReply{}, err
			}
			out.More = append(out.More, l)
		}
		return out, nil
	}
	return LeaseReply{}, replyErr("lease", v)
}

func msDuration(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

func usDuration(us int64) time.Duration {
	if us < 0 {
		return -1
	}
	return time.Duration(us) * time.Microsecond
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// decodeRecord reads a lease record: "n|fence|ids|atts|lens\n" then the
// payloads (see lua/lib.lua). The payloads share one buffer.
func decodeRecord(rec string) (Lease, error) {
	bad := func(why string) (Lease, error) {
		return Lease{}, fmt.Errorf("%w: lease record: %s", ErrReply, why)
	}
	nl := strings.IndexByte(rec, '\n')
	if nl < 0 {
		return bad("no header")
	}
	f := strings.SplitN(rec[:nl], "|", 5)
	if len(f) != 5 {
		return bad("header " + rec[:nl])
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return bad("count " + f[0])
	}
	fence, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return bad("fence " + f[1])
	}
	// The count is only a claim until the ids bear it out: it sizes no
	// allocation past what a lease holds, and no range expands past it.
	items := make([]Item, 0, min(n, jobstate.MaxBatchSize))
	for part := range strings.SplitSeq(f[2], ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 64)
		if err != nil {
			return bad("id " + part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 64); err != nil || b < a {
				return bad("ids " + part)
			}
		}
		if b-a >= int64(n-len(items)) {
			return bad(fmt.Sprintf("ids %s past %d items", part, n))
		}
		for k := range b - a + 1 {
			items = append(items, Item{ID: a + k, Attempt: 1})
		}
	}
	if len(items) != n {
		return bad(fmt.Sprintf("%d ids for %d items", len(items), n))
	}
	if f[3] != "" {
		i := 0
		for a := range strings.SplitSeq(f[3], ",") {
			v, err := strconv.Atoi(a)
			if err != nil || i >= n {
				return bad("attempts " + f[3])
			}
			items[i].Attempt = v
			i++
		}
	}
	switch {
	case f[4] == "i":
		for i := range items {
			items[i].Payload = strconv.AppendInt(nil, items[i].ID, 10)
		}
	case f[4] == "n" && n > 0:
		// Joined by newlines, which no payload holds.
		body := []byte(rec[nl+1:])
		i := 0
		for len(body) > 0 || i < n {
			j := bytes.IndexByte(body, '\n')
			if j < 0 {
				j = len(body)
			}
			if i >= n {
				return bad("more payloads than items")
			}
			items[i].Payload = body[:j:j]
			i++
			if j == len(body) {
				body = nil
				break
			}
			body = body[j+1:]
		}
		if i != n {
			return bad(fmt.Sprintf("%d payloads for %d items", i, n))
		}
	case n > 0:
		body := []byte(rec[nl+1:])
		off, i := 0, 0
		for l := range strings.SplitSeq(f[4], ",") {
			v, err := strconv.Atoi(l)
			if err != nil || i >= n || v < 0 || v > len(body)-off {
				return bad("lengths")
			}
			items[i].Payload = body[off : off+v : off+v]
			off += v
			i++
		}
		if i != n || off != len(body) {
			return bad("lengths do not cover the payloads")
		}
	}
	return Lease{Fence: fence, Items: items}, nil
}

// Action is what a failure does to its item (see jobstate.FailureAction).
type Action byte

// The actions, as the settle script reads them.
const (
	ActionCount     Action = 'c'
	ActionIgnore    Action = 'i'
	ActionFailIndex Action = 'x'
	ActionFailJob   Action = 'j'
)

// ActionOf maps a failure policy action to the store's.
func ActionOf(a jobstate.FailureAction) Action {
	switch a {
	case jobstate.ActionIgnore:
		return ActionIgnore
	case jobstate.ActionFailIndex:
		return ActionFailIndex
	case jobstate.ActionFailJob:
		return ActionFailJob
	}
	return ActionCount
}

// Failure is a failed run of an item.
type Failure struct {
	ID     int64
	Action Action
	Jitter float64 // in [0,1): spreads the retry delay (jobstate.Spec.Backoff)
	Err    string
}

// Result is what an item's run produced, for the Job's results stream.
type Result struct {
	ID      int64
	Attempt int
	Exit    int
	Output  []byte
}

// Settlement is what became of items of one lease.
type Settlement struct {
	Token string
	// All acks every item of the lease not listed in Failed or Released;
	// AckCount says how many that is, for the refusal count if the lease is
	// gone. Without All, Acked lists the acked items.
	All      bool
	AckCount int
	Acked    []int64
	Failed   []Failure
	Released []int64 // handed back without using an attempt
	// Started is how many items of the lease have started and stay in it
	// after this call (in lease order); -1 leaves it as it is.
	Started int
	Results []Result
}

// SettleRequest is one settle call of a worker session.
type SettleRequest struct {
	UID, Session string
	Seq          int64 // per session, increasing; repeat it to resend a call
	// Timed items took TimedTotal to run, for the Job's lease sizing.
	Timed      int
	TimedTotal time.Duration
	ResultsMax int // cap of the results stream; 0 keeps no results
	Leases     []Settlement
	// WaitReplicas, when above 0, waits (WAIT) until that many replicas
	// have the settle, or WaitTimeout; SettleResult.Replicas says how many
	// did.
	WaitReplicas int
	WaitTimeout  time.Duration
}

// SettleResult counts what a settle recorded.
type SettleResult struct {
	Acked, Failed, Released int
	// Refused counts items whose lease was gone (expired and taken over):
	// they were not counted.
	Refused  int
	Dead     int  // items that went dead
	FailJob  bool // a FailJob action failed the Job
	Gone     []string
	Replicas int // with WaitReplicas: the replicas that have the settle
}

// MaxErrorBytes caps the error text kept for a failed item; longer texts
// keep their tail, where the cause usually is.
const MaxErrorBytes = 2048

// Settle records outcomes of items of any number of leases in one round
// trip. It returns ErrNoJob, ErrReplaced, ErrStateLost or ErrStale.
func (s *Store) Settle(ctx context.Context, job string, q SettleRequest) (SettleResult, error) {
	args := []any{q.UID, q.Session, q.Seq, q.Timed, q.TimedTotal.Microseconds(), q.ResultsMax}
	for _, l := range q.Leases {
		mode, nA := "s", len(l.Acked)
		if l.All {
			mode, nA = "a", l.AckCount
		}
		args = append(args, l.Token, mode, l.Started, nA, len(l.Failed), len(l.Released), len(l.Results))
		if !l.All {
			for _, id := range l.Acked {
				args = append(args, id)
			}
		}
		for _, f := range l.Failed {
			e := f.Err
			if len(e) > MaxErrorBytes {
				e = "..." + e[len(e)-MaxErrorBytes:]
			}
			args = append(args, f.ID, string(f.Action), strconv.FormatFloat(f.Jitter, 'f', 4, 64), e)
		}
		for _, id := range l.Released {
			args = append(args, id)
		}
		for _, r := range l.Results {
			args = append(args, r.ID, r.Attempt, r.Exit, r.Output)
		}
	}
	if q.WaitReplicas <= 0 {
		v, err := s.run(ctx, s.sc.settle, job, args...)
		if err != nil {
			return SettleResult{}, err
		}
		return parseSettle(v)
	}
	return s.settleWait(ctx, job, q, args)
}

// settleWait sends the settle and a WAIT on one connection (a pipeline), so
// the WAIT counts the replicas that have this settle.
func (s *Store) settleWait(ctx context.Context, job string, q SettleRequest, args []any) (SettleResult, error) {
	if err := s.ready(ctx); err != nil {
		return SettleResult{}, err
	}
	sc := s.sc.settle
	keys := sc.keysOf(s.keysOf(job))
	var on redis.Cmdable = s.rdb()
	if cc, ok := s.rdb().(*redis.ClusterClient); ok {
		// WAIT names no key: it must go to the primary of the Job's slot.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return SettleResult{}, classify(err)
		}
		on = node
	}
	for attempt := 0; ; attempt++ {
		pipe := on.Pipeline()
		ev := sc.EvalSha(ctx, pipe, keys, args...)
		wait := pipe.Do(ctx, "wait", q.WaitReplicas, q.WaitTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		v, err := ev.Result()
		if err != nil && isNoScript(err) && attempt == 0 {
			if lerr := s.LoadScripts(ctx); lerr != nil {
				return SettleResult{}, lerr
			}
			continue
		}
		if err != nil {
			return SettleResult{}, mapError(err)
		}
		r, err := parseSettle(v)
		if err != nil {
			return r, err
		}
		n, err := wait.Int64()
		if err != nil {
			return r, classify(err)
		}
		r.Replicas = int(n)
		return r, nil
	}
}

func parseSettle(v any) (SettleResult, error) {
	s, ok := v.(string)
	if !ok {
		return SettleResult{}, replyErr("settle", v)
	}
	counts, gone, _ := strings.Cut(s, "|")
	f := strings.Split(counts, ",")
	if len(f) != 6 {
		return SettleResult{}, replyErr("settle", v)
	}
	n := make([]int, 6)
	for i, x := range f {
		v, err := strconv.Atoi(x)
		if err != nil {
			return SettleResult{}, replyErr("settle", s)
		}
		n[i] = v
	}
	r := SettleResult{Acked: n[0], Failed: n[1], Released: n[2], Refused: n[3], Dead: n[4], FailJob: n[5] == 1}
	if gone != "" {
		r.Gone = strings.Split(gone, ",")
	}
	return r, nil
}

// HeartbeatResult is what a heartbeat learned about the Job.
type HeartbeatResult struct {
	Phase      jobstate.Phase // stored phase: "", Failing, Succeeding, Complete or Failed
	Suspended  bool
	Done       bool          // a worker found the Job drained
	HungryAgo  time.Duration // since a peer found nothing to lease; -1 never
	AvgItem    time.Duration // -1 unknown
	Rejoined   bool          // the worker had been reaped as lost and joined again
	LostReason string        // the Job's books do not add up
	Lost       []string      // tokens whose leases expired and were taken over
}

// Heartbeat refreshes worker wid and extends the leases it holds by the
// Job's lease. It returns ErrNoJob, ErrReplaced or ErrStateLost.
func (s *Store) Heartbeat(ctx context.Context, job, uid, wid string, tokens []string) (HeartbeatResult, error) {
	args := make([]any, 0, len(tokens)+2)
	args = append(args, uid, wid)
	for _, t := range tokens {
		args = append(args, t)
	}
	v, err := s.run(ctx, s.sc.heartbeat, job, args...)
	if err != nil {
		return HeartbeatResult{}, err
	}
	r, ok := v.([]any)
	if !ok || len(r) < 7 {
		return HeartbeatResult{}, replyErr("heartbeat", v)
	}
	h := HeartbeatResult{Phase: jobstate.Phase(str(r[0])), Suspended: str(r[1]) == "1", Done: str(r[2]) == "1",
		HungryAgo: msDuration(toInt(r[3])), AvgItem: usDuration(toInt(r[4])), Rejoined: toInt(r[5]) == 1, LostReason: str(r[6])}
	for _, t := range r[7:] {
		h.Lost = append(h.Lost, str(t))
	}
	return h, nil
}

// Worker outcomes for Finish.
const (
	OutcomeSucceeded = "succeeded" // exited 0: the Job succeeded
	OutcomeFailed    = "failed"    // crashed or exited non-zero: counts toward backoffLimit
	OutcomeStopped   = "stopped"   // told to stop (signal, Job failed): not a failure
)

// Finish records how worker wid ended and closes its session; only the
// first record of a worker counts. It returns true when the worker's end
// is recorded as outcome, and ErrNoJob or ErrReplaced (nothing recorded)
// when its Job is gone.
func (s *Store) Finish(ctx context.Context, job, uid, wid, session, outcome string) (bool, error) {
	v, err := s.run(ctx, s.sc.finish, job, uid, wid, session, outcome)
	if err != nil {
		return false, err
	}
	n, _ := v.(int64)
	return n == 1, nil
}
