-- finish: records how a worker ended, once per worker id, and closes its
-- session.
-- KEYS: spec state workers wended reqs events
-- ARGV: 1 uid, 2 worker id, 3 session, 4 outcome: succeeded, failed or stopped
-- Reply: 1 when the worker's end is recorded as this outcome (by this call
--   or a delivery of it before), 0 when another outcome was recorded first;
--   errors NOJOB, REPLACED, LOST (nothing written: a Job's keys must not
--   come back, nor count against a newer Job of the same name).
local e = job_error(ARGV[1])
if e then return err(e) end
allow_oom()
local gone = redis.call('ZREM', WORKERS, ARGV[2])
if redis.call('HSETNX', WENDED, ARGV[2], ARGV[4]) == 1 then
  gone = 1
  if ARGV[4] == 'succeeded' then redis.call('HINCRBY', STATE, 'wsucceeded', 1)
  elseif ARGV[4] == 'failed' then redis.call('HINCRBY', STATE, 'wfailed', 1) end
end
if gone == 1 then changed() end
redis.call('HDEL', REQS, 'l' .. ARGV[3], 's' .. ARGV[3], 'w' .. ARGV[2])
redis.call('PUBLISH', EVENTS, 'worker')
if redis.call('HGET', WENDED, ARGV[2]) == ARGV[4] then return 1 end
return 0
