-- push: appends items to the pending list, once per chunk id.
-- KEYS: spec state pending dedupe pushlog chunks events
-- ARGV: 1 uid ('' any incarnation), 2 "plain" or "dedupe", 3 chunk id (unique
--   per chunk: a chunk delivered twice appends nothing and returns what the
--   first delivery appended), 4.. items (plain) or (digest, item) pairs
--   (dedupe: an item is appended only if its digest is new)
-- Reply: the number of items appended; errors NOJOB, REPLACED, LOST,
--   SEALED, FINISHED (nothing appended).
local e = job_error(ARGV[1])
if e then return err(e) end
local prev = redis.call('HGET', CHUNKS, ARGV[3])
if prev then return tonumber(prev) end
local st = redis.call('HMGET', STATE, 'sealed', 'phase', 'popped')
if st[1] == '1' then return err('SEALED') end
if st[2] then return err('FINISHED') end
local n = 0
if ARGV[2] == 'plain' then
  n = #ARGV - 3
  for i = 4, #ARGV, 1000 do
    redis.call('RPUSH', PENDING, unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
else
  local items = {}
  for i = 4, #ARGV, 2 do
    if redis.call('SADD', DEDUPE, ARGV[i]) == 1 then items[#items + 1] = ARGV[i + 1] end
  end
  n = #items
  if n > 0 then chunked('RPUSH', PENDING, items) end
end
if n > 0 then
  redis.call('HINCRBY', STATE, 'pushed', n)
  changed()
  local pos = num(st[3], 0) + redis.call('LLEN', PENDING)
  -- Entries of items already leased are of no more use (snapshot reads
  -- the first beyond popped); they go here, once per push, rather than
  -- on every lease.
  redis.call('ZREMRANGEBYSCORE', PUSHLOG, '-inf', num(st[3], 0))
  redis.call('ZADD', PUSHLOG, pos, pos .. ':' .. now_ms())
  redis.call('HSET', CHUNKS, ARGV[3], n)
  redis.call('PEXPIRE', CHUNKS, 300000)
end
return n
