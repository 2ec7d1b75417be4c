package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	ceilRecords = "bench:{ceil}:records"
	ceilState   = "bench:{ceil}:state"
	ceilLeaseMs = 30000
)

// The lease kinds of the ceiling.
const (
	leasePerItem  = "item"   // one lease entry per item
	leasePerBatch = "batch"  // one lease entry per batch, its items in a list
	leaseFenced   = "fenced" // one lease record per batch with a fencing token
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

// The fenced ceiling does the fencing work workq does per batch, and
// nothing else: a fencing token per lease from a counter, one lease record
// per batch ("n|fence|first-last|lens\n" then the payloads, workq's
// format) in a hash under the token with the token's expiry in a zset, the
// leased and succeeded counters in a state hash, and a settle that checks
// the token is still leased, reads the count from the record and counts
// the batch once. What workq does besides (Job incarnation and spec
// checks, idempotent request ids, worker liveness, reclaim, retries, rate
// and duration figures) is left out.

// ceilLeaseFenced leases up to n items as one record.
// KEYS[1] pending, KEYS[2] leases zset, KEYS[3] records hash, KEYS[4]
// state hash; ARGV[1] n, ARGV[2] lease ms. Returns {token, record} or {}.
var ceilLeaseFenced = redis.NewScript(`
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then return {} end
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local fence = redis.call('HINCRBY', KEYS[4], 'fseq', 1)
local p0 = redis.call('HINCRBY', KEYS[4], 'popped', #items) - #items
local l = {}
for k = 1, #items do l[k] = #items[k] end
local token = tostring(fence)
local rec = #items .. '|' .. token .. '|' .. p0 .. '-' .. (p0 + #items - 1) .. '|' .. table.concat(l, ',') .. '\n' .. table.concat(items)
redis.call('HSET', KEYS[3], token, rec)
redis.call('ZADD', KEYS[2], exp, token)
redis.call('HINCRBY', KEYS[4], 'leased', #items)
return {token, rec}
`)

// ceilSettleFenced counts every item of lease token once, if the lease is
// still held. KEYS[1] leases zset, KEYS[2] records hash, KEYS[3] state
// hash; ARGV[1] token. Returns the items counted (0: the lease is gone).
var ceilSettleFenced = redis.NewScript(`
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
local n = tonumber(string.match(rec, '^(%d+)|'))
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'succeeded', n)
redis.call('HINCRBY', KEYS[3], 'leased', -n)
return n
`)

// fencedItem is an item of a fenced-ceiling lease, decoded as a worker
// decodes a workq lease record.
type fencedItem struct {
	id      int64
	fence   int64
	payload []byte
}

// decodeFenced parses a record of ceilLeaseFenced.
func decodeFenced(rec string) ([]fencedItem, error) {
	nl := strings.IndexByte(rec, '\n')
	if nl < 0 {
		return nil, errors.New("fenced ceiling: record without a header")
	}
	f := strings.SplitN(rec[:nl], "|", 4)
	if len(f) != 4 {
		return nil, fmt.Errorf("fenced ceiling: header %q", rec[:nl])
	}
	n, err1 := strconv.Atoi(f[0])
	fence, err2 := strconv.ParseInt(f[1], 10, 64)
	lo, _, _ := strings.Cut(f[2], "-")
	first, err3 := strconv.ParseInt(lo, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("fenced ceiling: header %q: %w", rec[:nl], err)
	}
	items := make([]fencedItem, 0, n)
	body := []byte(rec[nl+1:])
	off := 0
	for l := range strings.SplitSeq(f[3], ",") {
		v, err := strconv.Atoi(l)
		if err != nil || off+v > len(body) {
			return nil, fmt.Errorf("fenced ceiling: lengths %q", f[3])
		}
		items = append(items, fencedItem{id: first + int64(len(items)), fence: fence, payload: body[off : off+v : off+v]})
		off += v
	}
	if len(items) != n || off != len(body) {
		return nil, fmt.Errorf("fenced ceiling: %d items and %d bytes for a record of %d", len(items), off, n)
	}
	return items, nil
}

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
	for _, s := range []*redis.Script{ceilLeaseItem, ceilAckItem, ceilLeaseBatch, ceilAckBatch, ceilLeaseFenced, ceilSettleFenced} {
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
	counter := rdb.Get(ctx, ceilDone)
	if req.Lease == leaseFenced {
		counter = rdb.HGet(ctx, ceilState, "succeeded")
	}
	done, err := counter.Int64()
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
		switch req.Lease {
		case leaseFenced:
			v, err := ceilLeaseFenced.EvalSha(ctx, rdb, []string{ceilPending, ceilLeases, ceilRecords, ceilState}, req.Batch, ceilLeaseMs).StringSlice()
			if err != nil {
				return fmt.Errorf("lease: %w", err)
			}
			if len(v) == 0 {
				return nil
			}
			items, err := decodeFenced(v[1])
			if err != nil {
				return err
			}
			n, err := ceilSettleFenced.EvalSha(ctx, rdb, []string{ceilLeases, ceilRecords, ceilState}, v[0]).Int64()
			if err != nil {
				return fmt.Errorf("settle: %w", err)
			}
			if n != int64(len(items)) {
				return fmt.Errorf("settle of lease %s counted %d items, want %d", v[0], n, len(items))
			}
			acked.Add(n)
		case leasePerBatch:
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
		default:
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
}
