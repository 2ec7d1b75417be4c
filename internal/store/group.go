package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/pkg/jobstate"
)

// A sharded Job (Spec.Shards > 1) is a record under its own name, in its
// own slot, and K shards: Jobs of their own, NAME-shard-0 to
// NAME-shard-K-1, each in its own slot with every key and script of a Job,
// so fencing, idempotence and the books hold per shard unchanged. Pushes
// deal items over the shards, workers lease from all of them, control
// calls (seal, suspend, resume, retry, delete) go to each, and the Job's
// status is the sum of the shards'. When one shard fails, the controller
// fails the others (GuardShardFailed).

// ShardName returns the name shard k of the sharded Job group has unless
// it was placed (see placeShards): Group.Shards has the names.
func ShardName(group string, k int) string { return group + "-shard-" + strconv.Itoa(k) }

// Group is a sharded Job: its name, incarnation, spec and shards.
type Group struct {
	Name   string
	UID    string
	Spec   jobstate.Spec
	Shards []string // the shards' names, in order
}

// Group reads sharded Job name from its record, or returns ErrNoJob when
// name is not one (it may be a Job of one slot, or nothing).
func (s *Store) Group(ctx context.Context, name string) (Group, error) {
	if err := s.ready(ctx); err != nil {
		return Group{}, err
	}
	v, err := s.rdb().HMGet(ctx, s.keysOf(name).Key("group"), "uid", "json", "names").Result()
	if err != nil {
		return Group{}, classify(err)
	}
	uid, ok := v[0].(string)
	raw, _ := v[1].(string)
	names, _ := v[2].(string)
	if !ok {
		return Group{}, ErrNoJob
	}
	var spec jobstate.Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return Group{}, fmt.Errorf("%w: spec of sharded job %q: %v", ErrReply, name, err)
	}
	g := Group{Name: name, UID: uid, Spec: spec, Shards: shardNames(name, spec.Shards)}
	if names != "" {
		if placed := strings.Split(names, ","); len(placed) == spec.Shards {
			g.Shards = placed
		}
	}
	return g, nil
}

// orGroup runs f on the sharded Job name when err says that no Job of
// that name exists and a sharded one does; otherwise it returns err.
func (s *Store) orGroup(ctx context.Context, name string, err error, f func(Group) error) error {
	if !errors.Is(err, ErrNoJob) {
		return err
	}
	g, gerr := s.Group(ctx, name)
	if gerr != nil {
		if errors.Is(gerr, ErrNoJob) {
			return err
		}
		return gerr
	}
	return f(g)
}

// createGroup creates a sharded Job: its record first (which takes the
// name, atomically against a Job of one slot), then its shards. A shard
// name taken by another Job undoes the create. spec is defaulted and
// valid.
func (s *Store) createGroup(ctx context.Context, name string, spec jobstate.Spec) (string, error) {
	if long := ShardName(name, spec.Shards-1); len(long) > jobstate.MaxNameLength {
		return "", fmt.Errorf("%w: job name %q is too long for %d shards: its last shard would be %q (%d characters); use a name of at most %d characters",
			jobstate.ErrInvalidSpec, name, spec.Shards, long, len(long), jobstate.MaxNameLength-(len(long)-len(name)))
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("create %q: %w", name, err)
	}
	names, err := s.placeShards(ctx, name, spec.Shards)
	if err != nil {
		return "", fmt.Errorf("create %q: %w", name, err)
	}
	uid := NewID()
	v, err := s.run(ctx, s.sc.group, name, uid, spec.Shards, string(js), strings.Join(names, ","))
	if err != nil {
		return "", fmt.Errorf("create %q: %w", name, err)
	}
	if n, _ := v.(int64); n == 0 {
		return "", fmt.Errorf("create %q: %w", name, ErrExists)
	}
	shard := spec
	shard.Shards, shard.Group = 0, name
	for k := range spec.Shards {
		shard.Shard = k
		if spec.Counted() {
			// Contiguous blocks: shard k holds [k·C/K, (k+1)·C/K).
			c, n := *spec.Completions, spec.Shards
			shard.IndexBase = k * c / n
			shard.Completions = jobstate.Ptr((k+1)*c/n - shard.IndexBase)
		}
		if _, err := s.Create(ctx, names[k], shard); err != nil {
			// Undo: the name must not stand for a Job without its shards.
			derr := s.deleteGroup(ctx, Group{Name: name, UID: uid, Spec: spec, Shards: names[:k]})
			if errors.Is(err, ErrExists) {
				err = fmt.Errorf("%w: its shard name %q is taken by another job; delete that job or choose another name", ErrExists, names[k])
			}
			return "", errors.Join(fmt.Errorf("create %q: %w", name, err), derr)
		}
	}
	if err := classify(s.rdb().HSet(ctx, GroupsKey, name, uid).Err()); err != nil {
		return "", fmt.Errorf("create %q: the job exists but could not be listed: %w", name, err)
	}
	return uid, nil
}

// placeShards names the shards of sharded Job name: NAME-shard-k, except
// on a Redis Cluster, where a shard whose slot falls on a node that holds
// its share of the shards already (ceil(K / nodes)) is named
// NAME-shard-k-1, -2, ... until one falls on a node that does not. So K
// shards spread evenly over min(K, nodes) nodes, whatever the name. The
// names are kept in the Job's record: a later change of the Cluster's
// slots moves no shard.
func (s *Store) placeShards(ctx context.Context, name string, k int) ([]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	names := shardNames(name, k)
	cc, ok := s.rdb().(*redis.ClusterClient)
	if !ok {
		return names, nil
	}
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, classify(err)
	}
	owner := func(slot int64) string {
		for _, r := range slots {
			if slot >= int64(r.Start) && slot <= int64(r.End) && len(r.Nodes) > 0 {
				return r.Nodes[0].ID
			}
		}
		return ""
	}
	nodes := map[string]bool{}
	for _, r := range slots {
		if len(r.Nodes) > 0 {
			nodes[r.Nodes[0].ID] = true
		}
	}
	share := (k + len(nodes) - 1) / max(len(nodes), 1)
	held := map[string]int{}
	for i := range names {
		pick, at := names[i], ""
		for try := 0; try < 8*len(nodes)+8; try++ {
			cand := names[i]
			if try > 0 {
				cand = names[i] + "-" + strconv.Itoa(try)
			}
			if len(cand) > jobstate.MaxNameLength {
				break
			}
			slot, err := cc.ClusterKeySlot(ctx, KeysFor(cand).Key("spec")).Result()
			if err != nil {
				return nil, classify(err)
			}
			n := owner(slot)
			if try == 0 {
				at = n // kept if no name does better
			}
			if held[n] < share {
				pick, at = cand, n
				break
			}
		}
		names[i] = pick
		held[at]++
	}
	return names, nil
}

func shardNames(group string, n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = ShardName(group, k)
	}
	return out
}

// dropGroupScript removes a sharded Job's record if it is still
// incarnation uid.
var dropGroupScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'uid') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// deleteGroup deletes the shards of g, then its record and its name.
func (s *Store) deleteGroup(ctx context.Context, g Group) error {
	for _, sh := range g.Shards {
		if err := s.deleteJob(ctx, sh); err != nil && !errors.Is(err, ErrNoJob) {
			return fmt.Errorf("delete %q: %w", g.Name, err)
		}
	}
	if err := dropGroupScript.Run(ctx, s.rdb(), []string{s.keysOf(g.Name).Key("group")}, g.UID).Err(); err != nil {
		return fmt.Errorf("delete %q: %w", g.Name, classify(err))
	}
	_ = unregisterScript.Run(ctx, s.rdb(), []string{GroupsKey}, g.Name, g.UID).Err()
	return nil
}

// GroupNames lists the sharded Jobs, sorted by name.
func (s *Store) GroupNames(ctx context.Context) ([]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	m, err := s.rdb().HGetAll(ctx, GroupsKey).Result()
	if err != nil {
		return nil, classify(err)
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// groupStatus reads every shard in one pipelined round trip (per node) and
// sums them: the status of the sharded Job.
func (s *Store) groupStatus(ctx context.Context, g Group) (jobstate.Status, error) {
	snaps, errs := s.Snapshots(ctx, g.Shards)
	shards := make([]jobstate.Status, len(g.Shards))
	for k, err := range errs {
		if errors.Is(err, ErrNoJob) {
			return jobstate.Status{}, fmt.Errorf("status of %q: %w", g.Name, g.missing(g.Shards[k]))
		}
		if err != nil {
			return jobstate.Status{}, err
		}
		shards[k] = snaps[k].Status
	}
	st := SumShards(g, shards)
	if g.Spec.Counted() {
		// The shards' blocks are in index order: their lists concatenate.
		var done, failed []string
		for k, sh := range g.Shards {
			c, f, err := s.Indexes(ctx, sh, shards[k].Items.Dead)
			if err != nil {
				return jobstate.Status{}, err
			}
			done = append(done, jobstate.ShiftIntervals(c, shards[k].Spec.IndexBase))
			failed = append(failed, jobstate.ShiftIntervals(f, shards[k].Spec.IndexBase))
		}
		st.CompletedIndexes, st.FailedIndexes = jobstate.JoinIntervals(done...), jobstate.JoinIntervals(failed...)
	}
	return st, nil
}

// SumShards is the status of sharded Job g whose shards have statuses
// shards: counts add up, the phase is the Job's as a whole (Failed when a
// shard failed, Complete when all are), and conditions come from the
// shards, named.
func SumShards(g Group, shards []jobstate.Status) jobstate.Status {
	st := jobstate.Status{Name: g.Name, UID: g.UID, Spec: g.Spec, Kind: g.Spec.Kind(), Sealed: true, Done: true}
	conds := map[jobstate.ConditionType]jobstate.Condition{}
	var failed, dead, finished, complete, running, suspended int
	var eta float64
	etaKnown := true
	for k, sh := range shards {
		st.Sealed = st.Sealed && sh.Sealed
		st.Done = st.Done && sh.Done
		st.Suspended = st.Suspended || sh.Suspended
		addItems(&st.Items, sh.Items)
		st.Leases += sh.Leases
		st.Active += sh.Active
		st.Ready += sh.Ready
		st.Succeeded += sh.Succeeded
		st.Failed += sh.Failed
		st.Throughput += sh.Throughput
		st.OldestPendingAge = max(st.OldestPendingAge, sh.OldestPendingAge)
		if sh.Now.After(st.Now) {
			st.Now = sh.Now
		}
		if sh.StartTime != nil && (st.StartTime == nil || sh.StartTime.Before(*st.StartTime)) {
			st.StartTime = sh.StartTime
		}
		if sh.CompletionTime != nil && (st.CompletionTime == nil || sh.CompletionTime.After(*st.CompletionTime)) {
			st.CompletionTime = sh.CompletionTime
		}
		if sh.StateLost != "" && st.StateLost == "" {
			st.StateLost = g.Shards[k] + ": " + sh.StateLost
		}
		if sh.ETASeconds != nil {
			eta = max(eta, *sh.ETASeconds)
		} else if !sh.Phase.Finished() {
			etaKnown = false
		}
		switch p := sh.Phase; {
		case p.Failed() && FailsEarly(sh):
			failed++
		case p.Failed():
			// Drained with dead items: the others go on to their end, as
			// a Job of one slot runs every item before it fails.
			dead++
		case p == jobstate.PhaseComplete || p == jobstate.PhaseSucceeding:
			complete++
		case p == jobstate.PhaseRunning:
			running++
		case p == jobstate.PhaseSuspended:
			suspended++
		}
		if sh.Phase.Finished() {
			finished++
		}
		for _, c := range sh.Conditions {
			// The shard that failed first explains the Job's failure; a
			// shard stopped for it repeats the explanation.
			if c.Reason == jobstate.ReasonShardFailed {
				continue
			}
			c.Message = g.Shards[k] + ": " + c.Message
			if cur, ok := conds[c.Type]; !ok || c.LastTransitionTime.After(cur.LastTransitionTime) {
				conds[c.Type] = c
			}
		}
	}
	n := len(shards)
	switch {
	case failed > 0 && finished == n:
		st.Phase = jobstate.PhaseFailed
	case failed > 0:
		st.Phase = jobstate.PhaseFailing
	case dead > 0 && finished == n:
		st.Phase = jobstate.PhaseFailed
	case complete == n && finished == n:
		st.Phase = jobstate.PhaseComplete
	case complete == n:
		st.Phase = jobstate.PhaseSucceeding
	case running > 0 || complete > 0 || dead > 0:
		st.Phase = jobstate.PhaseRunning
	case suspended > 0:
		st.Phase = jobstate.PhaseSuspended
	default:
		st.Phase = jobstate.PhasePending
	}
	if !st.Phase.Finished() {
		st.CompletionTime = nil
	}
	if etaKnown && !st.Phase.Finished() {
		st.ETASeconds = &eta
	}
	for t, c := range conds {
		keep := true
		switch t {
		case jobstate.ConditionComplete, jobstate.ConditionSuccessCriteriaMet:
			keep = !st.Phase.Failed() && complete == n
		case jobstate.ConditionFailed, jobstate.ConditionFailureTarget:
			keep = st.Phase.Failed()
			if keep && failed > 0 && !early(c.Reason) {
				// The shard that stopped the Job explains it, not one
				// that had merely drained with dead items.
				keep = false
			}
		case jobstate.ConditionSuspended:
			keep = c.Status != "True" || st.Phase == jobstate.PhaseSuspended
		}
		if keep {
			st.Conditions = append(st.Conditions, c)
		}
	}
	jobstate.SortConditions(st.Conditions)
	return st
}

func addItems(a *jobstate.Items, b jobstate.Items) {
	a.Total += b.Total
	a.Pending += b.Pending
	a.Leased += b.Leased
	a.Retrying += b.Retrying
	a.Returned += b.Returned
	a.Succeeded += b.Succeeded
	a.Dead += b.Dead
	a.FailedAttempts += b.FailedAttempts
	a.Takeovers += b.Takeovers
}

// eachShard runs f on every shard of g in order and joins the errors;
// ErrNoJob of a shard is reported with the fix.
func eachShard(g Group, f func(shard string) error) error {
	var errs []error
	for _, sh := range g.Shards {
		if err := f(sh); err != nil {
			if errors.Is(err, ErrNoJob) {
				err = g.missing(sh)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrShardMissing: a shard of a sharded Job does not exist (it was
// deleted alone, expired, or the create that made the Job was cut short).
var ErrShardMissing = errors.New("a shard of the sharded job is missing")

// missing is the error for shard of g not found.
func (g Group) missing(shard string) error {
	return fmt.Errorf("%w: %q of %q (deleted, expired, or its create was cut short); delete %q and create it again",
		ErrShardMissing, shard, g.Name, g.Name)
}

// checkUID refuses a call bound to another incarnation of sharded Job g.
func (g Group) checkUID(uid string) error {
	if uid != "" && uid != g.UID {
		return ErrReplaced
	}
	return nil
}

// retryDeadGroup puts back the dead items of every shard of g and
// returns how many came back. With reopen, the shards that failed on their own are
// reopened before those stopped for them, so that no controller sees a
// reopened shard beside a sibling still failed and stops it again.
func (s *Store) retryDeadGroup(ctx context.Context, g Group, reopen bool) (int, error) {
	snaps, _ := s.Snapshots(ctx, g.Shards)
	order := make([]string, 0, len(g.Shards))
	var later []string
	for k, sh := range g.Shards {
		if StoppedForSibling(snaps[k].Status) {
			later = append(later, sh)
		} else {
			order = append(order, sh)
		}
	}
	order = append(order, later...)
	var total, finished int
	var errs []error
	// With reopen, a second pass: a controller that read a shard failed
	// before the first pass reopened it may stop a sibling with that old
	// news. Before the second pass reaches the sibling, the second pass
	// reopens it; after, the stop is refused, as the sibling's reopen
	// generation has moved since the controller read it (ApplyAtGen).
	passes := 1
	if reopen {
		passes = 2
	}
	for pass := range passes {
		finished = 0
		for _, sh := range order {
			n, err := s.retryDead(ctx, sh, reopen)
			total += n
			switch {
			case errors.Is(err, ErrFinished):
				finished++
			case errors.Is(err, ErrNoJob) && pass == 0:
				errs = append(errs, g.missing(sh))
			case err != nil && pass == 0:
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 && finished == len(g.Shards) {
		return total, fmt.Errorf("retry dead items of %q: %w", g.Name, ErrFinished)
	}
	return total, errors.Join(errs...)
}

// FailsEarly reports whether a failed shard stops its siblings: it failed
// before running all its items (a limit, the deadline, a FailJob rule,
// lost state), not by draining with dead items, after which the other
// shards run their own items to the end as one Job would.
func FailsEarly(st jobstate.Status) bool {
	for _, c := range st.Conditions {
		if c.Type == jobstate.ConditionFailureTarget || c.Type == jobstate.ConditionFailed {
			return early(c.Reason)
		}
	}
	return true
}

func early(reason string) bool {
	return reason != jobstate.ReasonFailedItems && reason != jobstate.ReasonFailedIndexes
}

// StoppedForSibling reports whether a shard failed because another shard
// did.
func StoppedForSibling(st jobstate.Status) bool {
	for _, c := range st.Conditions {
		if c.Type == jobstate.ConditionFailureTarget && c.Reason == jobstate.ReasonShardFailed {
			return true
		}
	}
	return false
}

// WithGroups adds to the Jobs listed a row for each sharded Job, the sum
// of its shards, before them; a sharded Job whose shards are not all
// listed is left out.
func (s *Store) WithGroups(ctx context.Context, all []jobstate.Status) []jobstate.Status {
	names, err := s.GroupNames(ctx)
	if err != nil || len(names) == 0 {
		return all
	}
	byName := make(map[string]jobstate.Status, len(all))
	for _, st := range all {
		byName[st.Name] = st
	}
	for _, n := range names {
		g, err := s.Group(ctx, n)
		if err != nil {
			continue
		}
		shards := make([]jobstate.Status, 0, len(g.Shards))
		for _, sh := range g.Shards {
			if st, ok := byName[sh]; ok {
				shards = append(shards, st)
			}
		}
		if len(shards) == len(g.Shards) {
			all = append(all, SumShards(g, shards))
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}
