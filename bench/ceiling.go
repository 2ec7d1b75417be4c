package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The ceiling is the least a correct leased queue must do in Redis, driven
// straight from go-redis: the most items/s this Redis on this machine can
// move through leases and acks. Items are unique in the bench, so an item
// is its own lease member.

const (
	ceilPending = "bench:{ceil}:pending"
	ceilLeases  = "bench:{ceil}:leases"
	ceilDone    = "bench:{ceil}:done"
	ceilSeq     = "bench:{ceil}:seq"
	ceilLeaseMs = 30000
)

// ceilLeaseItem leases up to n items with one lease entry per item.
// KEYS[1] pending, KEYS[2] leases; ARGV[1] n, ARGV[2] lease ms.
// Returns the items (empty when the list is empty).
var ceilLeaseItem = redis.NewScript(`
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then return {} end
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local z = {}
for i, it in ipairs(items) do z[2 * i - 1] = exp; z[2 * i] = it end
redis.call('ZADD', KEYS[2], unpack(z))
return items
`)

// ceilAckItem acks items leased by ceilLeaseItem; only items still leased
// count. KEYS[1] leases, KEYS[2] done counter; ARGV the items.
// Returns how many were counted.
var ceilAckItem = redis.NewScript(`
local n = redis.call('ZREM', KEYS[1], unpack(ARGV))
if n > 0 then redis.call('INCRBY', KEYS[2], n) end
return n
`)

// ceilLeaseBatch leases up to n items with one lease entry per batch: the
// items are kept together in a list under the lease id.
// KEYS[1] pending, KEYS[2] leases, KEYS[3] sequence; ARGV[1] n, ARGV[2]
// lease ms. Returns {id, items...} or {} when the list is empty.
var ceilLeaseBatch = redis.NewScript(`
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then return {} end
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local id = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[2] .. ':' .. id, unpack(items))
redis.call('ZADD', KEYS[2], exp, id)
table.insert(items, 1, tostring(id))
return items
`)

// ceilAckBatch acks a whole batch leased by ceilLeaseBatch, if its lease
// is still current. KEYS[1] leases, KEYS[2] done counter; ARGV[1] lease id,
// ARGV[2] item count. Returns how many items were counted.
var ceilAckBatch = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1] .. ':' .. ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return tonumber(ARGV[2])
`)

// rawPush appends items to a list with RPUSH, 1000 items per command and 8
// commands per round trip: what any client can do at best.
func rawPush(ctx context.Context, rdb *redis.Client, key string, items int) error {
	const chunk, perTrip = 1000, 8
	args := make([]any, 0, chunk)
	pipe := rdb.Pipeline()
	queued := 0
	for i := 0; i < items; i++ {
		args = append(args, payload(i))
		if len(args) == chunk || i == items-1 {
			pipe.RPush(ctx, key, args...)
			args = make([]any, 0, chunk)
			queued++
		}
		if queued == perTrip || (i == items-1 && queued > 0) {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("rpush: %w", err)
			}
			queued = 0
		}
	}
	return nil
}

// ceilingDrain runs in a child: req.Workers goroutines lease req.Batch
// items and ack them until the list is empty.
func ceilingDrain(ctx context.Context, req childReq) (time.Duration, int64, error) {
	opt, err := redis.ParseURL(req.URL)
	if err != nil {
		return 0, 0, err
	}
	opt.PoolSize = req.Workers + 2
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	for _, s := range []*redis.Script{ceilLeaseItem, ceilAckItem, ceilLeaseBatch, ceilAckBatch} {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return 0, 0, fmt.Errorf("load script: %w", err)
		}
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, req.Workers)
	start := time.Now()
	for range req.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ceilingLoop(ctx, rdb, req, &acked); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	if err := errors.Join(<-errs); err != nil {
		return d, acked.Load(), err
	}
	done, err := rdb.Get(ctx, ceilDone).Int64()
	if err != nil {
		return d, acked.Load(), fmt.Errorf("read done counter: %w", err)
	}
	if done != int64(req.Items) {
		return d, done, fmt.Errorf("ceiling counted %d items done, want %d", done, req.Items)
	}
	return d, done, nil
}

func ceilingLoop(ctx context.Context, rdb *redis.Client, req childReq, acked *atomic.Int64) error {
	for {
		if req.PerBatch {
			v, err := ceilLeaseBatch.EvalSha(ctx, rdb, []string{ceilPending, ceilLeases, ceilSeq}, req.Batch, ceilLeaseMs).StringSlice()
			if err != nil {
				return fmt.Errorf("lease: %w", err)
			}
			if len(v) == 0 {
				return nil
			}
			n, err := ceilAckBatch.EvalSha(ctx, rdb, []string{ceilLeases, ceilDone}, v[0], len(v)-1).Int64()
			if err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			acked.Add(n)
			continue
		}
		v, err := ceilLeaseItem.EvalSha(ctx, rdb, []string{ceilPending, ceilLeases}, req.Batch, ceilLeaseMs).StringSlice()
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		if len(v) == 0 {
			return nil
		}
		args := make([]any, len(v))
		for i, s := range v {
			args[i] = s
		}
		n, err := ceilAckItem.EvalSha(ctx, rdb, []string{ceilLeases, ceilDone}, args...).Int64()
		if err != nil {
			return fmt.Errorf("ack: %w", err)
		}
		acked.Add(n)
	}
}
