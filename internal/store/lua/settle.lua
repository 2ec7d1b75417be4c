-- settle: records what became of leased items, fenced by lease token: acked
-- items count as succeeded once; failed ones are retried after a backoff,
-- or dead after their last attempt; released ones go back without using
-- an attempt. Items whose lease is gone (expired and taken over) are
-- refused, never counted. It also records how many items of each lease have
-- started (a worker that dies is charged an attempt for those only), the
-- workers' item durations (shared, for lease sizing) and item results.
-- KEYS: spec state leases batches bstart backup retry returned dead doneidx rate reqs lost results events
-- ARGV: 1 uid, 2 session, 3 seq (per session, increasing: a repeated call
--   returns the first one's reply and changes nothing; an older one is
--   refused), 4 items timed, 5 their total duration (µs), 6 results stream
--   cap (entries), then per lease:
--     token, mode ('a': every item not listed as failed or released
--     succeeded; 's': only the listed acks), started (items of the lease
--     that started and are still in it after this call; -1: unchanged),
--     nAck (mode 'a': how many items the worker acks; 's': ids listed),
--     nFail, nRel, nRes,
--     then nAck ids (mode 's' only), nFail × (id, action, jitter, error),
--     nRel ids, nRes × (id, attempt, exit code, output)
--   action: 'c' counts an attempt; 'i' retries without using one; 'x' the
--   item is dead at once (FailIndex); 'j' dead at once and the Job fails.
-- Reply: "acked,failed,released,refused,dead,failjob|token,token..." (the
--   tokens whose lease was gone); errors NOJOB, REPLACED, LOST, STALE.
local spec, st, e = load(ARGV[1], {'maxAttempts', 'completions', 'speculative'}, {'avgus', 'sealed', 'succeeded', 'failed', 'leased', 'ver'})
if e then return err(e) end
allow_oom()
local slot = 's' .. ARGV[2]
local seq = tonumber(ARGV[3])
local prev = redis.call('HGET', REQS, slot)
if prev then
  local ps, pr = split2(prev)
  ps = tonumber(ps)
  if seq == ps then return pr end
  if seq < ps then return err('STALE', 'a settle call older than the last one') end
end
local now = now_ms()
local maxAtt = num(spec.maxAttempts, 3)
local indexed = tonumber(spec.completions) ~= nil
local speculative = spec.speculative == '1'
local resMax = tonumber(ARGV[6])
local acked, failed, released, refused, dead, failjob = 0, 0, 0, 0, 0, 0
local gone = {}
local i = 7
while i <= #ARGV do
  local token, mode, started = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local nA, nF, nR, nRes = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
  i = i + 7
  local aIds = 0
  if mode == 's' then aIds = nA end
  local a0, f0 = i, i + aIds
  local r0 = f0 + 4 * nF
  local s0 = r0 + nR
  i = s0 + 4 * nRes
  local rec = nil
  if redis.call('ZSCORE', LEASES, token) then rec = redis.call('HGET', BATCHES, token) end
  local kind, other = nil, nil
  if rec and speculative then kind, other = backup_of(token) end
  if not rec then
    refused = refused + nA + nF + nR
    gone[#gone + 1] = token
  elseif kind == 'b' and mode == 's' and nA + nF + nR == 0 then
    -- A backup copy reports that it started: nothing to record (a copy
    -- is not charged an attempt if its worker dies), and it goes on.
  elseif kind == 'b' then
    -- A backup copy: acked first, it counts for its primary's item and
    -- the primary is taken away; failed or handed back, it just ends.
    local ok = (mode == 'a' and nF == 0 and nR == 0) or (mode == 's' and nA > 0)
    drop_lease(token)
    unlink_backup(token, other)
    if ok and redis.call('ZSCORE', LEASES, other) then
      local _, _, idf = head(rec)
      if indexed then mark_done_field(idf) end
      lose(other, now)
      acked = acked + 1
      redis.call('HINCRBY', STATE, 'speculated', 1)
    elseif ok then
      refused = refused + 1
      gone[#gone + 1] = token
    end
  else
    local left = 0
    if mode == 'a' and nF == 0 and nR == 0 then
      local n, _, idf = head(rec)
      if indexed then mark_done_field(idf) end
      drop_lease(token)
      acked = acked + n
    else
      local ids, atts, pay, fence, first = decode(rec)
      -- at: the position of an id in the record (arithmetic when its ids
      -- are one run, the common case).
      local at
      if first then
        local n = #ids
        at = function(id)
          if not id then return nil end
          local k = id - first + 1
          if k >= 1 and k <= n then return k end
          return nil
        end
      else
        local pos = {}
        for k = 1, #ids do pos[ids[k]] = k end
        at = function(id) return pos[id] end
      end
      local out, taken = {}, {}
      local function take(k)
        out[k] = true
        taken[#taken + 1] = k
      end
      for f = f0, r0 - 1, 4 do
        local id, action, jitter, msg = tonumber(ARGV[f]), ARGV[f + 1], tonumber(ARGV[f + 2]), ARGV[f + 3]
        local k = at(id)
        if not k or out[k] then
          refused = refused + 1
        else
          take(k)
          if action == 'i' then
            retry_later(now + backoff(atts[k], jitter), string.format('%d:%d:', id, atts[k] - 1) .. pay(k))
            released = released + 1
          else
            failed = failed + 1
            if settle_failure(id, atts[k], pay(k), msg, now, backoff(atts[k], jitter), maxAtt, action == 'x' or action == 'j') == 'dead' then
              dead = dead + 1
            end
            if action == 'j' and failjob == 0 then
              failjob = 1
              redis.call('HSETNX', STATE, 'failjob', int(id) .. '|' .. msg)
            end
          end
        end
      end
      for f = r0, s0 - 1 do
        local k = at(tonumber(ARGV[f]))
        if not k or out[k] then
          refused = refused + 1
        else
          take(k)
          give_back(ids[k], atts[k] - 1, pay(k))
          released = released + 1
        end
      end
      -- done: the runs of ids acked by this call.
      local done
      if mode == 'a' then
        -- Every item not taken above is acked. An Indexed Job records
        -- their runs: those between the taken positions (when the ids
        -- are one run), else a walk.
        acked = acked + #ids - #taken
        if indexed and first then
          table.sort(taken)
          done = {}
          local from = 1
          for _, k in ipairs(taken) do
            if k > from then done[#done + 1] = {first + from - 1, first + k - 2} end
            from = k + 1
          end
          if from <= #ids then done[#done + 1] = {first + from - 1, first + #ids - 1} end
        elseif indexed then
          local l = {}
          for k = 1, #ids do
            if not out[k] then l[#l + 1] = ids[k] end
          end
          done = runs(l)
        end
      else
        local l = {}
        for f = a0, f0 - 1 do
          local k = at(tonumber(ARGV[f]))
          if not k or out[k] then
            refused = refused + 1
          else
            take(k)
            l[#l + 1] = ids[k]
          end
        end
        acked = acked + #l
        if indexed then done = runs(l) end
      end
      if indexed and done then mark_done_ranges(done) end
      -- What this call did not settle stays leased (mode 'a' settles all).
      local kid, katt, kpay = {}, {}, {}
      if mode ~= 'a' then
        for k = 1, #ids do
          if not out[k] then
            kid[#kid + 1] = ids[k]
            katt[#katt + 1] = atts[k]
            kpay[#kpay + 1] = pay(k)
          end
        end
      end
      left = #kid
      if left == 0 then
        drop_lease(token)
      else
        redis.call('HSET', BATCHES, token, encode(fence, kid, katt, kpay, indexed))
      end
    end
    if left > 0 and started >= 0 then
      local _, since = started_of(token)
      redis.call('HSET', BSTART, token, math.min(started, left) .. ':' .. (since and int(since) or int(now)))
    end
    if left == 0 and kind == 'p' then
      -- The primary is settled: its backup copy has nothing left to do.
      unlink_backup(token, other)
      if redis.call('ZSCORE', LEASES, other) then lose(other, now) end
    end
  end
  if nRes > 0 and resMax > 0 then
    for f = s0, i - 1, 4 do
      redis.call('XADD', RESULTS, 'MAXLEN', '~', resMax, '*', 'id', ARGV[f], 'attempt', ARGV[f + 1], 'exit', ARGV[f + 2], 'output', ARGV[f + 3])
    end
  end
end
flush_adds()
-- The counters change in one write: nothing else in this script moves
-- them, so what load read plus this call's counts is their new value
-- (ver too: see changed).
local w = {'ver', int(num(st.ver, 0) + 1)}
if acked > 0 then
  w[#w + 1] = 'succeeded'; w[#w + 1] = num(st.succeeded, 0) + acked
  local sec = math.floor(now / 1000)
  -- A new second's first count makes a field: only then may old ones go.
  if redis.call('HINCRBY', RATE, sec, acked) == acked and redis.call('HLEN', RATE) > 90 then
    for _, s in ipairs(redis.call('HKEYS', RATE)) do
      if tonumber(s) < sec - 70 then redis.call('HDEL', RATE, s) end
    end
  end
end
if failed > 0 then w[#w + 1] = 'failed'; w[#w + 1] = num(st.failed, 0) + failed end
local handled = acked + failed + released
if handled > 0 then w[#w + 1] = 'leased'; w[#w + 1] = num(st.leased, 0) - handled end
local timed = tonumber(ARGV[4])
if timed > 0 then
  local sample = tonumber(ARGV[5]) / timed
  local old = tonumber(st.avgus)
  if old then sample = old * 0.7 + sample * 0.3 end
  w[#w + 1] = 'avgus'; w[#w + 1] = int(math.floor(sample))
end
redis.call('HSET', STATE, unpack(w))
if released > 0 then redis.call('PUBLISH', EVENTS, 'released') end
if dead > 0 or failjob > 0 then redis.call('PUBLISH', EVENTS, 'dead') end
if acked > 0 and st.sealed == '1' and redis.call('ZCARD', LEASES) == 0 then
  redis.call('PUBLISH', EVENTS, 'drained')
end
local reply = acked .. ',' .. failed .. ',' .. released .. ',' .. refused .. ',' .. dead .. ',' .. failjob .. '|' .. table.concat(gone, ',')
redis.call('HSET', REQS, slot, ARGV[3] .. ':' .. reply)
return reply
