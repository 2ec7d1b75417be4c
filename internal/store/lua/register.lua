-- register: binds a worker to the Job's current incarnation before its
-- first lease, and opens a session for its fencing tokens.
-- KEYS: spec state leases workers winfo reqs events
-- ARGV: 1 uid ('' the current incarnation), 2 worker id, 3 JSON WorkerInfo,
--   4 session: random, chosen by the worker, so that it stays unique if
--   Redis comes back with an older state (a counter here would hand the
--   same session, and so the same lease tokens, to the next worker)
-- Reply: {'OK', uid, session, spec JSON}; {'DONE'} (drained or complete:
--   the worker exits 0 at once and is not counted); {'FAILED'}; errors
--   NOJOB, REPLACED, LOST.
local e = job_error(ARGV[1])
if e then return err(e) end
allow_oom()
local st = redis.call('HMGET', STATE, 'phase', 'done')
if failing(st[1]) then return {'FAILED'} end
if stopping(st[1]) or st[2] == '1' then return {'DONE'} end
local spec = redis.call('HMGET', SPEC, 'uid', 'json', 'leaseMs')
local now = now_ms()
touch(now, tonumber(spec[3]))
local sess = ARGV[4]
redis.call('HSET', WINFO, ARGV[2], ARGV[3])
redis.call('ZADD', WORKERS, now + tonumber(spec[3]), ARGV[2])
redis.call('HSET', REQS, 'w' .. ARGV[2], sess)
changed()
return {'OK', spec[1], sess, spec[2]}
