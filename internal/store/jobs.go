package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/pkg/jobstate"
)

// NewID returns a random id: an incarnation uid, a request id.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create creates Job name with a defaulted, validated spec and a fresh
// incarnation uid, which it returns. A fixed completion count Job is sealed
// at once: its items are generated as workers lease them. It returns
// ErrExists when the name is taken, or an error wrapping
// jobstate.ErrInvalidSpec.
func (s *Store) Create(ctx context.Context, name string, spec jobstate.Spec) (string, error) {
	if err := jobstate.ValidateName(name); err != nil {
		return "", err
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return "", err
	}
	if spec.Shards > 1 {
		return s.createGroup(ctx, name, spec)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("create %q: %w", name, err)
	}
	ms := func(d jobstate.Duration) string { return strconv.FormatInt(d.D().Milliseconds(), 10) }
	uid := NewID()
	sealed, suspended := "0", "0"
	if spec.Counted() {
		sealed = "1"
	}
	if spec.Suspend {
		suspended = "1"
	}
	args := []any{uid, sealed, suspended, "json", string(js), "batchSize", spec.BatchSize, "leaseMs", ms(spec.Lease),
		"maxAttempts", spec.MaxAttempts, "backoffLimit", *spec.BackoffLimit, "parallelism", spec.Parallelism,
		"activeDeadlineMs", ms(spec.ActiveDeadline), "retryBackoffMs", ms(spec.RetryBackoff),
		"retryBackoffMaxMs", ms(spec.RetryBackoffMax)}
	if spec.Completions != nil {
		args = append(args, "completions", *spec.Completions)
	}
	if spec.MaxFailedItems != nil {
		args = append(args, "maxFailedItems", *spec.MaxFailedItems)
	}
	if spec.TTLAfterFinished != nil {
		args = append(args, "ttlMs", ms(*spec.TTLAfterFinished))
	}
	if spec.Speculative {
		args = append(args, "speculative", "1")
	}
	if len(spec.SuccessPolicy) > 0 {
		rules := make([]string, len(spec.SuccessPolicy))
		for i, r := range spec.SuccessPolicy {
			rules[i] = r.SucceededIndexes + "|"
			if r.SucceededCount != nil {
				rules[i] += strconv.Itoa(*r.SucceededCount)
			}
		}
		args = append(args, "successPolicy", strings.Join(rules, ";"))
	}
	v, err := s.run(ctx, s.sc.create, name, args...)
	if err != nil {
		return "", fmt.Errorf("create %q: %w", name, err)
	}
	if n, _ := v.(int64); n == 0 {
		// Heal a name whose registry entry was lost (a crash between the
		// two steps): the Job exists, so list must show it.
		if cur, err := s.UID(ctx, name); err == nil {
			_ = s.register(ctx, name, cur)
		}
		return "", fmt.Errorf("create %q: %w", name, ErrExists)
	}
	// The Job exists first, then its name: a name never stands for a Job
	// that was not created. Create delivered twice is one create.
	if err := s.register(ctx, name, uid); err != nil {
		return "", fmt.Errorf("create %q: the Job exists but could not be listed: %w", name, err)
	}
	return uid, nil
}

func (s *Store) register(ctx context.Context, name, uid string) error {
	return classify(s.rdb().HSet(ctx, RegistryKey, name, uid).Err())
}

// UID returns the incarnation uid of Job name (or of sharded Job name),
// or ErrNoJob.
func (s *Store) UID(ctx context.Context, name string) (string, error) {
	if err := s.ready(ctx); err != nil {
		return "", err
	}
	uid, err := s.rdb().HGet(ctx, s.keysOf(name).Key("spec"), "uid").Result()
	if errors.Is(err, redis.Nil) {
		err = s.orGroup(ctx, name, ErrNoJob, func(g Group) error { uid = g.UID; return nil })
		return uid, err
	}
	return uid, classify(err)
}

// Spec returns a Job's (or a sharded Job's) spec and uid. It returns
// ErrNoJob.
func (s *Store) Spec(ctx context.Context, name string) (jobstate.Spec, string, error) {
	if err := s.ready(ctx); err != nil {
		return jobstate.Spec{}, "", err
	}
	v, err := s.rdb().HMGet(ctx, s.keysOf(name).Key("spec"), "json", "uid").Result()
	if err != nil {
		return jobstate.Spec{}, "", classify(err)
	}
	raw, ok := v[0].(string)
	uid, _ := v[1].(string)
	if !ok {
		var spec jobstate.Spec
		err := s.orGroup(ctx, name, ErrNoJob, func(g Group) error { spec, uid = g.Spec, g.UID; return nil })
		return spec, uid, err
	}
	var spec jobstate.Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return jobstate.Spec{}, "", fmt.Errorf("%w: spec of %q: %v", ErrReply, name, err)
	}
	return spec, uid, nil
}

// Seal marks a Job as fully loaded. uid "" is whatever incarnation exists.
// It returns true when this call sealed it, false when it was sealed
// already, and ErrNoJob, ErrReplaced.
func (s *Store) Seal(ctx context.Context, name, uid string) (bool, error) {
	v, err := s.run(ctx, s.sc.seal, name, uid, NewID())
	if err != nil {
		sealed := false
		err = s.orGroup(ctx, name, err, func(g Group) error {
			if err := g.checkUID(uid); err != nil {
				return err
			}
			return eachShard(g, func(sh string) error {
				ok, err := s.Seal(ctx, sh, "")
				sealed = sealed || ok
				return err
			})
		})
		if err != nil {
			return false, fmt.Errorf("seal %q: %w", name, err)
		}
		return sealed, nil
	}
	n, _ := v.(int64)
	return n == 1, nil
}

// SetSuspended suspends (true) or resumes a Job. It returns true when the
// Job changed, and ErrNoJob or ErrFinished.
func (s *Store) SetSuspended(ctx context.Context, name string, suspend bool) (bool, error) {
	op := "resume"
	if suspend {
		op = "suspend"
	}
	v, err := s.run(ctx, s.sc.suspend, name, "", NewID(), op)
	if err != nil {
		changed := false
		err = s.orGroup(ctx, name, err, func(g Group) error {
			var finished int
			err := eachShard(g, func(sh string) error {
				ok, err := s.SetSuspended(ctx, sh, suspend)
				changed = changed || ok
				if errors.Is(err, ErrFinished) {
					// A finished shard has nothing to hand out.
					finished++
					return nil
				}
				return err
			})
			if err == nil && finished == len(g.Shards) {
				return ErrFinished
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("%s %q: %w", op, name, err)
		}
		return changed, nil
	}
	n, _ := v.(int64)
	return n == 1, nil
}

// RetryDeadChunk is how many dead items one call puts back: small enough
// that no call holds Redis for more than a few milliseconds.
const RetryDeadChunk = 200

// RetryDead puts dead items back with fresh attempts, RetryDeadChunk per
// call so no call holds Redis long. A finished Job is reopened only with
// reopen. It returns how many items came back, and ErrNoJob or ErrFinished.
func (s *Store) RetryDead(ctx context.Context, name string, reopen bool) (int, error) {
	total, err := s.retryDead(ctx, name, reopen)
	if err != nil {
		err = s.orGroup(ctx, name, err, func(g Group) (err error) {
			total, err = s.retryDeadGroup(ctx, g, reopen)
			return err
		})
	}
	return total, err
}

func (s *Store) retryDead(ctx context.Context, name string, reopen bool) (int, error) {
	total := 0
	re := "0"
	if reopen {
		re = "1"
	}
	for {
		v, err := s.run(ctx, s.sc.retryDead, name, "", NewID(), RetryDeadChunk, re)
		if err != nil {
			return total, fmt.Errorf("retry dead items of %q: %w", name, err)
		}
		r, ok := v.([]any)
		if !ok || len(r) != 2 {
			return total, replyErr("retrydead", v)
		}
		moved, left := toInt(r[0]), toInt(r[1])
		total += int(moved)
		if left == 0 || moved == 0 {
			return total, nil
		}
	}
}

// Delete removes every key of a Job and its name; a sharded Job's shards
// go with it. It returns ErrNoJob when there was nothing to delete, and
// refuses to delete one shard of a sharded Job that still exists.
func (s *Store) Delete(ctx context.Context, name string) error {
	if spec, _, err := s.Spec(ctx, name); err == nil && spec.Group != "" {
		if g, err := s.Group(ctx, spec.Group); err == nil {
			return fmt.Errorf("delete %q: it is shard %d of the sharded job %q; delete %q, which deletes its %d shards", name, spec.Shard, g.Name, g.Name, len(g.Shards))
		}
	}
	err := s.deleteJob(ctx, name)
	return s.orGroup(ctx, name, err, func(g Group) error { return s.deleteGroup(ctx, g) })
}

func (s *Store) deleteJob(ctx context.Context, name string) error {
	v, err := s.run(ctx, s.sc.deleteJob, name, "")
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if err := s.rdb().HDel(ctx, RegistryKey, name).Err(); err != nil {
		return fmt.Errorf("delete %q: %w", name, classify(err))
	}
	if n, _ := v.(int64); n == 0 {
		return fmt.Errorf("delete %q: %w", name, ErrNoJob)
	}
	return nil
}

// Registered lists the names in the registry, sorted, with the uid each
// was registered with, without checking that their Jobs still exist: a
// reader that reads every Job anyway learns that from its reads, and
// drops a gone Job's name with Unregister.
func (s *Store) Registered(ctx context.Context) ([]string, map[string]string, error) {
	if err := s.ready(ctx); err != nil {
		return nil, nil, err
	}
	reg, err := s.registry(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list jobs: %w", classify(err))
	}
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, reg, nil
}

// Unregister drops name from the registry if it still stands for uid: its
// Job is gone (deleted, expired), and no new Job took the name meanwhile.
func (s *Store) Unregister(ctx context.Context, name, uid string) { s.unregister(ctx, name, uid) }

// Names lists the Jobs that exist, sorted, with their uids. One pipelined
// round trip checks them all (on a Cluster, one per node); names whose Job
// is gone (deleted, expired) are dropped from the registry on the way.
func (s *Store) Names(ctx context.Context) ([]string, map[string]string, error) {
	names, reg, err := s.Registered(ctx)
	if err != nil {
		return nil, nil, err
	}
	pipe := s.rdb().Pipeline()
	cmds := make([]*redis.StringCmd, len(names))
	for i, n := range names {
		cmds[i] = pipe.HGet(ctx, s.keysOf(n).Key("spec"), "uid")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("list jobs: %w", classify(err))
	}
	out := names[:0]
	uids := make(map[string]string, len(names))
	for i, n := range names {
		uid, err := cmds[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Gone: drop the name, unless a new Job took it meanwhile.
			s.unregister(ctx, n, reg[n])
		case err != nil:
			return nil, nil, fmt.Errorf("list jobs: %w", classify(err))
		default:
			if uid != reg[n] {
				_ = s.register(ctx, n, uid)
			}
			out = append(out, n)
			uids[n] = uid
		}
	}
	return out, uids, nil
}

// RegistryPage is how many names one read of the registry asks for: with
// 10,000 Jobs, no one command walks them all (a page of 1000 took 0.8 ms
// of Redis on an idle machine and up to 9.5 ms under the bench's load).
const RegistryPage = 500

// registry reads the registry of Job names with HSCAN, RegistryPage
// names per command.
func (s *Store) registry(ctx context.Context) (map[string]string, error) {
	reg := map[string]string{}
	var cursor uint64
	for {
		kv, next, err := s.rdb().HScan(ctx, RegistryKey, cursor, "", RegistryPage).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			reg[kv[i]] = kv[i+1]
		}
		if cursor = next; cursor == 0 {
			return reg, nil
		}
	}
}

// unregisterScript drops a registry entry only if it still holds uid.
var unregisterScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)

func (s *Store) unregister(ctx context.Context, name, uid string) {
	_ = unregisterScript.Run(ctx, s.rdb(), []string{RegistryKey}, name, uid).Err()
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
