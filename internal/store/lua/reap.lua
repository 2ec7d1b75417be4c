-- reap: the controller's sweep. Workers whose heartbeat expired are
-- recorded as lost (a failure, once), expired leases are taken over (a
-- bounded number of items per call), and old takeover records go.
-- KEYS: spec state pending returned leases batches bstart backup retry dead workers wended reqs lost events
-- ARGV: 1 uid ('' the current incarnation)
-- Reply: {workersLost, leasesTakenOver, itemsTakenOver}; errors NOJOB,
--   REPLACED, LOST.
local e = job_error(ARGV[1])
if e then return err(e) end
allow_oom()
local now = now_ms()
local spec = redis.call('HMGET', SPEC, 'leaseMs', 'maxAttempts')
if stopping(redis.call('HGET', STATE, 'phase') or '') then
  -- A finished Job's books are closed; a Failing one still reaps.
  if redis.call('HGET', STATE, 'phase') ~= PH_FAILING then return {0, 0, 0} end
end
touch(now, tonumber(spec[1]))
changed()
local lost = 0
for _, w in ipairs(redis.call('ZRANGEBYSCORE', WORKERS, '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', WORKERS, w)
  if redis.call('HSETNX', WENDED, w, 'lost') == 1 then lost = lost + 1 end
end
if lost > 0 then
  redis.call('HINCRBY', STATE, 'wfailed', lost)
  redis.call('PUBLISH', EVENTS, 'worker')
end
local leases, items = reclaim(now, 1000, tonumber(spec[2]))
redis.call('ZREMRANGEBYSCORE', LOST, '-inf', now - 600000)
return {lost, leases, items}
