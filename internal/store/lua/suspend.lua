-- suspend: suspends or resumes a Job. Resuming resets the start time, as
-- Kubernetes does, so the active deadline counts from the resume.
-- KEYS: spec state events
-- ARGV: 1 uid ('' the current incarnation), 2 request id, 3 "suspend" or "resume"
-- Reply: 1 changed by this call (or a delivery of it before), 0 it was in
--   that state already; errors NOJOB, REPLACED, LOST, FINISHED.
local e = job_error(ARGV[1])
if e then return err(e) end
local st = redis.call('HMGET', STATE, 'phase', 'suspended', 'start', 'susprid')
if st[4] == ARGV[2] then return 1 end
if st[1] then return err('FINISHED') end
local now = now_ms()
if ARGV[3] == 'suspend' then
  if st[2] == '1' then return 0 end
  redis.call('HSET', STATE, 'suspended', '1', 'susprid', ARGV[2], 'cond:Suspended', 'True|JobSuspended|' .. now .. '|Job suspended')
else
  if st[2] ~= '1' then return 0 end
  redis.call('HSET', STATE, 'suspended', '0', 'susprid', ARGV[2], 'cond:Suspended', 'False|JobResumed|' .. now .. '|Job resumed')
  if st[3] then redis.call('HSET', STATE, 'start', now) end
end
changed()
redis.call('PUBLISH', EVENTS, ARGV[3])
return 1
