package queue

import "github.com/redis/go-redis/v9"

// Every state change that touches more than one key is one of these Lua
// scripts. Each takes the Job's keys in the order of jobKeys.all() as KEYS
// (KEYS[1] spec ... KEYS[13] pushlog), reads time from the Redis server (so
// worker clocks never matter), and is documented with its ARGV and return.
//
// Encodings inside the scripts:
//   lease hash value  "attempts:payload"
//   retry member      "id:attempts:payload"   (score: ready time, ms)
//   dead value        "attempts:errlen:" .. error .. payload
//   condition field   "cond:<Type>" = "status|reason|ms|message"

const prelude = `
local SPEC, STATE, PENDING, LEASES, RETRY, DEAD, DEDUPE, INDEXES, WORKERS, WINFO, WENDED, RATE, PUSHLOG =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local EVENTS = string.sub(SPEC, 1, -5) .. 'events'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- allow_oom lets a script that frees memory, or needs a little, run while
-- Redis is at maxmemory with noeviction, so that workers can drain a full
-- queue: Redis refuses a deny-oom command (HSET, ZADD, ...) under OOM only
-- as the script's first write, and HDEL of a missing field is a write that
-- is not deny-oom and changes nothing. Push and create do not call it.
local function allow_oom() redis.call('HDEL', STATE, '-') end

local function num(v, d)
  local n = tonumber(v)
  if n == nil then return d end
  return n
end

-- chunked calls cmd on key with list in slices of 1000 (the Lua stack limit).
local function chunked(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

local function lease_key(token) return LEASES .. ':' .. token end

-- split2 splits "a:b" at the first colon.
local function split2(v)
  local c = string.find(v, ':', 1, true)
  return string.sub(v, 1, c - 1), string.sub(v, c + 1)
end

-- take removes item id from the lease hash lk and returns its attempts
-- (a number) and payload, or nil when the lease no longer holds it.
local function take(lk, id)
  local v = redis.call('HGET', lk, id)
  if not v then return nil end
  redis.call('HDEL', lk, id)
  local att, payload = split2(v)
  return tonumber(att), payload
end

local function dead_value(att, err, payload)
  return att .. ':' .. #err .. ':' .. err .. payload
end

-- drained: sealed, nothing pending (or left to generate), leased or retrying.
local function drained(sealed, popped, comp)
  if sealed ~= '1' then return false end
  if redis.call('LLEN', PENDING) > 0 then return false end
  if comp and popped < comp then return false end
  return redis.call('ZCARD', LEASES) == 0 and redis.call('ZCARD', RETRY) == 0
end

-- reclaim returns the items of up to limit expired leases to the retry set
-- (ready now), or to dead when they used their last attempt.
local function reclaim(now, limit, maxAtt)
  local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, limit)
  local n = 0
  for _, token in ipairs(expired) do
    local lk = lease_key(token)
    local kv = redis.call('HGETALL', lk)
    for i = 1, #kv, 2 do
      local id = kv[i]
      local att, payload = split2(kv[i + 1])
      if tonumber(att) >= maxAtt then
        redis.call('HSET', DEAD, id, dead_value(att, 'lease expired: the worker holding the item stopped heartbeating', payload))
      else
        redis.call('ZADD', RETRY, now, id .. ':' .. att .. ':' .. payload)
      end
      n = n + 1
    end
    redis.call('DEL', lk)
    redis.call('ZREM', LEASES, token)
  end
  if #expired > 0 then
    redis.call('HINCRBY', STATE, 'takeovers', #expired)
    redis.call('HINCRBY', STATE, 'failed', n)
    redis.call('HINCRBY', STATE, 'leased', -n)
    redis.call('PUBLISH', EVENTS, 'reclaim')
  end
  return #expired, n
end

-- next_wake is how long (ms) until a lease expires or a retry is due; -1: none.
local function next_wake(now)
  local w = -1
  local l = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
  if l[2] then w = tonumber(l[2]) end
  local r = redis.call('ZRANGE', RETRY, 0, 0, 'WITHSCORES')
  if r[2] and (w < 0 or tonumber(r[2]) < w) then w = tonumber(r[2]) end
  if w < 0 then return -1 end
  return math.max(w - now, 0)
end
`

// createScript creates a Job unless it exists.
// ARGV[1] sealed flag ("0"/"1"); ARGV[2..] spec field/value pairs.
// Returns 1 when created, 0 when the Job already exists.
var createScript = redis.NewScript(prelude + `
if redis.call('EXISTS', SPEC) == 1 then return 0 end
redis.call('HSET', SPEC, unpack(ARGV, 2))
redis.call('HSET', STATE, 'created', now_ms(), 'sealed', ARGV[1])
return 1
`)

// pushScript appends items to the pending list, once per chunk id.
// ARGV[1] "plain" or "dedupe"; ARGV[2] the chunk's id, unique per chunk: a
// chunk sent again (a client retrying after its connection broke, when the
// first send may have been applied) appends nothing and returns what the
// first send appended (the ids are kept in the hash "<job>:chunks" until
// five minutes after the last push); plain: ARGV[3..] items; dedupe:
// ARGV[3..] pairs of (digest, item), an item is pushed only if its digest
// is new.
// Returns the number of items appended, or an error reply NOJOB, SEALED or
// FINISHED (nothing appended).
var pushScript = redis.NewScript(prelude + `
if redis.call('EXISTS', SPEC) == 0 then return redis.error_reply('NOJOB') end
local CHUNKS = string.sub(SPEC, 1, -5) .. 'chunks'
local prev = redis.call('HGET', CHUNKS, ARGV[2])
if prev then return tonumber(prev) end
local st = redis.call('HMGET', STATE, 'sealed', 'phase', 'popped')
if st[1] == '1' then return redis.error_reply('SEALED') end
if st[2] then return redis.error_reply('FINISHED') end
local n = 0
if ARGV[1] == 'plain' then
  n = #ARGV - 2
  for i = 3, #ARGV, 1000 do
    redis.call('RPUSH', PENDING, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
else
  local items = {}
  for i = 3, #ARGV, 2 do
    if redis.call('SADD', DEDUPE, ARGV[i]) == 1 then items[#items + 1] = ARGV[i + 1] end
  end
  n = #items
  if n > 0 then chunked('RPUSH', PENDING, items) end
end
if n > 0 then
  local pos = num(st[3], 0) + redis.call('LLEN', PENDING)
  redis.call('ZADD', PUSHLOG, pos, pos .. ':' .. now_ms())
  redis.call('HSET', CHUNKS, ARGV[2], n)
  redis.call('PEXPIRE', CHUNKS, 300000)
end
return n
`)

// leaseScript registers the worker's heartbeat, reclaims expired leases and
// leases up to n items: due retries first, then pending items in push order,
// then (Indexed Jobs) the next indexes.
// ARGV[1] worker id; ARGV[2] n (0: the spec's batch size).
// Returns {'LEASE', token, expiresMs, id, attempt, payload, ...},
// {'WAIT', reason, wakeMs (-1: none known)}, {'DONE'}, {'FAILED'} or {'NOJOB'}.
var leaseScript = redis.NewScript(prelude + `
allow_oom()
local now = now_ms()
local spec = redis.call('HMGET', SPEC, 'batchSize', 'leaseMs', 'maxAttempts', 'completions')
if not spec[1] then return {'NOJOB'} end
local st = redis.call('HMGET', STATE, 'phase', 'done', 'suspended', 'sealed', 'popped', 'start')
if st[1] == 'Failing' or st[1] == 'Failed' then return {'FAILED'} end
if st[1] == 'Complete' or st[2] == '1' then return {'DONE'} end
local leaseMs, maxAtt, comp = tonumber(spec[2]), tonumber(spec[3]), tonumber(spec[4])
redis.call('ZADD', WORKERS, now + leaseMs, ARGV[1])
reclaim(now, 100, maxAtt)
if st[3] == '1' then return {'WAIT', 'suspended', next_wake(now)} end
local n = tonumber(ARGV[2])
if n <= 0 then n = tonumber(spec[1]) end
local out = {'LEASE', '', now + leaseMs}
local fields = {}
local due = redis.call('ZRANGEBYSCORE', RETRY, '-inf', now, 'LIMIT', 0, n)
for _, m in ipairs(due) do
  local id, rest = split2(m)
  local att, payload = split2(rest)
  att = tonumber(att) + 1
  fields[#fields + 1] = id
  fields[#fields + 1] = att .. ':' .. payload
  out[#out + 1] = id
  out[#out + 1] = att
  out[#out + 1] = payload
end
local got = #due
if got > 0 then chunked('ZREM', RETRY, due) end
local popped = num(st[5], 0)
local p0 = popped
if got < n then
  local items = redis.call('LPOP', PENDING, n - got)
  if items then
    for _, payload in ipairs(items) do
      local id = tostring(popped)
      popped = popped + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = '1:' .. payload
      out[#out + 1] = id
      out[#out + 1] = 1
      out[#out + 1] = payload
    end
    got = got + #items
  end
end
if comp and got < n and popped < comp then
  local stop = math.min(comp, popped + n - got)
  while popped < stop do
    local id = tostring(popped)
    popped = popped + 1
    fields[#fields + 1] = id
    fields[#fields + 1] = '1:' .. id
    out[#out + 1] = id
    out[#out + 1] = 1
    out[#out + 1] = id
    got = got + 1
  end
end
if popped ~= p0 then
  redis.call('HSET', STATE, 'popped', popped)
  redis.call('ZREMRANGEBYSCORE', PUSHLOG, '-inf', popped)
end
if got == 0 then
  if drained(st[4], popped, comp) then
    redis.call('HSET', STATE, 'done', '1')
    redis.call('PUBLISH', EVENTS, 'done')
    return {'DONE'}
  end
  local reason = 'peers'
  if st[4] ~= '1' then reason = 'unsealed' end
  return {'WAIT', reason, next_wake(now)}
end
local token = tostring(redis.call('HINCRBY', STATE, 'lseq', 1))
out[2] = token
chunked('HSET', lease_key(token), fields)
redis.call('ZADD', LEASES, now + leaseMs, token)
redis.call('HINCRBY', STATE, 'leased', got)
if not st[6] then redis.call('HSET', STATE, 'start', now) end
return out
`)

// settleScript records the outcome of leased items, fenced by lease token.
// ARGV: groups of token, nAck, nFail, nRelease, then nAck ids, then nFail
// triples (id, jitter in [0,1), error), then nRelease ids. Acked items count
// as succeeded once; failed ones are retried after a backoff, or dead after
// their last attempt; released ones return at once without using an attempt.
// Items whose lease is gone (expired and taken over) are refused.
// Returns {acked, failed, released, refused} or an error reply NOJOB.
var settleScript = redis.NewScript(prelude + `
allow_oom()
local now = now_ms()
local spec = redis.call('HMGET', SPEC, 'maxAttempts', 'completions', 'retryBackoffMs', 'retryBackoffMaxMs')
if not spec[1] then return redis.error_reply('NOJOB') end
local maxAtt, comp, base, cap = tonumber(spec[1]), tonumber(spec[2]), tonumber(spec[3]), tonumber(spec[4])
local acked, failed, released, refused = 0, 0, 0, 0
local emptied = false
local i = 1
while i <= #ARGV do
  local token = ARGV[i]
  local nA, nF, nR = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  if not redis.call('ZSCORE', LEASES, token) then
    refused = refused + nA + nF + nR
    i = i + nA + 3 * nF + nR
  else
    local lk = lease_key(token)
    if comp then
      -- Indexed: each acked item's index is marked completed.
      for _ = 1, nA do
        local id = ARGV[i]
        i = i + 1
        local v = redis.call('HGET', lk, id)
        if v then
          local _, payload = split2(v)
          local idx = tonumber(payload)
          if idx then redis.call('SETBIT', INDEXES, idx, 1) end
        end
        if redis.call('HDEL', lk, id) == 1 then acked = acked + 1 else refused = refused + 1 end
      end
    else
      -- Work queue: one HDEL per 1000 acks; what it did not delete was
      -- settled before (a repeated ack) and is refused.
      local last = i + nA - 1
      for j = i, last, 1000 do
        local k = math.min(j + 999, last)
        local n = redis.call('HDEL', lk, unpack(ARGV, j, k))
        acked = acked + n
        refused = refused + (k - j + 1) - n
      end
      i = last + 1
    end
    for _ = 1, nF do
      local id, jitter, err = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
      i = i + 3
      local a, payload = take(lk, id)
      if not a then
        refused = refused + 1
      else
        failed = failed + 1
        if a >= maxAtt then
          redis.call('HSET', DEAD, id, dead_value(a, err, payload))
        else
          local d = base
          for _ = 2, a do
            if d >= cap then break end
            d = d * 2
          end
          d = math.min(d, cap)
          d = d / 2 + jitter * d / 2
          redis.call('ZADD', RETRY, now + math.floor(d), id .. ':' .. a .. ':' .. payload)
        end
      end
    end
    for _ = 1, nR do
      local id = ARGV[i]
      i = i + 1
      local a, payload = take(lk, id)
      if not a then
        refused = refused + 1
      else
        released = released + 1
        redis.call('ZADD', RETRY, now, id .. ':' .. (a - 1) .. ':' .. payload)
      end
    end
    if redis.call('EXISTS', lk) == 0 then
      redis.call('ZREM', LEASES, token)
      emptied = true
    end
  end
end
if acked > 0 then
  redis.call('HINCRBY', STATE, 'succeeded', acked)
  local sec = math.floor(now / 1000)
  redis.call('HINCRBY', RATE, sec, acked)
  if redis.call('HLEN', RATE) > 90 then
    local f = redis.call('HKEYS', RATE)
    for _, s in ipairs(f) do
      if tonumber(s) < sec - 70 then redis.call('HDEL', RATE, s) end
    end
  end
end
if failed > 0 then redis.call('HINCRBY', STATE, 'failed', failed) end
local handled = acked + failed + released
if handled > 0 then redis.call('HINCRBY', STATE, 'leased', -handled) end
if released > 0 then redis.call('PUBLISH', EVENTS, 'released') end
if emptied then
  local st = redis.call('HMGET', STATE, 'sealed', 'popped')
  if drained(st[1], num(st[2], 0), comp) then redis.call('PUBLISH', EVENTS, 'drained') end
end
return {acked, failed, released, refused}
`)

// heartbeatScript refreshes a worker's heartbeat and extends the leases it
// still holds.
// ARGV[1] worker id; ARGV[2..] lease tokens.
// Returns {phase, suspended, reregistered (0/1), done, lost tokens...} or
// {'NOJOB'} when the Job was deleted.
var heartbeatScript = redis.NewScript(prelude + `
allow_oom()
local now = now_ms()
local leaseMs = tonumber(redis.call('HGET', SPEC, 'leaseMs'))
if not leaseMs then return {'NOJOB'} end
local st = redis.call('HMGET', STATE, 'phase', 'suspended', 'done')
local phase = st[1] or ''
local rereg = 0
if phase ~= 'Complete' and phase ~= 'Failed' then
  if not redis.call('ZSCORE', WORKERS, ARGV[1]) then rereg = 1 end
  redis.call('ZADD', WORKERS, now + leaseMs, ARGV[1])
end
local out = {phase, st[2] or '0', rereg, st[3] or '0'}
for i = 2, #ARGV do
  if redis.call('ZSCORE', LEASES, ARGV[i]) then
    redis.call('ZADD', LEASES, now + leaseMs, ARGV[i])
  else
    out[#out + 1] = ARGV[i]
  end
end
return out
`)

// registerScript registers a worker before its first lease.
// ARGV[1] worker id; ARGV[2] JSON WorkerInfo.
// Returns {'OK'}, {'DONE'} (the Job is drained: the worker is recorded as
// succeeded and must exit 0 at once), {'FAILED'} or {'NOJOB'}.
var registerScript = redis.NewScript(prelude + `
allow_oom()
local leaseMs = tonumber(redis.call('HGET', SPEC, 'leaseMs'))
if not leaseMs then return {'NOJOB'} end
local st = redis.call('HMGET', STATE, 'phase', 'done')
if st[1] == 'Failing' or st[1] == 'Failed' then return {'FAILED'} end
if st[1] == 'Complete' or st[2] == '1' then
  if redis.call('HSETNX', WENDED, ARGV[1], 'succeeded') == 1 then
    redis.call('HINCRBY', STATE, 'wsucceeded', 1)
  end
  return {'DONE'}
end
redis.call('HSET', WINFO, ARGV[1], ARGV[2])
redis.call('ZADD', WORKERS, now_ms() + leaseMs, ARGV[1])
return {'OK'}
`)

// finishScript records how a worker ended, once per worker id.
// ARGV[1] worker id; ARGV[2] "succeeded", "failed" or "stopped".
// Returns 1 when this call recorded the end, 0 when it was known already,
// or an error reply NOJOB (nothing written: a deleted or expired Job's keys
// must not come back, nor count against a new Job of the same name).
var finishScript = redis.NewScript(prelude + `
if redis.call('EXISTS', SPEC) == 0 then return redis.error_reply('NOJOB') end
allow_oom()
redis.call('ZREM', WORKERS, ARGV[1])
local first = redis.call('HSETNX', WENDED, ARGV[1], ARGV[2])
if first == 1 then
  if ARGV[2] == 'succeeded' then redis.call('HINCRBY', STATE, 'wsucceeded', 1)
  elseif ARGV[2] == 'failed' then redis.call('HINCRBY', STATE, 'wfailed', 1) end
end
redis.call('PUBLISH', EVENTS, 'worker')
return first
`)

// reapScript is the controller's sweep: workers whose heartbeat expired are
// recorded as failed (once), and expired leases are reclaimed.
// ARGV none. Returns {workersLost, leasesReclaimed, itemsReclaimed} or
// {'NOJOB'}.
var reapScript = redis.NewScript(prelude + `
allow_oom()
local maxAtt = tonumber(redis.call('HGET', SPEC, 'maxAttempts'))
if not maxAtt then return {'NOJOB'} end
local now = now_ms()
local lost = 0
local gone = redis.call('ZRANGEBYSCORE', WORKERS, '-inf', now)
for _, w in ipairs(gone) do
  redis.call('ZREM', WORKERS, w)
  if redis.call('HSETNX', WENDED, w, 'lost') == 1 then lost = lost + 1 end
end
if lost > 0 then
  redis.call('HINCRBY', STATE, 'wfailed', lost)
  redis.call('PUBLISH', EVENTS, 'worker')
end
local leases, items = reclaim(now, 1000, maxAtt)
return {lost, leases, items}
`)

// snapshotScript reads everything a status needs in one atomic step.
// ARGV none. Returns {spec JSON, state pairs, pending, leases, retrying,
// dead, workers, liveWorkers, nowMs, rate pairs, oldest push "pos:ms" or empty,
// indexes bitmap or empty} or {'NOJOB'}.
var snapshotScript = redis.NewScript(prelude + `
local spec = redis.call('HGET', SPEC, 'json')
if not spec then return {'NOJOB'} end
local now = now_ms()
local st = redis.call('HGETALL', STATE)
local popped = 0
for i = 1, #st, 2 do if st[i] == 'popped' then popped = tonumber(st[i + 1]) end end
local oldest = redis.call('ZRANGEBYSCORE', PUSHLOG, popped + 1, '+inf', 'LIMIT', 0, 1)
return {spec, st, redis.call('LLEN', PENDING), redis.call('ZCARD', LEASES),
  redis.call('ZCARD', RETRY), redis.call('HLEN', DEAD), redis.call('ZCARD', WORKERS),
  redis.call('ZCOUNT', WORKERS, now, '+inf'), now, redis.call('HGETALL', RATE),
  oldest[1] or '', redis.call('GET', INDEXES) or ''}
`)

// transitionScript moves a Job to another phase if its guard still holds
// (see jobstate.Guard); a decision made on a stale snapshot is refused.
// ARGV[1] guard; ARGV[2] new phase; ARGV[3] condition type; ARGV[4] reason;
// ARGV[5] message. Returns 1 when applied, 0 when refused, or {'NOJOB'}.
var transitionScript = redis.NewScript(prelude + `
allow_oom()
local spec = redis.call('HMGET', SPEC, 'backoffLimit', 'activeDeadlineMs', 'maxFailedItems', 'ttlMs')
if not spec[1] then return {'NOJOB'} end
local now = now_ms()
local st = redis.call('HMGET', STATE, 'phase', 'done', 'suspended', 'start', 'wfailed')
local phase = st[1] or ''
local live = redis.call('ZCOUNT', WORKERS, now, '+inf')
local dead = redis.call('HLEN', DEAD)
local g = ARGV[1]
local ok = false
if g == 'terminated' then
  ok = phase == 'Failing' and live == 0
elseif phase ~= '' then
  ok = false
elseif g == 'backoff-limit' then
  ok = num(st[5], 0) > tonumber(spec[1])
elseif g == 'deadline' then
  local adl = num(spec[2], 0)
  ok = adl > 0 and st[3] ~= '1' and st[4] ~= false and now >= tonumber(st[4]) + adl
elseif g == 'max-failed-items' then
  ok = spec[3] ~= '' and spec[3] ~= false and dead > tonumber(spec[3])
elseif g == 'drained' then
  ok = st[2] == '1' and live == 0 and dead == 0
elseif g == 'drained-dead' then
  ok = st[2] == '1' and live == 0 and dead > 0
end
if not ok then return 0 end
redis.call('HSET', STATE, 'phase', ARGV[2], 'cond:' .. ARGV[3], 'True|' .. ARGV[4] .. '|' .. now .. '|' .. ARGV[5])
if ARGV[2] == 'Complete' or ARGV[2] == 'Failed' then
  redis.call('HSET', STATE, 'completion', now)
  local ttl = tonumber(spec[4])
  if ttl then
    for _, token in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
      redis.call('PEXPIRE', lease_key(token), math.max(ttl, 1))
    end
    for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, math.max(ttl, 1)) end
    redis.call('PEXPIRE', string.sub(SPEC, 1, -5) .. 'chunks', math.max(ttl, 1))
  end
end
redis.call('PUBLISH', EVENTS, ARGV[2])
return 1
`)

// sealScript seals a Job: no more pushes. ARGV none.
// Returns 1 when sealed now, 0 when it was sealed already, or error NOJOB.
var sealScript = redis.NewScript(prelude + `
allow_oom()
if redis.call('EXISTS', SPEC) == 0 then return redis.error_reply('NOJOB') end
if redis.call('HGET', STATE, 'sealed') == '1' then return 0 end
redis.call('HSET', STATE, 'sealed', '1')
redis.call('PUBLISH', EVENTS, 'sealed')
return 1
`)

// suspendScript suspends (ARGV[1] "suspend") or resumes ("resume") a Job.
// Resuming resets the start time, as Kubernetes does, so the active
// deadline counts from the resume. Returns 1 when changed, 0 when it was in
// that state already, or an error reply NOJOB or FINISHED.
var suspendScript = redis.NewScript(prelude + `
if redis.call('EXISTS', SPEC) == 0 then return redis.error_reply('NOJOB') end
local st = redis.call('HMGET', STATE, 'phase', 'suspended', 'start')
if st[1] then return redis.error_reply('FINISHED') end
local now = now_ms()
if ARGV[1] == 'suspend' then
  if st[2] == '1' then return 0 end
  redis.call('HSET', STATE, 'suspended', '1', 'cond:Suspended', 'True|JobSuspended|' .. now .. '|Job suspended')
else
  if st[2] ~= '1' then return 0 end
  redis.call('HSET', STATE, 'suspended', '0', 'cond:Suspended', 'False|JobResumed|' .. now .. '|Job resumed')
  if st[3] then redis.call('HSET', STATE, 'start', now) end
end
redis.call('PUBLISH', EVENTS, ARGV[1])
return 1
`)

// retryDeadScript puts every dead item back, ready now with fresh attempts,
// and returns a finished Job to Running: phase, done flag, completion time,
// terminal conditions, worker failures and key expiry are cleared.
// ARGV none. Returns the number of items put back, or error NOJOB.
var retryDeadScript = redis.NewScript(prelude + `
if redis.call('EXISTS', SPEC) == 0 then return redis.error_reply('NOJOB') end
local now = now_ms()
local kv = redis.call('HGETALL', DEAD)
local members = {}
for i = 1, #kv, 2 do
  local v = kv[i + 1]
  local c1 = string.find(v, ':', 1, true)
  local c2 = string.find(v, ':', c1 + 1, true)
  local errlen = tonumber(string.sub(v, c1 + 1, c2 - 1))
  members[#members + 1] = now
  members[#members + 1] = kv[i] .. ':0:' .. string.sub(v, c2 + 1 + errlen)
end
if #members == 0 then return 0 end
chunked('ZADD', RETRY, members)
redis.call('DEL', DEAD)
redis.call('HDEL', STATE, 'phase', 'done', 'completion', 'cond:Complete', 'cond:Failed', 'cond:FailureTarget')
redis.call('HSET', STATE, 'wfailed', 0)
for _, k in ipairs(KEYS) do redis.call('PERSIST', k) end
redis.call('PUBLISH', EVENTS, 'retry')
return #members / 2
`)

// deleteScript deletes every key of a Job, lease hashes included.
// ARGV none. Returns 1 when the Job existed, 0 otherwise.
var deleteScript = redis.NewScript(prelude + `
local existed = redis.call('EXISTS', SPEC)
for _, token in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
  redis.call('DEL', lease_key(token))
end
redis.call('DEL', unpack(KEYS))
redis.call('DEL', string.sub(SPEC, 1, -5) .. 'chunks')
redis.call('PUBLISH', EVENTS, 'deleted')
return existed
`)

// allScripts are loaded with SCRIPT LOAD before they are pipelined.
var allScripts = []*redis.Script{createScript, pushScript, leaseScript, settleScript,
	heartbeatScript, registerScript, finishScript, reapScript, snapshotScript,
	transitionScript, sealScript, suspendScript, retryDeadScript, deleteScript}
