-- create: creates a Job, the incarnation uid, unless its name is taken.
-- KEYS: spec state pending returned leases batches bstart backup retry dead dedupe doneidx workers winfo wended rate pushlog chunks reqs lost results events group
-- ARGV: 1 uid (fresh, random), 2 sealed (0/1), 3 suspended (0/1), 4.. spec field/value pairs
-- Reply: 1 created (also when this very create is delivered again), 0 the
--   name is taken (by a Job, or by a sharded Job's record).
if redis.call('EXISTS', GROUP) == 1 then return 0 end
if redis.call('EXISTS', SPEC) == 1 then
  if redis.call('HGET', SPEC, 'uid') == ARGV[1] then return 1 end
  return 0
end
-- Keys an older Job of this name left behind (its spec evicted, or keys
-- that expired one by one) must not leak into the new one.
redis.call('UNLINK', unpack(KEYS))
local now = now_ms()
redis.call('HSET', SPEC, 'uid', ARGV[1], unpack(ARGV, 4))
-- Fencing tokens for side effects start at the server's clock in µs, so a
-- Job re-created under the same name hands out larger ones than before.
redis.call('HSET', STATE, 'uid', ARGV[1], 'created', now, 'sealed', ARGV[2], 'fseq', int(now * 1000), 'ver', 1)
if ARGV[3] == '1' then
  redis.call('HSET', STATE, 'suspended', '1', 'cond:Suspended', 'True|JobSuspended|' .. now .. '|Job created suspended')
end
return 1
