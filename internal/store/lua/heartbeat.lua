-- heartbeat: refreshes a worker's heartbeat and extends the leases it holds.
-- KEYS: spec state leases workers wended lost
-- ARGV: 1 uid, 2 worker id, 3.. lease tokens
-- Reply: {phase, suspended (0/1), done (0/1), hungry (ms since another
--   live worker found nothing to lease while leases were held; -1 never,
--   or when the last to find nothing was this worker or has ended), avgUs (-1 unknown), rejoined (0/1), lost
--   reason ('' none), taken-over tokens...}: a token is reported only if
--   its lease expired and was taken over, not when it was settled.
--   Errors NOJOB, REPLACED, LOST.
local e = job_error(ARGV[1])
if e then return err(e) end
allow_oom()
local now = now_ms()
local leaseMs = spec_num('leaseMs', 30000)
touch(now, leaseMs)
changed()
local st = redis.call('HMGET', STATE, 'phase', 'suspended', 'done', 'hungry', 'avgus', 'lostreason', 'hungryw')
local phase = st[1] or ''
local rejoined = 0
if not stopping(phase) then
  if not redis.call('ZSCORE', WORKERS, ARGV[2]) and redis.call('HGET', WENDED, ARGV[2]) == 'lost' then
    rejoined = 1
    redis.call('HDEL', WENDED, ARGV[2])
  end
  redis.call('ZADD', WORKERS, now + leaseMs, ARGV[2])
end
local hungry = -1
-- Hunger counts when another worker, still live, found nothing to lease:
-- not this worker's own, nor a worker's that has ended since.
local hw = st[7]
if st[4] and hw and hw ~= ARGV[2] and (tonumber(redis.call('ZSCORE', WORKERS, hw)) or 0) >= now then
  hungry = now - tonumber(st[4])
end
local out = {phase, st[2] or '0', st[3] or '0', hungry, num(st[5], -1), rejoined, st[6] or ''}
for i = 3, #ARGV do
  if redis.call('ZSCORE', LEASES, ARGV[i]) then
    redis.call('ZADD', LEASES, now + leaseMs, ARGV[i])
  elseif redis.call('ZSCORE', LOST, ARGV[i]) then
    out[#out + 1] = ARGV[i]
  end
end
return out
