-- snapshot: everything a status needs, read in one atomic step, counters
-- only (no walk over items, indexes or dead items).
-- KEYS: spec state pending returned leases batches retry dead doneidx workers rate pushlog
-- ARGV: none
-- Reply: {spec JSON, uid, state pairs, pending, returned, leases, retrying,
--   dead, workers, live workers, now ms, rate pairs, oldest push "pos:ms" or
--   '', lost reason or '', completed index ranges}; error NOJOB.
local spec = redis.call('HMGET', SPEC, 'json', 'uid')
if not spec[1] then return err('NOJOB') end
local now = now_ms()
local pairs_ = redis.call('HGETALL', STATE)
local st = {}
for i = 1, #pairs_, 2 do st[pairs_[i]] = pairs_[i + 1] end
local oldest = redis.call('ZRANGEBYSCORE', PUSHLOG, num(st.popped, 0) + 1, '+inf', 'LIMIT', 0, 1)
local why = ''
if not st.uid then
  why = 'the state of the Job is gone (evicted?)'
else
  why = st.lostreason or lost_reason(st) or ''
end
return {spec[1], spec[2], pairs_, redis.call('LLEN', PENDING), redis.call('LLEN', RETURNED),
  redis.call('ZCARD', LEASES), redis.call('ZCARD', RETRY), redis.call('ZCARD', DEAD),
  redis.call('ZCARD', WORKERS), redis.call('ZCOUNT', WORKERS, now, '+inf'), now,
  redis.call('HGETALL', RATE), oldest[1] or '', why, redis.call('ZCARD', DONEIDX)}
