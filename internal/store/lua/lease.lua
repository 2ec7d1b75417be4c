-- lease: refreshes the worker's heartbeat, takes over expired leases, and
-- leases up to n items: items handed back first, then due retries, then
-- pending items in push order, then the next indexes (Indexed Jobs). n is
-- the worker's wish, capped by its maximum and by a fair share of what is
-- left (left / live workers), so the tail of a Job spreads over every
-- worker.
-- KEYS: spec state pending returned leases batches bstart backup retry dead workers reqs lost events
-- ARGV: 1 uid, 2 session, 3 seq (per session, increasing: the token is
--   "session.seq"; a repeated call returns the lease the first one made, an
--   older one is refused), 4 worker id, 5 n wanted, 6 max (0: the spec's
--   batch size): the most items of one lease, 7 leases (default 1): how
--   many leases of at most max items this call may make, for a worker that
--   wants more than max (the ones after the first come from pending items
--   or next indexes only, and are made only while the first is full)
-- Reply: {'LEASE', token, expiresMs, record, avgUs, live, left, then token,
--   record of each further lease (same expiry)};
--   {'WAIT', reason (unsealed, peers, suspended, repeat, lost), wakeMs
--   (-1: none known), avgUs, live}; {'DONE'}; {'FAILED'}; errors NOJOB,
--   REPLACED, LOST, STALE.
local spec, st, e = load(ARGV[1], {'batchSize', 'leaseMs', 'maxAttempts', 'completions', 'speculative'},
  {'phase', 'done', 'suspended', 'sealed', 'popped', 'start', 'avgus', 'pushed', 'leased', 'succeeded', 'seen', 'fseq', 'ver'})
if e then return err(e) end
allow_oom()
local sess, seq = ARGV[2], tonumber(ARGV[3])
local token = sess .. '.' .. ARGV[3]
local leaseMs, maxAtt, comp = tonumber(spec.leaseMs), tonumber(spec.maxAttempts), tonumber(spec.completions)
local avg = num(st.avgus, -1)
local now = now_ms()
local last = num(redis.call('HGET', REQS, 'l' .. sess), -1)
if seq <= last then
  local rec = redis.call('HGET', BATCHES, token)
  if rec then
    local reply = {'LEASE', token, redis.call('ZSCORE', LEASES, token), rec, avg, redis.call('ZCOUNT', WORKERS, now, '+inf'), 0}
    -- The call's further leases that are still held.
    for k = 2, math.min(tonumber(ARGV[7]) or 1, 8) do
      local t = token .. '/' .. k
      local r = redis.call('HGET', BATCHES, t)
      if r then
        reply[#reply + 1] = t
        reply[#reply + 1] = r
      end
    end
    return reply
  end
  if seq == last then return {'WAIT', 'repeat', 0, avg, 0} end
  return err('STALE', 'a lease call older than the last one')
end
redis.call('HSET', REQS, 'l' .. sess, ARGV[3])
-- Every path below changes the Job (changed): a lease in the write of
-- the state hash at the end, the others at once.
if failing(st.phase) then changed() return {'FAILED'} end
if stopping(st.phase) or st.done == '1' then changed() return {'DONE'} end
stalled(st.seen, now, leaseMs)
redis.call('ZADD', WORKERS, now + leaseMs, ARGV[4])
local took = reclaim(now, 1000, maxAtt)
local popped = num(st.popped, 0)
local cap = tonumber(ARGV[6]) > 0 and tonumber(ARGV[6]) or tonumber(spec.batchSize)
local nleases = math.min(math.max(tonumber(ARGV[7]) or 1, 1), 8)
-- total: the items of every lease of this call; n: of the first one.
local total = math.max(1, math.min(tonumber(ARGV[5]), cap * nleases))
local n = math.min(total, cap)
local live, left = -1, -1
if st.suspended == '1' then
  changed()
  live = redis.call('ZCOUNT', WORKERS, now, '+inf')
  redis.call('HSET', STATE, 'seen', now)
  return {'WAIT', 'suspended', next_wake(now), avg, live}
end
if total > 1 then
  -- The fair share: a call never takes more than left / live workers,
  -- so the tail of a Job spreads over every worker. While the pending
  -- items alone give every registered worker (live or not) total, it
  -- cannot bind, and two O(1) reads tell so.
  local lower = redis.call('LLEN', PENDING)
  if comp then lower = lower + math.max(comp - popped, 0) end
  if lower < total * redis.call('ZCARD', WORKERS) then
    live = redis.call('ZCOUNT', WORKERS, now, '+inf')
    left = remaining(now, popped, comp)
    total = math.max(1, math.min(total, math.ceil(left / math.max(live, 1))))
    n = math.min(n, total)
  end
end

local ids, atts, pays = {}, {}, {}
local back = redis.call('LPOP', RETURNED, n)
if back then
  for _, m in ipairs(back) do
    local id, used, pay = split3(m)
    ids[#ids + 1] = tonumber(id)
    atts[#atts + 1] = tonumber(used) + 1
    pays[#pays + 1] = pay
  end
end
if #ids < n then
  local due = redis.call('ZRANGEBYSCORE', RETRY, '-inf', now, 'LIMIT', 0, n - #ids)
  if #due > 0 then
    chunked('ZREM', RETRY, due)
    for _, m in ipairs(due) do
      local id, used, pay = split3(m)
      ids[#ids + 1] = tonumber(id)
      atts[#atts + 1] = tonumber(used) + 1
      pays[#pays + 1] = pay
    end
  end
end
local p0 = popped
local fresh = nil
if #ids < n then
  fresh = redis.call('LPOP', PENDING, n - #ids)
  if fresh then popped = popped + #fresh end
end
-- Next indexes (Indexed Jobs): g0..popped-1, no payloads.
local g0 = popped
if comp and #ids + (fresh and #fresh or 0) < n and popped < comp then
  popped = math.min(comp, popped + n - #ids - (fresh and #fresh or 0))
end
local got = #ids + (fresh and #fresh or 0) + (popped - g0)
if got == 0 then
  changed()
  redis.call('HSET', STATE, 'seen', now)
  if live < 0 then live = redis.call('ZCOUNT', WORKERS, now, '+inf') end
  if left < 0 then left = remaining(now, popped, comp) end
  if st.sealed == '1' and left == 0 and redis.call('ZCARD', LEASES) == 0 and redis.call('ZCARD', RETRY) == 0 then
    -- The books as they are now: a takeover above moved leased.
    if took > 0 then st.leased = redis.call('HGET', STATE, 'leased') end
    local why = lost_reason(st)
    if why then
      redis.call('HSET', STATE, 'lostreason', why)
      redis.call('PUBLISH', EVENTS, 'lost')
      return {'WAIT', 'lost', -1, avg, live}
    end
    redis.call('HSET', STATE, 'done', '1')
    redis.call('PUBLISH', EVENTS, 'done')
    return {'DONE'}
  end
  if spec.speculative == '1' and st.sealed == '1' and left == 0 then
    local b = speculate(now, sess, token, avg, leaseMs, comp ~= nil)
    if b then
      redis.call('HSET', STATE, 'seen', now)
      return {'LEASE', token, now + leaseMs, b, avg, live, 0}
    end
  end
  local reason = 'peers'
  if st.sealed ~= '1' then reason = 'unsealed' end
  if reason == 'peers' and redis.call('ZCARD', LEASES) > 0 then
    -- Peers hold items: those they have not started can come here. The
    -- leases may be this worker's own: hungryw says who is idle, so that
    -- its own heartbeat does not hand its items back to itself.
    if now - num(redis.call('HGET', STATE, 'hungry'), 0) > 100 then
      redis.call('HSET', STATE, 'hungry', now, 'hungryw', ARGV[4])
      redis.call('PUBLISH', EVENTS, 'hungry')
    end
  end
  local wake = next_wake(now)
  if reason == 'peers' and (wake < 0 or wake > 1000) then
    -- Peers hold items: ask again within a second, for the ones they
    -- hand back (and, with --speculative, for a straggler to copy).
    wake = 1000
  end
  return {'WAIT', reason, wake, avg, live}
end
-- run_record is the record of a run of k items from id p0: fresh ones
-- (their payloads) or next indexes (fresh nil). Nothing is done per item
-- in Lua (payloads joins them in C).
local function run_record(fence, p0, k, fresh)
  local r = int(p0)
  if k > 1 then r = r .. '-' .. int(p0 + k - 1) end
  local lens, body = 'i', ''
  if fresh then lens, body = payloads(fresh) end
  return k .. '|' .. fence .. '|' .. r .. '||' .. lens .. '\n' .. body
end
local fence = fence_after(st.fseq, now)
local rec
-- The common cases: a run of fresh items, or of next indexes, and nothing
-- else.
local run = #ids == 0 and ((fresh and popped == g0 and not comp) or (not fresh and popped > g0))
if run then
  rec = run_record(fence, p0, got, fresh)
else
  if fresh then
    for k = 1, #fresh do
      ids[#ids + 1] = p0 + k - 1
      atts[#atts + 1] = 1
      pays[#pays + 1] = fresh[k]
    end
  end
  for x = g0, popped - 1 do
    ids[#ids + 1] = x
    atts[#atts + 1] = 1
  end
  rec = encode(fence, ids, atts, pays, comp ~= nil)
end
redis.call('HSET', BATCHES, token, rec)
redis.call('ZADD', LEASES, now + leaseMs, token)
local reply = {'LEASE', token, now + leaseMs, rec, avg, live, 0}
-- Further leases, while the last one was full: each one a run of the
-- next pending items or indexes, under the token "token/k", with the
-- next fence.
local k, last = 1, got
while run and last == n and got < total and k < nleases do
  local m, more = math.min(n, total - got), nil
  if fresh then
    more = redis.call('LPOP', PENDING, m)
    if not more then break end
    m = #more
  else
    m = math.min(m, comp - popped)
    if m <= 0 then break end
  end
  k = k + 1
  fence = int(tonumber(fence) + 1)
  local t, r = token .. '/' .. k, run_record(fence, popped, m, more)
  redis.call('HSET', BATCHES, t, r)
  redis.call('ZADD', LEASES, now + leaseMs, t)
  reply[#reply + 1] = t
  reply[#reply + 1] = r
  popped, got, last = popped + m, got + m, m
end
local w = {'fseq', fence, 'seen', now, 'ver', int(num(st.ver, 0) + 1)}
-- leased as load read it, unless a takeover above moved it.
if took == 0 then
  w[#w + 1] = 'leased'; w[#w + 1] = int(num(st.leased, 0) + got)
end
if popped ~= p0 then w[#w + 1] = 'popped'; w[#w + 1] = popped end
if not st.start then w[#w + 1] = 'start'; w[#w + 1] = now end
redis.call('HSET', STATE, unpack(w))
if took > 0 then redis.call('HINCRBY', STATE, 'leased', got) end
reply[7] = math.max(left - got, -1)
return reply
