-- seal: no more items may be pushed; workers may finish once it drains.
-- KEYS: spec state events
-- ARGV: 1 uid ('' the current incarnation), 2 request id
-- Reply: 1 sealed by this call (or a delivery of it before), 0 it was
--   sealed already; errors NOJOB, REPLACED, LOST.
local e = job_error(ARGV[1])
if e then return err(e) end
allow_oom()
local st = redis.call('HMGET', STATE, 'sealed', 'sealrid')
if st[1] == '1' then
  if st[2] == ARGV[2] then return 1 end
  return 0
end
redis.call('HSET', STATE, 'sealed', '1', 'sealrid', ARGV[2])
changed()
redis.call('PUBLISH', EVENTS, 'sealed')
return 1
