-- transition: moves a Job to another phase if its guard (see
-- jobstate.Guard) still holds, so a decision taken on a stale snapshot is
-- refused instead of applied.
-- KEYS: spec state pending returned leases batches bstart backup retry dead dedupe doneidx workers winfo wended rate pushlog chunks reqs lost results events
-- ARGV: 1 uid ('' the current incarnation), 2 request id (a repeated call
--   returns 1 again), 3 guard, 4 new phase, 5 condition type, 6 reason,
--   7 message, 8 (GUARD_SHARD_FAILED, optional) the reopen generation
--   (state field rgen, which retry --reopen raises) the stop was decided
--   at: a stop decided before a reopen is refused after it
-- Reply: 1 applied, 0 refused (the guard no longer holds); errors NOJOB,
--   REPLACED.
local g = ARGV[3]
local e = job_error(ARGV[1])
if e == 'LOST' and g == GUARD_STATE_LOST then
  -- The state hash itself is gone: the Job can only end, Failed.
  local now = now_ms()
  redis.call('HSET', STATE, 'uid', redis.call('HGET', SPEC, 'uid'), 'phase', PH_FAILED, 'completion', now,
    'lostreason', 'the state of the Job is gone', 'trid', ARGV[2],
    'cond:Failed', 'True|' .. ARGV[6] .. '|' .. now .. '|' .. ARGV[7])
  changed()
  redis.call('PUBLISH', EVENTS, PH_FAILED)
  return 1
end
if e then return err(e) end
allow_oom()
local st = state_table({'phase', 'done', 'suspended', 'start', 'wfailed', 'failjob', 'trid', 'lostreason',
  'pushed', 'popped', 'leased', 'succeeded'})
if st.trid == ARGV[2] then return 1 end
local spec = redis.call('HMGET', SPEC, 'backoffLimit', 'activeDeadlineMs', 'maxFailedItems', 'ttlMs', 'successPolicy')
local now = now_ms()
local phase = st.phase or ''
local live = redis.call('ZCOUNT', WORKERS, now, '+inf')
local dead = redis.call('ZCARD', DEAD)
local lost = st.lostreason or lost_reason(st)
local ok = false
if g == GUARD_TERMINATED then
  ok = phase == PH_FAILING and live == 0
elseif g == GUARD_SUCCEEDED then
  ok = phase == PH_SUCCEEDING and live == 0
elseif phase ~= '' then
  ok = false
elseif g == GUARD_BACKOFF_LIMIT then
  ok = num(st.wfailed, 0) > tonumber(spec[1])
elseif g == GUARD_DEADLINE then
  local adl = num(spec[2], 0)
  ok = adl > 0 and st.suspended ~= '1' and tonumber(st.start) ~= nil and now >= tonumber(st.start) + adl
elseif g == GUARD_MAX_FAILED_ITEMS then
  ok = spec[3] ~= false and spec[3] ~= '' and dead > tonumber(spec[3])
elseif g == GUARD_FAILURE_POLICY then
  ok = st.failjob ~= false and st.failjob ~= nil and st.failjob ~= ''
elseif g == GUARD_STATE_LOST then
  ok = lost ~= nil
elseif g == GUARD_SUCCESS_POLICY then
  ok = success_met(spec[5], num(st.succeeded, 0))
elseif g == GUARD_DRAINED then
  ok = st.done == '1' and dead == 0 and lost == nil
elseif g == GUARD_DRAINED_DEAD then
  ok = st.done == '1' and dead > 0
elseif g == GUARD_SHARD_FAILED then
  ok = (ARGV[8] or '') == '' or (redis.call('HGET', STATE, 'rgen') or '0') == ARGV[8]
end
if not ok then return 0 end
changed()
local to = ARGV[4]
redis.call('HSET', STATE, 'phase', to, 'trid', ARGV[2], 'cond:' .. ARGV[5], 'True|' .. ARGV[6] .. '|' .. now .. '|' .. ARGV[7])
if lost and g == GUARD_STATE_LOST then redis.call('HSET', STATE, 'lostreason', lost) end
if to == PH_FAILED then
  -- A failed Job holds no leases: what its vanished workers held goes back.
  local tokens = redis.call('HKEYS', BATCHES)
  local back = 0
  for _, token in ipairs(tokens) do
    local ids, atts, pay = decode(redis.call('HGET', BATCHES, token))
    for k = 1, #ids do give_back(ids[k], atts[k] - 1, pay(k)) end
    back = back + #ids
    drop_lease(token)
  end
  flush_adds()
  if back > 0 then redis.call('HINCRBY', STATE, 'leased', -back) end
  redis.call('DEL', LEASES, BSTART, BACKUP)
end
if to == PH_COMPLETE or to == PH_FAILED then
  redis.call('HSET', STATE, 'completion', now)
  local ttl = tonumber(spec[4])
  if ttl then
    for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, math.max(ttl, 1)) end
  end
end
redis.call('PUBLISH', EVENTS, to)
return 1
