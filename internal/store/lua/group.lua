-- group: creates the record of a sharded Job, unless its name is taken. Its
-- shards are Jobs of their own, created before it.
-- KEYS: spec group
-- ARGV: 1 uid (fresh, random), 2 shard count, 3 spec as JSON, 4 the shards'
--   names, comma-separated
-- Reply: 1 created (also when this very create is delivered again), 0 the
--   name is taken.
if redis.call('EXISTS', SPEC) == 1 then return 0 end
local cur = redis.call('HGET', GROUP, 'uid')
if cur then
  if cur == ARGV[1] then return 1 end
  return 0
end
redis.call('HSET', GROUP, 'uid', ARGV[1], 'shards', ARGV[2], 'json', ARGV[3], 'names', ARGV[4], 'created', now_ms())
return 1
