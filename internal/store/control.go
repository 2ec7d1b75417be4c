package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/pkg/jobstate"
)

// ReapResult counts what one controller sweep did.
type ReapResult struct {
	WorkersLost     int // workers whose heartbeat expired, recorded as failed
	LeasesReclaimed int
	ItemsReclaimed  int
}

// Reap records workers whose heartbeat expired as failed and takes over
// expired leases (a bounded number of items per call). It returns ErrNoJob
// or ErrStateLost.
func (s *Store) Reap(ctx context.Context, job string) (ReapResult, error) {
	v, err := s.run(ctx, s.sc.reap, job, "")
	if err != nil {
		return ReapResult{}, fmt.Errorf("reap %q: %w", job, err)
	}
	r, ok := v.([]any)
	if !ok || len(r) != 3 {
		return ReapResult{}, replyErr("reap", v)
	}
	return ReapResult{WorkersLost: int(toInt(r[0])), LeasesReclaimed: int(toInt(r[1])), ItemsReclaimed: int(toInt(r[2]))}, nil
}

// Snapshot is one atomic read of a Job's counters.
type Snapshot struct {
	Status   jobstate.Status
	Observed jobstate.Observed
	// Ver is the Job's change counter when the snapshot was read: every
	// script that changes what a snapshot shows moves it (see
	// SnapshotCache).
	Ver int64

	listed int64 // LLEN of the pending list when read
	rated  bool  // items succeeded within the throughput window (or this second)
}

// Snapshot reads a Job's status and the facts the controller decides on in
// one atomic step. It reads counters only: its cost does not grow with the
// Job's items, dead items or indexes. It returns ErrNoJob.
func (s *Store) Snapshot(ctx context.Context, job string) (Snapshot, error) {
	if err := s.ready(ctx); err != nil {
		return Snapshot{}, err
	}
	sc := s.sc.snapshot
	v, err := sc.Run(ctx, s.rdb(), sc.keysOf(s.keysOf(job))).Result()
	if err != nil {
		return Snapshot{}, fmt.Errorf("status of %q: %w", job, mapError(err))
	}
	snap, err := decodeSnapshot(job, v)
	if err != nil {
		return Snapshot{}, fmt.Errorf("status of %q: %w", job, err)
	}
	return snap, nil
}

// Snapshots reads many Jobs in one pipelined round trip (one per node on a
// Cluster). Each Job's error is its own: a Job deleted meanwhile has
// ErrNoJob.
func (s *Store) Snapshots(ctx context.Context, jobs []string) ([]Snapshot, []error) {
	snaps := make([]Snapshot, len(jobs))
	errs := make([]error, len(jobs))
	if err := s.ready(ctx); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return snaps, errs
	}
	sc := s.sc.snapshot
	pipe := s.rdb().Pipeline()
	cmds := make([]*redis.Cmd, len(jobs))
	for i, j := range jobs {
		cmds[i] = sc.EvalSha(ctx, pipe, sc.keysOf(s.keysOf(j)))
	}
	_, err := pipe.Exec(ctx)
	if err != nil && isNoScript(err) {
		// Redis forgot the scripts (a restart): load them and go again.
		if lerr := s.LoadScripts(ctx); lerr == nil {
			pipe = s.rdb().Pipeline()
			for i, j := range jobs {
				cmds[i] = sc.EvalSha(ctx, pipe, sc.keysOf(s.keysOf(j)))
			}
			_, _ = pipe.Exec(ctx)
		}
	}
	for i, j := range jobs {
		v, err := cmds[i].Result()
		if err != nil {
			errs[i] = fmt.Errorf("status of %q: %w", j, mapError(err))
			continue
		}
		if snaps[i], errs[i] = decodeSnapshot(j, v); errs[i] != nil {
			errs[i] = fmt.Errorf("status of %q: %w", j, errs[i])
		}
	}
	return snaps, errs
}

func decodeSnapshot(job string, v any) (Snapshot, error) {
	r, ok := v.([]any)
	if !ok || len(r) != 15 {
		return Snapshot{}, replyErr("snapshot", v)
	}
	var spec jobstate.Spec
	if err := json.Unmarshal([]byte(str(r[0])), &spec); err != nil {
		return Snapshot{}, fmt.Errorf("%w: spec: %v", ErrReply, err)
	}
	spec = spec.WithDefaults()
	st := map[string]string{}
	pairs, _ := r[2].([]any)
	for i := 0; i+1 < len(pairs); i += 2 {
		st[str(pairs[i])] = str(pairs[i+1])
	}
	n := func(k string) int64 { return toInt(st[k]) }
	ms := func(k string) *time.Time {
		if st[k] == "" {
			return nil
		}
		t := time.UnixMilli(n(k)).UTC()
		return &t
	}
	now := time.UnixMilli(toInt(r[10])).UTC()
	s := jobstate.Status{
		Name:      job,
		UID:       str(r[1]),
		Kind:      spec.Kind(),
		Spec:      spec,
		Sealed:    st["sealed"] == "1",
		Suspended: st["suspended"] == "1",
		Done:      st["done"] == "1",
		Items: jobstate.Items{
			Pending:        toInt(r[3]),
			Returned:       toInt(r[4]),
			Leased:         n("leased"),
			Retrying:       toInt(r[6]),
			Succeeded:      n("succeeded"),
			Dead:           toInt(r[7]),
			FailedAttempts: n("failed"),
			Takeovers:      n("takeovers"),
		},
		Leases:         toInt(r[5]),
		Active:         toInt(r[8]),
		Ready:          toInt(r[9]),
		Succeeded:      n("wsucceeded"),
		Failed:         n("wfailed"),
		StartTime:      ms("start"),
		CompletionTime: ms("completion"),
		Conditions:     []jobstate.Condition{},
		StateLost:      str(r[13]),
		Now:            now,
	}
	s.Items.Total = n("popped") + s.Items.Pending
	if spec.Completions != nil {
		s.Items.Total = int64(*spec.Completions)
		s.Items.Pending = s.Items.Total - n("popped")
	}
	s.Phase = jobstate.DerivePhase(jobstate.Phase(st["phase"]), s.Suspended, st["start"] != "")
	var failure, success jobstate.Condition
	for k, v := range st {
		t, ok := strings.CutPrefix(k, "cond:")
		if !ok {
			continue
		}
		parts := strings.SplitN(v, "|", 4)
		if len(parts) != 4 {
			continue
		}
		at, _ := strconv.ParseInt(parts[2], 10, 64)
		c := jobstate.Condition{Type: jobstate.ConditionType(t), Status: parts[0], Reason: parts[1], Message: parts[3],
			LastTransitionTime: time.UnixMilli(at).UTC()}
		s.Conditions = append(s.Conditions, c)
		switch c.Type {
		case jobstate.ConditionFailureTarget:
			failure = c
		case jobstate.ConditionSuccessCriteriaMet:
			success = c
		}
	}
	jobstate.SortConditions(s.Conditions)
	rate, _ := r[11].([]any)
	var sum int64
	var rated bool
	sec := now.Unix()
	for i := 0; i+1 < len(rate); i += 2 {
		t := toInt(rate[i])
		if t < sec && t >= sec-60 {
			sum += toInt(rate[i+1])
		}
		rated = rated || t >= sec-60
	}
	s.Throughput = float64(sum) / 60
	if o := str(r[12]); o != "" && s.Items.Pending > 0 {
		if _, at, ok := strings.Cut(o, ":"); ok {
			s.OldestPendingAge = max(0, now.Sub(time.UnixMilli(toInt(at))).Seconds())
		}
	}
	if eta, ok := jobstate.EstimateETA(s); ok {
		s.ETASeconds = jobstate.Ptr(eta.Seconds())
	}
	var start time.Time
	if s.StartTime != nil {
		start = *s.StartTime
	}
	failJob := ""
	if fj := st["failjob"]; fj != "" {
		id, msg, _ := strings.Cut(fj, "|")
		failJob = fmt.Sprintf("item %s: %s", id, msg)
	}
	obs := jobstate.Observed{
		Stored:         jobstate.Phase(st["phase"]),
		FailureReason:  failure.Reason,
		FailureMessage: failure.Message,
		SuccessReason:  success.Reason,
		SuccessMessage: success.Message,
		Suspended:      s.Suspended,
		Done:           s.Done,
		Dead:           s.Items.Dead,
		WorkerFailures: s.Failed,
		LiveWorkers:    s.Ready,
		StateLost:      s.StateLost,
		FailJob:        failJob,
		StartTime:      start,
		Now:            now,
	}
	return Snapshot{Status: s, Observed: obs, Ver: n("ver"), listed: toInt(r[3]), rated: rated}, nil
}

// Apply applies a transition if its guard still holds in Redis. It returns
// false when the guard no longer holds (the snapshot was stale).
func (s *Store) Apply(ctx context.Context, job string, t jobstate.Transition) (bool, error) {
	return s.apply(ctx, job, t, "")
}

// ReopenGens returns the reopen generation of each of jobs (their state's
// rgen, raised by every `retry --reopen`), read in one round trip per
// node; "0" for a Job never reopened.
func (s *Store) ReopenGens(ctx context.Context, jobs []string) ([]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	pipe := s.rdb().Pipeline()
	cmds := make([]*redis.StringCmd, len(jobs))
	for i, j := range jobs {
		cmds[i] = pipe.HGet(ctx, s.keysOf(j).Key("state"), "rgen")
	}
	_, _ = pipe.Exec(ctx)
	gens := make([]string, len(jobs))
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			v = "0"
		case err != nil:
			return nil, fmt.Errorf("reopen generation of %q: %w", jobs[i], classify(err))
		}
		gens[i] = v
	}
	return gens, nil
}

// ApplyAtGen is Apply of a GuardShardFailed transition decided when the
// shard's reopen generation (ReopenGens) was gen: a `retry --reopen` of
// the shard since then refuses it.
func (s *Store) ApplyAtGen(ctx context.Context, job string, t jobstate.Transition, gen string) (bool, error) {
	return s.apply(ctx, job, t, gen)
}

func (s *Store) apply(ctx context.Context, job string, t jobstate.Transition, gen string) (bool, error) {
	v, err := s.run(ctx, s.sc.transition, job, "", NewID(), string(t.Guard), string(t.To), string(t.Condition.Type),
		t.Condition.Reason, t.Condition.Message, gen)
	if err != nil {
		return false, fmt.Errorf("move %q to %s: %w", job, t.To, err)
	}
	n, _ := v.(int64)
	return n == 1, nil
}

// MaxCompletedRanges caps the ranges Completed reads; past it the list
// ends with ",...". Indexes mostly succeed in runs, so this is rarely met.
const MaxCompletedRanges = 1000

// Completed returns the indexes of a fixed completion count Job that
// succeeded, as an interval string. It reads the ranges kept as they
// succeed (at most MaxCompletedRanges), so its cost does not grow with the
// number of indexes.
func (s *Store) Completed(ctx context.Context, job string) (string, error) {
	if err := s.ready(ctx); err != nil {
		return "", err
	}
	m, err := s.rdb().ZRange(ctx, s.keysOf(job).Key("doneidx"), 0, MaxCompletedRanges).Result()
	if err != nil {
		return "", fmt.Errorf("completed indexes of %q: %w", job, classify(err))
	}
	more := len(m) > MaxCompletedRanges
	if more {
		m = m[:MaxCompletedRanges]
	}
	var b strings.Builder
	for _, r := range m {
		lo, hi, _ := strings.Cut(r, "-")
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(lo)
		if hi != lo {
			b.WriteString("-" + hi)
		}
	}
	if more {
		b.WriteString(",...")
	}
	return b.String(), nil
}

// ObserveSuccess fills what a Job's success policy is judged on into
// snap.Observed: the completed indexes within the policy's indexes, read
// CompletedPage ranges per command (the cost grows with the indexes the
// policy names, not with the Job), and how many indexes completed in all
// (the counter). A Job without a success policy needs nothing.
func (s *Store) ObserveSuccess(ctx context.Context, job string, snap *Snapshot) error {
	spec := snap.Status.Spec
	if len(spec.SuccessPolicy) == 0 {
		return nil
	}
	snap.Observed.CompletedCount = snap.Status.Items.Succeeded
	within, err := jobstate.ParseIntervals(spec.SuccessPolicyIndexes())
	if err != nil || len(within) == 0 {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	key := s.keysOf(job).Key("doneidx")
	var done [][2]int
	add := func(m string, lo, hi int) {
		a, b, _ := strings.Cut(m, "-")
		x, y := int(toInt(a)), int(toInt(b))
		if x, y = max(x, lo), min(y, hi); x <= y {
			done = append(done, [2]int{x, y})
		}
	}
	for _, iv := range within {
		lo, hi := iv[0], iv[1]
		// The range that starts before lo may reach into it.
		prev, err := s.rdb().ZRevRangeByScore(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.Itoa(lo), Count: 1}).Result()
		if err != nil {
			return fmt.Errorf("completed indexes of %q: %w", job, classify(err))
		}
		for _, m := range prev {
			add(m, lo, hi)
		}
		from := strconv.Itoa(lo)
		for {
			m, err := s.rdb().ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: from, Max: strconv.Itoa(hi), Count: CompletedPage}).Result()
			if err != nil {
				return fmt.Errorf("completed indexes of %q: %w", job, classify(err))
			}
			for _, r := range m {
				add(r, lo, hi)
			}
			if len(m) < CompletedPage {
				break
			}
			last, _, _ := strings.Cut(m[len(m)-1], "-")
			from = "(" + last
		}
	}
	snap.Observed.Completed = jobstate.FormatIntervals(done)
	return nil
}

// CompletedPage is how many ranges of completed indexes one command of
// ObserveSuccess reads.
const CompletedPage = 1000

// DeadItem is an item that used all its attempts.
type DeadItem struct {
	// Shard is the shard the item died in, for a sharded Job; ids are
	// per shard.
	Shard     string `json:"shard,omitempty"`
	ID        int64  `json:"id"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"lastError"`
	Payload   []byte `json:"-"`
	Item      string `json:"item"` // Payload as text, for JSON output
}

// DeadPage is how many dead items one read of Dead takes: a Job with a
// million dead items is listed in many short reads, never one long one.
const DeadPage = 1000

// Dead lists up to limit dead items (0: all), ordered by id, reading only
// those, DeadPage per command (a list read while dead items are retried
// may miss some of them).
func (s *Store) Dead(ctx context.Context, job string, limit int) ([]DeadItem, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	key := s.keysOf(job).Key("dead")
	var out []DeadItem
	for start := 0; limit <= 0 || start < limit; start += DeadPage {
		n := DeadPage
		if limit > 0 {
			n = min(n, limit-start)
		}
		m, err := s.rdb().ZRange(ctx, key, int64(start), int64(start+n-1)).Result()
		if err != nil {
			return nil, fmt.Errorf("dead items of %q: %w", job, classify(err))
		}
		for _, v := range m {
			if d, ok := ParseDead(v); ok {
				out = append(out, d)
			}
		}
		if len(m) < n {
			break
		}
	}
	if len(out) == 0 {
		if g, err := s.Group(ctx, job); err == nil {
			return s.deadOfGroup(ctx, g, limit)
		}
	}
	if out == nil {
		out = []DeadItem{}
	}
	return out, nil
}

// deadOfGroup lists the dead items of a sharded Job's shards, in shard
// order, at most limit (0: all).
func (s *Store) deadOfGroup(ctx context.Context, g Group, limit int) ([]DeadItem, error) {
	out := []DeadItem{}
	for _, sh := range g.Shards {
		left := 0
		if limit > 0 {
			if left = limit - len(out); left <= 0 {
				break
			}
		}
		ds, err := s.Dead(ctx, sh, left)
		if err != nil {
			return nil, err
		}
		base := 0
		if g.Spec.Kind() == jobstate.KindIndexed {
			spec, _, err := s.Spec(ctx, sh)
			if err != nil {
				return nil, err
			}
			base = spec.IndexBase
		}
		for i := range ds {
			ds[i].Shard = sh
			if base > 0 {
				// An Indexed shard's ids are its own indexes: the Job's
				// are base higher.
				ds[i].ID += int64(base)
				ds[i].Item = strconv.FormatInt(ds[i].ID, 10)
				ds[i].Payload = []byte(ds[i].Item)
			}
		}
		out = append(out, ds...)
	}
	return out, nil
}

// Ref names a dead item: its id, after its shard's name in a sharded Job.
func (d DeadItem) Ref() string {
	if d.Shard == "" {
		return strconv.FormatInt(d.ID, 10)
	}
	return d.Shard + ":" + strconv.FormatInt(d.ID, 10)
}

// DeadIndexes returns the ids of dead items as an interval string (the
// failed indexes of an Indexed Job), reading at most limit of them.
func (s *Store) DeadIndexes(ctx context.Context, job string, limit int) (string, error) {
	if err := s.ready(ctx); err != nil {
		return "", err
	}
	z, err := s.rdb().ZRangeWithScores(ctx, s.keysOf(job).Key("dead"), 0, int64(limit)-1).Result()
	if err != nil {
		return "", fmt.Errorf("dead items of %q: %w", job, classify(err))
	}
	idx := make([]int, 0, len(z))
	for _, m := range z {
		idx = append(idx, int(m.Score))
	}
	return jobstate.IndexList(idx), nil
}

// ParseDead reads a dead item "id:attempts:errlen:error..payload".
func ParseDead(v string) (DeadItem, bool) {
	id, rest, ok := strings.Cut(v, ":")
	if !ok {
		return DeadItem{}, false
	}
	att, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return DeadItem{}, false
	}
	l, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return DeadItem{}, false
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 || n > len(rest) {
		return DeadItem{}, false
	}
	d := DeadItem{ID: toInt(id), Attempts: int(toInt(att)), LastError: rest[:n], Payload: []byte(rest[n:])}
	d.Item = string(d.Payload)
	return d, true
}

// WorkerInfo describes a worker process, for status pages.
type WorkerInfo struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Version  string    `json:"version,omitempty"`
	Deadline time.Time `json:"heartbeatDeadline"` // filled by Workers
}

// Workers lists the registered workers that have not terminated, with
// their heartbeat deadlines.
func (s *Store) Workers(ctx context.Context, job string) ([]WorkerInfo, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	k := s.keysOf(job)
	zs, err := s.rdb().ZRangeWithScores(ctx, k.Key("workers"), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("workers of %q: %w", job, classify(err))
	}
	if len(zs) == 0 {
		if g, err := s.Group(ctx, job); err == nil {
			// A sharded Job: the workers of its shards (a worker process
			// is there once per lane, as ID-0, ID-1, ...).
			var out []WorkerInfo
			for _, sh := range g.Shards {
				ws, err := s.Workers(ctx, sh)
				if err != nil {
					return nil, err
				}
				out = append(out, ws...)
			}
			return out, nil
		}
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	infos, err := s.rdb().HMGet(ctx, k.Key("winfo"), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("workers of %q: %w", job, classify(err))
	}
	out := make([]WorkerInfo, len(zs))
	for i, z := range zs {
		if s, ok := infos[i].(string); ok {
			_ = json.Unmarshal([]byte(s), &out[i])
		}
		out[i].ID = ids[i]
		out[i].Deadline = time.UnixMilli(int64(z.Score)).UTC()
	}
	return out, nil
}

// ItemResult is one entry of a Job's results stream.
type ItemResult struct {
	Seq     string `json:"seq"` // stream entry id
	ID      int64  `json:"id"`
	Attempt int    `json:"attempt"`
	Exit    int    `json:"exit"`
	Output  string `json:"output"`
}

// Results reads up to count results after stream id after ("" from the
// start). With block > 0 it waits that long for new ones.
func (s *Store) Results(ctx context.Context, job, after string, count int64, block time.Duration) ([]ItemResult, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	key := s.keysOf(job).Key("results")
	var msgs []redis.XMessage
	var err error
	if block > 0 {
		var streams []redis.XStream
		streams, err = s.rdb().XRead(ctx, &redis.XReadArgs{Streams: []string{key, nonEmpty(after, "0")}, Count: count, Block: block}).Result()
		if len(streams) > 0 {
			msgs = streams[0].Messages
		}
	} else {
		start := "-"
		if after != "" {
			start = "(" + after
		}
		msgs, err = s.rdb().XRangeN(ctx, key, start, "+", count).Result()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("results of %q: %w", job, classify(err))
	}
	out := make([]ItemResult, 0, len(msgs))
	for _, m := range msgs {
		r := ItemResult{Seq: m.ID}
		r.ID = toInt(m.Values["id"])
		r.Attempt = int(toInt(m.Values["attempt"]))
		r.Exit = int(toInt(m.Values["exit"]))
		r.Output = str(m.Values["output"])
		out = append(out, r)
	}
	return out, nil
}

func nonEmpty(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// MaxFailedIndexes caps how many dead items Status reads to list the failed
// indexes of a fixed completion count Job; past it the list ends with
// ",..." (`coordinator dead` lists them all). It keeps every Status read,
// timers included, small whatever the Job holds.
const MaxFailedIndexes = 1000

// Status reads a Job's status (Snapshot) and, for a fixed completion count
// Job, its completed and failed indexes. It returns ErrNoJob.
func (s *Store) Status(ctx context.Context, job string) (jobstate.Status, error) {
	snap, err := s.Snapshot(ctx, job)
	if err != nil {
		var st jobstate.Status
		err = s.orGroup(ctx, job, err, func(g Group) (err error) {
			st, err = s.groupStatus(ctx, g)
			return err
		})
		return st, err
	}
	st := snap.Status
	if st.Spec.Counted() {
		if st.CompletedIndexes, st.FailedIndexes, err = s.Indexes(ctx, job, st.Items.Dead); err != nil {
			return jobstate.Status{}, err
		}
		st.CompletedIndexes = jobstate.ShiftIntervals(st.CompletedIndexes, st.Spec.IndexBase)
		st.FailedIndexes = jobstate.ShiftIntervals(st.FailedIndexes, st.Spec.IndexBase)
	}
	return st, nil
}

// Indexes returns the completed and failed indexes of a fixed completion
// count Job, as Status shows them (each list bounded: MaxCompletedRanges,
// MaxFailedIndexes); dead is the Job's count of dead items (none read when
// 0).
func (s *Store) Indexes(ctx context.Context, job string, dead int64) (completed, failed string, err error) {
	if completed, err = s.Completed(ctx, job); err != nil {
		return "", "", err
	}
	if dead > 0 {
		if failed, err = s.DeadIndexes(ctx, job, MaxFailedIndexes); err != nil {
			return "", "", err
		}
		if dead > MaxFailedIndexes {
			failed += ",..."
		}
	}
	return completed, failed, nil
}

// JobStatus is one Job's status, or why it could not be read.
type JobStatus struct {
	Name   string
	Status jobstate.Status
	Err    error // ErrNoJob when it went between the listing and the read
}

// Jobs reads the counters of every Job in one pipelined round trip per
// node, sorted by name. It fails only when the Jobs cannot be listed.
func (s *Store) Jobs(ctx context.Context) ([]JobStatus, error) {
	names, _, err := s.Names(ctx)
	if err != nil {
		return nil, err
	}
	snaps, errs := s.Snapshots(ctx, names)
	out := make([]JobStatus, len(names))
	for i, n := range names {
		out[i] = JobStatus{Name: n, Status: snaps[i].Status, Err: errs[i]}
	}
	return out, nil
}
