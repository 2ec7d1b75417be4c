-- retrydead: puts up to limit dead items back, due now with fresh
-- attempts, lowest ids first; called again until none is left, so no call
-- holds Redis for long. A finished Job is reopened only when asked (then
-- it returns to Running, with a Reopened condition).
-- KEYS: spec state retry dead events
-- ARGV: 1 uid ('' the current incarnation), 2 request id, 3 limit, 4 reopen (0/1)
-- Reply: {moved, left}; errors NOJOB, REPLACED, LOST, FINISHED (finished
--   and not asked to reopen).
local e = job_error(ARGV[1])
if e then return err(e) end
local st = redis.call('HMGET', STATE, 'phase', 'retryrid')
if st[2] and string.sub(st[2], 1, #ARGV[2] + 1) == ARGV[2] .. ':' then
  local moved, left = split2(string.sub(st[2], #ARGV[2] + 2))
  return {tonumber(moved), tonumber(left)}
end
local now = now_ms()
if ARGV[4] == '1' then
  -- A stop of this shard for a failed sibling, decided before this
  -- reopen, is refused from now on (see transition, GUARD_SHARD_FAILED).
  redis.call('HINCRBY', STATE, 'rgen', 1)
end
if st[1] then
  if ARGV[4] ~= '1' then return err('FINISHED') end
  -- A shard stopped because a sibling failed reopens with it.
  local why = redis.call('HGET', STATE, 'cond:FailureTarget') or ''
  if redis.call('ZCARD', DEAD) > 0 or string.find(why, '|ShardFailed|', 1, true) then
    redis.call('HDEL', STATE, 'phase', 'done', 'completion', 'cond:Complete', 'cond:Failed', 'cond:FailureTarget',
      'cond:SuccessCriteriaMet', 'failjob', 'trid')
    redis.call('HSET', STATE, 'wfailed', 0, 'cond:Reopened', 'True|DeadItemsRetried|' .. now .. '|reopened by `coordinator retry --reopen`')
    for _, k in ipairs(KEYS) do redis.call('PERSIST', k) end
  end
end
local popped = redis.call('ZPOPMIN', DEAD, tonumber(ARGV[3]))
local members = {}
local at = int(now)
for i = 1, #popped, 2 do
  -- "id:attempts:errlen:" .. error .. payload, read with one find: the
  -- work per item is what bounds a call.
  local v = popped[i]
  local _, e, id, l = string.find(v, '^(%d+):%d+:(%d+):')
  members[#members + 1] = at
  members[#members + 1] = id .. ':0:' .. string.sub(v, e + 1 + tonumber(l))
end
if #members > 0 then
  chunked('ZADD', RETRY, members)
  redis.call('HDEL', STATE, 'done')
  redis.call('PUBLISH', EVENTS, 'retry')
end
local moved, left = #members / 2, redis.call('ZCARD', DEAD)
changed()
redis.call('HSET', STATE, 'retryrid', ARGV[2] .. ':' .. moved .. ':' .. left)
return {moved, left}
