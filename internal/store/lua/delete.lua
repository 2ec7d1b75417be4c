-- delete: removes every key of a Job (large ones are freed in the
-- background) and tells its workers.
-- KEYS: spec state pending returned leases batches bstart backup retry dead dedupe doneidx workers winfo wended rate pushlog chunks reqs lost results events
-- ARGV: 1 uid ('' any incarnation)
-- Reply: 1 when the Job existed, 0 otherwise; error REPLACED (nothing deleted).
local cur = redis.call('HGET', SPEC, 'uid')
if ARGV[1] ~= '' and cur and cur ~= ARGV[1] then return err('REPLACED') end
local existed = redis.call('EXISTS', SPEC)
redis.call('UNLINK', unpack(KEYS))
redis.call('PUBLISH', EVENTS, 'deleted')
return existed
