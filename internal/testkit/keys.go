package testkit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/workq/workq/internal/store"
)

// Key is one Redis key as a snapshot holds it. Two snapshots of a key are
// equal when nothing of it changed: its type, its content and whether it
// expires.
type Key struct {
	// Value is the key's type and content, canonical: a hash's fields and
	// a set's members are sorted, since their order (and a DUMP of them)
	// follows a hash table that a mere read can rehash. Types that no
	// workq key has are kept as their DUMP.
	Value string
	// Expires is set when the key has a TTL; its exact value moves.
	Expires bool
}

// Snapshot returns every key matching pattern (such as "workq:*"), read
// with SCAN. It fails the test when Redis does not answer.
func Snapshot(t testing.TB, rdb redis.UniversalClient, pattern string) map[string]Key {
	t.Helper()
	ctx := t.Context()
	out := map[string]Key{}
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := keyValue(ctx, rdb, k)
		if errors.Is(err, redis.Nil) {
			continue // deleted meanwhile
		}
		if err != nil {
			t.Fatalf("snapshot: read %s: %v", k, err)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatalf("snapshot: pttl %s: %v", k, err)
		}
		out[k] = Key{Value: v, Expires: ttl > 0}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("snapshot: scan %s: %v", pattern, err)
	}
	return out
}

// JobKeys is a snapshot of one Job.
type JobKeys struct {
	Keys   map[string]Key // every key workq:{JOB}:*
	Listed bool           // the registry of Jobs (store.RegistryKey) names the Job
}

// SnapshotJob returns every key of a Job and whether the registry of Jobs
// (the hash store.RegistryKey, name -> incarnation uid) names it: two
// snapshots are equal only if nothing of the Job changed.
func SnapshotJob(t testing.TB, rdb redis.UniversalClient, job string) JobKeys {
	t.Helper()
	keys := Snapshot(t, rdb, "workq:{"+job+"}:*")
	listed, err := rdb.HExists(t.Context(), store.RegistryKey, job).Result()
	if err != nil {
		t.Fatalf("snapshot: is %s in %s: %v", job, store.RegistryKey, err)
	}
	return JobKeys{Keys: keys, Listed: listed}
}

// keyValue returns a key's Value; redis.Nil when it is gone.
func keyValue(ctx context.Context, rdb redis.UniversalClient, k string) (string, error) {
	typ, err := rdb.Type(ctx, k).Result()
	if err != nil {
		return "", err
	}
	var parts []string
	switch typ {
	case "none":
		return "", redis.Nil
	case "string":
		v, err := rdb.Get(ctx, k).Result()
		if err != nil {
			return "", err
		}
		parts = []string{strconv.Quote(v)}
	case "list":
		vs, err := rdb.LRange(ctx, k, 0, -1).Result()
		if err != nil {
			return "", err
		}
		for _, v := range vs {
			parts = append(parts, strconv.Quote(v))
		}
	case "hash":
		m, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			return "", err
		}
		for f, v := range m {
			parts = append(parts, strconv.Quote(f)+"="+strconv.Quote(v))
		}
		sort.Strings(parts)
	case "set":
		ms, err := rdb.SMembers(ctx, k).Result()
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			parts = append(parts, strconv.Quote(m))
		}
		sort.Strings(parts)
	case "zset":
		zs, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			return "", err
		}
		for _, z := range zs {
			parts = append(parts, fmt.Sprintf("%q=%v", z.Member, z.Score))
		}
	default:
		d, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			return "", err
		}
		parts = []string{strconv.Quote(d)}
	}
	return typ + ":" + strings.Join(parts, ","), nil
}
