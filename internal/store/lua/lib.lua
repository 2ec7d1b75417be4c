-- lib.lua: helpers shared by every script. The loader puts before it one
-- local per key name (see keys.go; nil when a script does not declare that
-- key) and the phase names of pkg/jobstate (PH_*), then this file, then the
-- script's body.
--
-- Encodings:
--   lease record (field of BATCHES)  "n|fence|ids|atts|lens\n" .. payloads
--       ids  ranges in record order: "4-9,2"; atts: "" when every item runs
--       its first attempt, else one number per item; lens: payload lengths,
--       "n" when the payloads are joined by newlines (none holds one), or
--       "i" when every payload is its id (fixed completion count Jobs)
--   retry member / returned element  "id:attempts:payload" (attempts used)
--   dead member (score: id)          "id:attempts:errlen:" .. error .. payload
--   condition field "cond:<Type>"    "status|reason|ms|message"
--   request slots in REQS            "l<sess>" last lease seq; "s<sess>"
--                                    "seq:reply" of the last settle

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- allow_oom lets a script that frees memory, or needs a little, run while
-- Redis is at maxmemory with noeviction, so that workers can drain a full
-- queue: Redis refuses a deny-oom command only as a script's first write,
-- and HDEL of a missing field is a write that is not deny-oom and changes
-- nothing. Create and push do not call it.
local function allow_oom() redis.call('HDEL', STATE, '-') end

-- changed counts a change of the Job's state in the field ver: a reader
-- that kept a snapshot learns from one HMGET whether it still holds (see
-- store.SnapshotCache). Every script that changes what a snapshot shows
-- calls it.
local function changed() redis.call('HINCRBY', STATE, 'ver', 1) end

local function num(v, d)
  local n = tonumber(v)
  if n == nil then return d end
  return n
end

local function int(n) return string.format('%d', n) end

-- chunked calls cmd on key with list in slices of 1000 (the Lua stack
-- limit; an even size, so that score, member pairs stay whole).
local function chunked(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

-- split2 splits "a:b" at the first colon.
local function split2(v)
  local c = string.find(v, ':', 1, true)
  return string.sub(v, 1, c - 1), string.sub(v, c + 1)
end

-- split3 splits "a:b:c" at the first two colons.
local function split3(v)
  local a, rest = split2(v)
  local b, c = split2(rest)
  return a, b, c
end

-- job_error checks that the Job exists and, when uid is not empty, that it
-- is that incarnation. It returns nil, or the error code of the reply:
-- NOJOB (gone: deleted, expired, flushed, lost in a restart), REPLACED
-- (another Job of that name was created since), LOST (its state hash is
-- gone while its spec is there: evicted).
local function job_error(uid)
  local cur = redis.call('HGET', SPEC, 'uid')
  if not cur then return 'NOJOB' end
  if uid ~= '' and cur ~= uid then return 'REPLACED' end
  if redis.call('EXISTS', STATE) == 0 then return 'LOST' end
  return nil
end

-- err is the one way a script reports an error: a reply whose first word
-- is the code (NOJOB, REPLACED, LOST, SEALED, FINISHED, STALE).
-- load reads fields of SPEC and STATE in one call each and checks the
-- Job as job_error does. It returns spec and state tables keyed by field
-- name, or nil and the error code.
local function load(uid, specFields, stateFields)
  local sf = {'uid'}
  for _, f in ipairs(specFields) do sf[#sf + 1] = f end
  local sv = redis.call('HMGET', SPEC, unpack(sf))
  if not sv[1] then return nil, nil, 'NOJOB' end
  if uid ~= '' and sv[1] ~= uid then return nil, nil, 'REPLACED' end
  local tf = {'uid'}
  for _, f in ipairs(stateFields) do tf[#tf + 1] = f end
  local tv = redis.call('HMGET', STATE, unpack(tf))
  if not tv[1] then return nil, nil, 'LOST' end
  local sp, st = {}, {}
  for i, f in ipairs(sf) do sp[f] = sv[i] end
  for i, f in ipairs(tf) do st[f] = tv[i] end
  return sp, st, nil
end

local ERRORS = {
  NOJOB = 'the job does not exist',
  REPLACED = 'the job was replaced by a new job of the same name',
  LOST = 'the state of the job is gone',
  SEALED = 'the job is sealed',
  FINISHED = 'the job has ended',
  STALE = 'a late copy of a call already answered',
}
local function err(code, msg)
  return redis.error_reply(code .. ' ' .. (msg or ERRORS[code] or code))
end

local function spec_num(field, d) return num(redis.call('HGET', SPEC, field), d) end

-- terminal: the stored phase ends the Job's work (Failing, Succeeding,
-- Failed, Complete).
local function stopping(phase)
  return phase == PH_FAILING or phase == PH_FAILED or phase == PH_COMPLETE or phase == PH_SUCCEEDING
end

local function failing(phase) return phase == PH_FAILING or phase == PH_FAILED end

-- shift moves every score of a zset forward by d.
local function shift(key, d)
  local z = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #z, 2 do
    redis.call('ZADD', key, tonumber(z[i + 1]) + d, z[i])
  end
end

-- stalled takes the time of the last call of this Job (seen, the state's
-- field) and now. A Redis that was paused, forking or failing over served
-- nobody: after a silence longer than half a lease (workers heartbeat at
-- least twice per lease), every lease and heartbeat deadline moves forward
-- by the silence beyond that half, so the stall costs no attempts and no
-- worker failures. The caller records now as seen. Returns the shift in ms.
local function stalled(seen, now, leaseMs)
  local last = tonumber(seen)
  if not last then return 0 end
  local d = now - last - math.floor(leaseMs / 2)
  if d <= 0 then return 0 end
  shift(LEASES, d)
  shift(WORKERS, d)
  redis.call('HINCRBY', STATE, 'stalls', 1)
  redis.call('HINCRBY', STATE, 'stallms', d)
  return d
end

-- touch is stalled for a script that has not read seen, and records now.
local function touch(now, leaseMs)
  local seen = redis.call('HGET', STATE, 'seen')
  redis.call('HSET', STATE, 'seen', now)
  return stalled(seen, now, leaseMs)
end

local function ranges(ids)
  local r = {}
  local i, n = 1, #ids
  while i <= n do
    local j = i
    while j < n and ids[j + 1] == ids[j] + 1 do j = j + 1 end
    if j > i then r[#r + 1] = ids[i] .. '-' .. ids[j] else r[#r + 1] = tostring(ids[i]) end
    i = j + 1
  end
  return table.concat(r, ',')
end

-- numbers writes a list of numbers "1,2,3" (string.format in slices: much
-- cheaper than turning each number into a Lua string).
local function numbers(l)
  local parts = {}
  for i = 1, #l, 4000 do
    local j = math.min(i + 3999, #l)
    parts[#parts + 1] = string.sub(string.format(string.rep('%d,', j - i + 1), unpack(l, i, j)), 1, -2)
  end
  return table.concat(parts, ',')
end

-- payloads joins payloads for a record: by newlines when none holds one
-- (lens 'n'), else with their lengths. Nothing is done per item in Lua:
-- the payloads are joined without a separator and searched for a newline
-- (both in C), then joined by newlines; counting newlines with gsub
-- instead cost twice as much.
local function payloads(pays)
  local joined = table.concat(pays)
  if not string.find(joined, '\n', 1, true) then return 'n', table.concat(pays, '\n') end
  local l = {}
  for k = 1, #pays do l[k] = #pays[k] end
  return numbers(l), joined
end

-- encode builds a lease record from parallel arrays.
local function encode(fence, ids, atts, pays, indexed)
  local n = #ids
  local a = ''
  for k = 1, n do
    if atts[k] ~= 1 then a = numbers(atts) break end
  end
  local lens, body = 'i', ''
  if not indexed then lens, body = payloads(pays) end
  return n .. '|' .. fence .. '|' .. ranges(ids) .. '|' .. a .. '|' .. lens .. '\n' .. body
end

-- head returns a record's item count, fence, ids field and the position of
-- its newline, without touching the payloads.
local function head(rec)
  local nl = string.find(rec, '\n', 1, true)
  local n, fence, ids = string.match(string.sub(rec, 1, nl - 1), '^(%d+)|(%d+)|([^|]*)|')
  return tonumber(n), fence, ids, nl
end

local function expand(idf)
  local ids, c = {}, 0
  for part in string.gmatch(idf, '[^,]+') do
    local a, b = string.match(part, '^(%d+)-(%d+)$')
    if a then
      for x = tonumber(a), tonumber(b) do c = c + 1; ids[c] = x end
    else
      c = c + 1
      ids[c] = tonumber(part)
    end
  end
  return ids
end

-- decode returns a record's ids and attempts (arrays), a function that
-- gives the payload of its k-th item, its fence, and its first id when its
-- ids are one run (else nil). The payloads are cut
-- from the record only when one is asked for, and an Indexed Job's (its
-- index) one at a time: settling a batch in which a few items failed
-- needs theirs only.
local function decode(rec)
  local nl = string.find(rec, '\n', 1, true)
  local n, fence, idf, af, lf = string.match(string.sub(rec, 1, nl - 1), '^(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
  n = tonumber(n)
  local ids = expand(idf)
  local first = tonumber(string.match(idf, '^(%d+)-%d+$') or string.match(idf, '^(%d+)$'))
  local atts = {}
  if af == '' then
    for k = 1, n do atts[k] = 1 end
  else
    local c = 0
    for v in string.gmatch(af, '[^,]+') do c = c + 1; atts[c] = tonumber(v) end
  end
  if lf == 'i' then
    return ids, atts, function(k) return int(ids[k]) end, fence, first
  end
  local pays = nil
  local function pay(k)
    if pays then return pays[k] end
    pays = {}
    local off = nl + 1
    if lf == 'n' then
      for j = 1, n do
        local e = string.find(rec, '\n', off, true) or (#rec + 1)
        pays[j] = string.sub(rec, off, e - 1)
        off = e + 1
      end
    else
      local j = 0
      for v in string.gmatch(lf, '[^,]+') do
        local l = tonumber(v)
        j = j + 1
        pays[j] = string.sub(rec, off, off + l - 1)
        off = off + l
      end
    end
    return pays[k]
  end
  return ids, atts, pay, fence, first
end

local function dead_member(id, att, e, pay)
  return string.format('%d:%d:%d:', id, att, #e) .. e .. pay
end

-- done_within counts the succeeded indexes in lo..hi (DONEIDX ranges),
-- reading only the ranges that reach into lo..hi: its cost grows with the
-- indexes a success policy names, not with the Job.
local function done_within(lo, hi)
  local got = 0
  local rs = redis.call('ZRANGEBYSCORE', DONEIDX, lo, hi)
  local prev = redis.call('ZREVRANGEBYSCORE', DONEIDX, '(' .. lo, '-inf', 'LIMIT', 0, 1)
  if prev[1] then rs[#rs + 1] = prev[1] end
  for _, m in ipairs(rs) do
    local s, e = string.match(m, '^(%d+)-(%d+)$')
    s, e = tonumber(s), tonumber(e)
    got = got + math.max(0, math.min(e, hi) - math.max(s, lo) + 1)
  end
  return got
end

-- success_met checks the Job's success policy (spec field successPolicy:
-- rules "indexes|count" joined by ';', as jobstate.Spec.SuccessPolicyMet
-- reads them) against the succeeded indexes.
local function success_met(policy, succeeded)
  if not policy or policy == '' then return false end
  for rule in string.gmatch(policy, '[^;]+') do
    local idx, cnt = string.match(rule, '^([^|]*)|(%d*)$')
    local need, got = 0, 0
    if idx == '' then
      got = succeeded
    else
      for part in string.gmatch(idx, '[^,]+') do
        local a, b = string.match(part, '^(%d+)-(%d+)$')
        if not a then a, b = part, part end
        a, b = tonumber(a), tonumber(b)
        need = need + b - a + 1
        got = got + done_within(a, b)
      end
    end
    if cnt ~= '' then need = tonumber(cnt) end
    if got >= need then return true end
  end
  return false
end

-- runs turns ids into their runs of consecutive ids, {{a, b}, ...} in
-- order (ids is sorted first if it is not).
local function runs(ids)
  for k = 2, #ids do
    if ids[k] < ids[k - 1] then table.sort(ids) break end
  end
  local r = {}
  local i, n = 1, #ids
  while i <= n do
    local j = i
    while j < n and ids[j + 1] == ids[j] + 1 do j = j + 1 end
    r[#r + 1] = {ids[i], ids[j]}
    i = j + 1
  end
  return r
end

-- mark_done_ranges records runs of succeeded indexes ({{a, b}, ...},
-- sorted, none overlapping) in DONEIDX, a zset of "a-b" ranges scored by
-- a, none overlapping or adjacent. Runs that lie close together are
-- looked up with what DONEIDX holds around them in two reads, and all of
-- them are written merged with one ZREM and one ZADD: settling 1000
-- indexes of which 90 failed makes 4 commands, where one merge per run
-- made about 300. A group's reads span only its own runs and gaps of at
-- most 17 indexes, so they return O(runs) entries.
local function mark_done_ranges(rs)
  if #rs == 0 then return end
  -- stored: the ranges DONEIDX holds that touch a group, in order; gone:
  -- their members, to be written again merged.
  local stored, gone, seen = {}, {}, {}
  local i = 1
  while i <= #rs do
    local j, hi = i, rs[i][2]
    while j < #rs and rs[j + 1][1] - hi <= 17 do
      j = j + 1
      hi = math.max(hi, rs[j][2])
    end
    local lo = rs[i][1]
    local near = redis.call('ZREVRANGEBYSCORE', DONEIDX, lo, '-inf', 'LIMIT', 0, 1)
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', DONEIDX, '(' .. lo, hi + 1)) do near[#near + 1] = m end
    for _, m in ipairs(near) do
      local a, b = string.match(m, '^(%d+)-(%d+)$')
      a, b = tonumber(a), tonumber(b)
      if b >= lo - 1 and not seen[m] then
        seen[m] = true
        stored[#stored + 1] = {a, b}
        gone[#gone + 1] = m
      end
    end
    i = j + 1
  end
  -- Merge the two ordered lists, joining what overlaps or touches.
  local add = {}
  local p, q = 1, 1
  local cs, ce = nil, nil
  while p <= #rs or q <= #stored do
    local r
    if q > #stored or (p <= #rs and rs[p][1] <= stored[q][1]) then
      r = rs[p]
      p = p + 1
    else
      r = stored[q]
      q = q + 1
    end
    if cs and r[1] <= ce + 1 then
      if r[2] > ce then ce = r[2] end
    else
      if cs then
        add[#add + 1] = cs
        add[#add + 1] = string.format('%d-%d', cs, ce)
      end
      cs, ce = r[1], r[2]
    end
  end
  add[#add + 1] = cs
  add[#add + 1] = string.format('%d-%d', cs, ce)
  if #gone > 0 then chunked('ZREM', DONEIDX, gone) end
  chunked('ZADD', DONEIDX, add)
end

-- mark_done_field records the ids of an ids field ("4-9,12") as
-- succeeded indexes.
local function mark_done_field(idf)
  local rs = {}
  for part in string.gmatch(idf, '[^,]+') do
    local a, b = string.match(part, '^(%d+)-(%d+)$')
    if a then
      rs[#rs + 1] = {tonumber(a), tonumber(b)}
    else
      local x = tonumber(part)
      rs[#rs + 1] = {x, x}
    end
  end
  for k = 2, #rs do
    if rs[k][1] < rs[k - 1][1] then
      table.sort(rs, function(x, y) return x[1] < y[1] end)
      break
    end
  end
  mark_done_ranges(rs)
end

-- backoff is the retry delay (ms) after attempt att, with jitter in [0,1):
-- base*2^(att-1) capped, then scaled into [d/2, d). jobstate.Spec.Backoff
-- is the same rule; a test holds them together.
local BACKOFF = {}
local function backoff(att, jitter)
  if not BACKOFF.cap then
    -- Read once per call of the script, not once per failed item.
    local v = redis.call('HMGET', SPEC, 'retryBackoffMs', 'retryBackoffMaxMs')
    BACKOFF.base, BACKOFF.cap = num(v[1], 1000), num(v[2], 300000)
  end
  local base, cap = BACKOFF.base, BACKOFF.cap
  local d = base
  for _ = 2, att do
    if d >= cap then break end
    d = d * 2
  end
  d = math.min(d, cap)
  return math.floor(d / 2 + jitter * d / 2)
end

-- ADDS gathers what a call adds to RETRY and DEAD (score, member pairs)
-- and to RETURNED (members, in order), so that it writes them with one
-- command per key (flush_adds) rather than one per item: taking over a
-- lease of 1000 items made 1000 RPUSH.
local ADDS = {retry = {}, dead = {}, back = {}}

-- retry_later queues item member for a retry at time at.
local function retry_later(at, member)
  local r = ADDS.retry
  r[#r + 1] = at
  r[#r + 1] = member
end

-- settle_failure records a failed run of an item: dead after its last
-- attempt (or at once with dead_now), else retried after delay ms.
-- Returns 'dead' or 'retry'.
local function settle_failure(id, att, pay, e, now, delay, maxAtt, dead_now)
  if dead_now or att >= maxAtt then
    local d = ADDS.dead
    d[#d + 1] = id
    d[#d + 1] = dead_member(id, att, e, pay)
    return 'dead'
  end
  retry_later(now + delay, string.format('%d:%d:', id, att) .. pay)
  return 'retry'
end

-- give_back hands an item back, to be leased again before pending items,
-- with used attempts used.
local function give_back(id, used, pay)
  local b = ADDS.back
  b[#b + 1] = string.format('%d:%d:', id, used) .. pay
end

-- flush_adds writes what settle_failure, retry_later and give_back
-- gathered: whatever reads RETRY, DEAD or RETURNED afterwards sees them.
local function flush_adds()
  chunked('ZADD', RETRY, ADDS.retry)
  chunked('ZADD', DEAD, ADDS.dead)
  chunked('RPUSH', RETURNED, ADDS.back)
  ADDS.retry, ADDS.dead, ADDS.back = {}, {}, {}
end

local function drop_lease(token)
  redis.call('HDEL', BATCHES, token)
  redis.call('HDEL', BSTART, token)
  redis.call('ZREM', LEASES, token)
end

-- started_of reads how many items of a lease started (BSTART "n:ms").
local function started_of(token)
  local v = redis.call('HGET', BSTART, token)
  if not v then return 0, nil end
  local n, ms = string.match(v, '^(%d+):(%d+)$')
  return tonumber(n) or 0, tonumber(ms)
end

-- Speculative copies (backup tasks). A backup lease holds a copy of the one
-- item of a primary lease that runs far longer than items usually take;
-- it is not counted as leased. Whichever is acked first counts, and the
-- other lease is taken away (its token marked lost, so its worker stops
-- the item, and its ack is refused).
local function backup_of(token)
  if not BACKUP then return nil, nil end
  local v = redis.call('HGET', BACKUP, token)
  if not v then return nil, nil end
  return string.sub(v, 1, 1), string.sub(v, 3)
end

local function unlink_backup(a, b)
  redis.call('HDEL', BACKUP, a, b)
end

-- fence_after returns the fence of a new lease, given the last one (cur,
-- the state's fseq): larger than every fence given before, and at least
-- the server clock in µs, so that fences go on growing after Redis comes
-- back with an older state (a restart from a snapshot, a failover to a
-- lagging replica): the clock moved on while the counter went back. The
-- caller stores it as fseq.
local function fence_after(cur, now)
  return int(math.max(num(cur, 0) + 1, now * 1000))
end

-- next_fence is fence_after for a script that has not read fseq; it
-- stores the new fence.
local function next_fence(now)
  local f = fence_after(redis.call('HGET', STATE, 'fseq'), now)
  redis.call('HSET', STATE, 'fseq', f)
  return f
end

-- speculate makes token a backup copy of the one item of another worker's
-- lease (not this session's) that has run longest, if it has run far
-- longer than items usually take (three times the Job's average, and a
-- second more). Returns the backup's record, or nil.
local function speculate(now, sess, token, avgUs, leaseMs, indexed)
  if avgUs <= 0 then return nil end
  local slow = math.max(3 * avgUs / 1000, avgUs / 1000 + 1000)
  local starts = redis.call('HGETALL', BSTART)
  local best, bestAt = nil, nil
  local mine = sess .. '.'
  for i = 1, #starts, 2 do
    local t = starts[i]
    local n, ms = string.match(starts[i + 1], '^(%d+):(%d+)$')
    ms = tonumber(ms)
    if ms and tonumber(n) >= 1 and now - ms > slow and string.sub(t, 1, #mine) ~= mine
      and (not bestAt or ms < bestAt) and redis.call('HEXISTS', BACKUP, t) == 0 then
      best, bestAt = t, ms
    end
  end
  if not best then return nil end
  local rec = redis.call('HGET', BATCHES, best)
  if not rec or head(rec) ~= 1 then return nil end
  local ids, atts, pay = decode(rec)
  local fence = next_fence(now)
  local b = encode(fence, ids, atts, {pay(1)}, indexed)
  redis.call('HSET', BATCHES, token, b)
  redis.call('ZADD', LEASES, now + leaseMs, token)
  redis.call('HSET', BACKUP, token, 'b:' .. best, best, 'p:' .. token)
  return b
end

-- lose takes a lease away from its worker without touching its items'
-- books: its worker learns it is lost and stops its items.
local function lose(token, now)
  drop_lease(token)
  redis.call('ZADD', LOST, now, token)
  redis.call('PUBLISH', EVENTS, 'lost')
end

local EXPIRED_ERROR = 'lease expired: the worker running the item stopped heartbeating (crashed, killed or cut off from Redis)'

-- reclaim takes over leases that expired by now, up to about maxItems
-- items: items the worker had started are charged an attempt (retried at
-- once, or dead after their last); items it had not started go back
-- without using one. Returns leases and items taken over.
local function reclaim(now, maxItems, maxAtt)
  local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 100)
  local leases, items, charged = 0, 0, 0
  for _, token in ipairs(expired) do
    if items >= maxItems then break end
    local rec = redis.call('HGET', BATCHES, token)
    local started = started_of(token)
    local kind, other = backup_of(token)
    if kind == 'b' then
      -- A backup copy expired: the primary goes on; nothing to count.
      unlink_backup(token, other)
      rec = nil
    elseif kind == 'p' and redis.call('ZSCORE', LEASES, other) then
      -- The primary's worker is gone but its backup runs the item: the
      -- backup becomes the item's lease.
      unlink_backup(token, other)
      rec = nil
      leases = leases - 1
    end
    if rec then
      local ids, atts, pay = decode(rec)
      for k = 1, #ids do
        if k <= started then
          charged = charged + 1
          settle_failure(ids[k], atts[k], pay(k), EXPIRED_ERROR, now, 0, maxAtt, false)
        else
          give_back(ids[k], atts[k] - 1, pay(k))
        end
      end
      items = items + #ids
    end
    drop_lease(token)
    redis.call('ZADD', LOST, now, token)
    leases = leases + 1
  end
  flush_adds()
  if leases < 0 then leases = 0 end
  if leases > 0 then
    redis.call('HINCRBY', STATE, 'takeovers', leases)
    redis.call('HINCRBY', STATE, 'leased', -items)
    if charged > 0 then redis.call('HINCRBY', STATE, 'failed', charged) end
    redis.call('PUBLISH', EVENTS, 'reclaim')
  end
  return leases, items
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

-- remaining counts the items a lease could still hand out: returned,
-- pending, retries due now, and indexes not yet generated.
local function remaining(now, popped, comp)
  local n = redis.call('LLEN', RETURNED) + redis.call('LLEN', PENDING) + redis.call('ZCOUNT', RETRY, '-inf', now)
  if comp then n = n + math.max(comp - popped, 0) end
  return n
end

-- lost_reason checks the Job's books: every item it was given is pending,
-- returned, leased, retrying, succeeded or dead. Pushes by plain RPUSH add
-- items the books did not count, never fewer. Returns nil, or why not.
local function lost_reason(st)
  local pushed, popped, leased = num(st.pushed, 0), num(st.popped, 0), num(st.leased, 0)
  local nleases = redis.call('ZCARD', LEASES)
  if (leased > 0) ~= (nleases > 0) or redis.call('HLEN', BATCHES) ~= nleases then
    return 'the lease records do not match the leased items'
  end
  local have = leased + redis.call('ZCARD', RETRY) + redis.call('LLEN', RETURNED) + num(st.succeeded, 0) + redis.call('ZCARD', DEAD)
  if have ~= popped then
    return int(popped) .. ' items were handed out but ' .. int(have) .. ' are leased, retrying, returned, succeeded or dead'
  end
  if popped + redis.call('LLEN', PENDING) < pushed then
    return int(pushed) .. ' items were pushed but only ' .. int(popped + redis.call('LLEN', PENDING)) .. ' are accounted for'
  end
  return nil
end

local function state_table(fields)
  local v = redis.call('HMGET', STATE, unpack(fields))
  local st = {}
  for i, f in ipairs(fields) do st[f] = v[i] end
  return st
end
