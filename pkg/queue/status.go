package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/workq/workq/pkg/jobstate"
)

// snapshot is one atomic read of a Job.
type snapshot struct {
	status jobstate.Status
	obs    jobstate.Observed
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func (c *Client) snapshot(ctx context.Context, job string) (snapshot, error) {
	v, err := c.run(ctx, snapshotScript, job)
	if err != nil {
		return snapshot{}, fmt.Errorf("status of %q: %w", job, err)
	}
	r := v.([]any)
	if len(r) == 1 {
		return snapshot{}, fmt.Errorf("status of %q: %w; `coordinator list` shows the Jobs that exist", job, ErrNoJob)
	}
	var spec jobstate.Spec
	if err := json.Unmarshal([]byte(r[0].(string)), &spec); err != nil {
		return snapshot{}, fmt.Errorf("status of %q: bad spec: %w", job, err)
	}
	st := map[string]string{}
	pairs := r[1].([]any)
	for i := 0; i+1 < len(pairs); i += 2 {
		st[pairs[i].(string)] = pairs[i+1].(string)
	}
	n := func(k string) int64 { return toInt(st[k]) }
	ms := func(k string) *time.Time {
		if st[k] == "" {
			return nil
		}
		t := time.UnixMilli(n(k)).UTC()
		return &t
	}
	now := time.UnixMilli(toInt(r[8])).UTC()
	s := jobstate.Status{
		Name:      job,
		Kind:      spec.Kind(),
		Spec:      spec,
		Sealed:    st["sealed"] == "1",
		Suspended: st["suspended"] == "1",
		Done:      st["done"] == "1",
		Items: jobstate.Items{
			Pending:        toInt(r[2]),
			Leased:         n("leased"),
			Retrying:       toInt(r[4]),
			Succeeded:      n("succeeded"),
			Dead:           toInt(r[5]),
			FailedAttempts: n("failed"),
			Takeovers:      n("takeovers"),
		},
		Leases:         toInt(r[3]),
		Active:         toInt(r[6]),
		Ready:          toInt(r[7]),
		Succeeded:      n("wsucceeded"),
		Failed:         n("wfailed"),
		StartTime:      ms("start"),
		CompletionTime: ms("completion"),
		Conditions:     []jobstate.Condition{},
		Now:            now,
	}
	s.Items.Total = n("popped") + s.Items.Pending
	if spec.Completions != nil {
		s.Items.Total = int64(*spec.Completions)
		s.Items.Pending = s.Items.Total - n("popped")
	}
	s.Phase = jobstate.DerivePhase(jobstate.Phase(st["phase"]), s.Suspended, st["start"] != "")
	for k, v := range st {
		if !strings.HasPrefix(k, "cond:") {
			continue
		}
		parts := strings.SplitN(v, "|", 4)
		if len(parts) != 4 {
			continue
		}
		t, _ := strconv.ParseInt(parts[2], 10, 64)
		s.Conditions = append(s.Conditions, jobstate.Condition{Type: jobstate.ConditionType(strings.TrimPrefix(k, "cond:")),
			Status: parts[0], Reason: parts[1], Message: parts[3], LastTransitionTime: time.UnixMilli(t).UTC()})
	}
	jobstate.SortConditions(s.Conditions)
	rate := r[9].([]any)
	var sum int64
	sec := now.Unix()
	for i := 0; i+1 < len(rate); i += 2 {
		t := toInt(rate[i])
		if t < sec && t >= sec-60 {
			sum += toInt(rate[i+1])
		}
	}
	s.Throughput = float64(sum) / 60
	if o := r[10].(string); o != "" && s.Items.Pending > 0 {
		if _, at, ok := strings.Cut(o, ":"); ok {
			s.OldestPendingAge = max(0, now.Sub(time.UnixMilli(toInt(at))).Seconds())
		}
	}
	if spec.Completions != nil {
		bm := []byte(r[11].(string))
		s.CompletedIndexes = jobstate.Intervals(bm, *spec.Completions)
	}
	var failure jobstate.Condition
	for _, c := range s.Conditions {
		if c.Type == jobstate.ConditionFailureTarget {
			failure = c
		}
	}
	var start time.Time
	if s.StartTime != nil {
		start = *s.StartTime
	}
	obs := jobstate.Observed{
		Stored:         jobstate.Phase(st["phase"]),
		FailureReason:  failure.Reason,
		FailureMessage: failure.Message,
		Suspended:      s.Suspended,
		Done:           s.Done,
		Dead:           s.Items.Dead,
		WorkerFailures: s.Failed,
		LiveWorkers:    s.Ready,
		StartTime:      start,
		Now:            now,
	}
	return snapshot{status: s, obs: obs}, nil
}

// Status reads a Job's status in one atomic step. For Indexed Jobs with dead
// items it lists the failed indexes too. It returns ErrNoJob.
func (c *Client) Status(ctx context.Context, job string) (jobstate.Status, error) {
	snap, err := c.snapshot(ctx, job)
	if err != nil {
		return jobstate.Status{}, err
	}
	s := snap.status
	if s.Kind == jobstate.KindIndexed && s.Items.Dead > 0 {
		dead, err := c.Dead(ctx, job, 0)
		if err != nil {
			return jobstate.Status{}, err
		}
		idx := make([]int, 0, len(dead))
		for _, d := range dead {
			idx = append(idx, int(d.ID))
		}
		sort.Ints(idx)
		s.FailedIndexes = jobstate.IndexList(idx)
	}
	return s, nil
}

// Observe reads the facts the controller decides on (see jobstate.Next).
func (c *Client) Observe(ctx context.Context, job string) (jobstate.Spec, jobstate.Observed, error) {
	snap, err := c.snapshot(ctx, job)
	return snap.status.Spec, snap.obs, err
}

// Apply applies a transition if its guard still holds in Redis. It returns
// false when the guard no longer holds (the snapshot was stale).
func (c *Client) Apply(ctx context.Context, job string, t jobstate.Transition) (bool, error) {
	v, err := c.run(ctx, transitionScript, job, string(t.Guard), string(t.To), string(t.Condition.Type), t.Condition.Reason, t.Condition.Message)
	if err != nil {
		return false, fmt.Errorf("move %q to %s: %w", job, t.To, err)
	}
	if r, ok := v.([]any); ok && len(r) > 0 {
		return false, fmt.Errorf("move %q to %s: %w", job, t.To, ErrNoJob)
	}
	return v.(int64) == 1, nil
}

// ReapResult counts what one controller sweep did.
type ReapResult struct {
	WorkersLost     int // workers whose heartbeat expired, recorded as failed
	LeasesReclaimed int
	ItemsReclaimed  int
}

// Reap records workers whose heartbeat expired as failed and reclaims
// expired leases. It returns ErrNoJob.
func (c *Client) Reap(ctx context.Context, job string) (ReapResult, error) {
	v, err := c.run(ctx, reapScript, job)
	if err != nil {
		return ReapResult{}, fmt.Errorf("reap %q: %w", job, err)
	}
	r := v.([]any)
	if len(r) == 1 {
		return ReapResult{}, fmt.Errorf("reap %q: %w", job, ErrNoJob)
	}
	return ReapResult{WorkersLost: int(toInt(r[0])), LeasesReclaimed: int(toInt(r[1])), ItemsReclaimed: int(toInt(r[2]))}, nil
}

// DeadItem is an item that used all its attempts.
type DeadItem struct {
	ID        int64  `json:"id"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"lastError"`
	Payload   []byte `json:"-"`
	Item      string `json:"item"` // Payload as text, for JSON output
}

// Dead lists up to limit dead items (0: all), ordered by id.
func (c *Client) Dead(ctx context.Context, job string, limit int) ([]DeadItem, error) {
	k := keysFor(job)
	var out []DeadItem
	var cursor uint64
	for {
		kv, next, err := c.rdb.HScan(ctx, k.dead, cursor, "", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("dead items of %q: %w", job, classify(err))
		}
		for i := 0; i+1 < len(kv); i += 2 {
			d, ok := parseDead(kv[i], kv[i+1])
			if ok {
				out = append(out, d)
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func parseDead(id, v string) (DeadItem, bool) {
	att, rest, ok := strings.Cut(v, ":")
	if !ok {
		return DeadItem{}, false
	}
	l, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return DeadItem{}, false
	}
	n, err := strconv.Atoi(l)
	if err != nil || n > len(rest) {
		return DeadItem{}, false
	}
	d := DeadItem{ID: toInt(id), Attempts: int(toInt(att)), LastError: rest[:n], Payload: []byte(rest[n:])}
	d.Item = string(d.Payload)
	return d, true
}

// Workers lists the registered workers that have not terminated, with
// their heartbeat deadlines.
func (c *Client) Workers(ctx context.Context, job string) ([]WorkerInfo, error) {
	k := keysFor(job)
	zs, err := c.rdb.ZRangeWithScores(ctx, k.workers, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("workers of %q: %w", job, classify(err))
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.Member.(string)
	}
	infos, err := c.rdb.HMGet(ctx, k.winfo, ids...).Result()
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
