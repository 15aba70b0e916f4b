-- resil fleet sync: applies one process's batch atomically and answers the fleet's view.
-- The rules are resil-core's MemoryStore, step for step (resil-redis's tests compare them).
-- Every key is resil:{name}:..., one hash slot, so the script runs on Redis Cluster too.
--
-- KEYS: 1 window (hash: buckets t0..t9 c0..c9 f0..f9, last write at)
--       2 nodes (zset: process -> last sync)   3 failing (zset: process -> last sync)
--       4 streak (hash: process -> its run of failures)   5 open ("generation:until")
--       6 generation (counter)   7 lease ("token:until")   8 recoveries (counter)
--       9 budget (hash: buckets t0..t9 d0..d9 w0..w9)   10 clock (tests only)
-- ARGV: 1 process  2 window ms  3 keep ms  4 calls  5 failures  6 successes  7 trailing
--       failures  8 failing  9 announce ms  10 lease op (0 none, 1 acquire, 2 release)
--       11 token  12 lease ttl ms  13 probe passed  14 budget shared  15 deposits
--       16 retries wanted  17 ratio ppm  18 reserve (millionths)  19 budget window ms
--       20 clock from KEYS[10] (tests) instead of TIME
-- Answers: calls, failures, nodes, failing nodes, run of failures, its processes, open
--          generation (0: none), open ms left, recoveries, lease (0 none, 1 granted, 2 held),
--          lease ms left, retries leased, repaired (garbage found and replaced)
local repaired = 0
local function kind(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    redis.call('DEL', key)
    repaired = 1
  end
end
kind(KEYS[1], 'hash'); kind(KEYS[2], 'zset'); kind(KEYS[3], 'zset'); kind(KEYS[4], 'hash')
kind(KEYS[5], 'string'); kind(KEYS[6], 'string'); kind(KEYS[7], 'string')
kind(KEYS[8], 'string'); kind(KEYS[9], 'hash')

local function whole(v)
  local n = tonumber(v)
  if n and n >= 0 and n == math.floor(n) then return n end
  return nil
end
-- A counter held as a string; garbage is dropped.
local function counter(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local n = whole(v)
  if not n then
    redis.call('DEL', key)
    repaired = 1
  end
  return n
end
-- A hash read whole: field -> number; garbage fields are dropped.
local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do
    local n = whole(flat[i + 1])
    if n then
      h[flat[i]] = n
    else
      redis.call('HDEL', key, flat[i])
      repaired = 1
    end
  end
  return h
end

local now
if ARGV[20] == '1' then
  now = counter(KEYS[10]) or 0
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- "value:until" with until on this clock; a lapsed or malformed one is removed.
local function timed(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local a, u = string.match(v, '^(%d+):(%d+)$')
  if not a then
    redis.call('DEL', key)
    repaired = 1
    return nil
  end
  u = tonumber(u)
  if u <= now then
    redis.call('DEL', key)
    return nil
  end
  return a, u
end

local node = ARGV[1]
local window = math.max(tonumber(ARGV[2]), 10)
local keep = math.max(tonumber(ARGV[3]), 1)
local calls, failures = tonumber(ARGV[4]), tonumber(ARGV[5])
local successes, trailing = tonumber(ARGV[6]), tonumber(ARGV[7])
local open_gen, open_until = timed(KEYS[5])
local holder, holder_until = timed(KEYS[7])

-- Everything but the open period and the lease lapses `keep` after the last write.
local w = hash(KEYS[1])
if w['at'] and now >= w['at'] + keep then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[8], KEYS[9])
  w = {}
end
-- Counters start at the store's time, so that they grow across a lost state.
local gen = counter(KEYS[6]) or now
local recoveries = counter(KEYS[8]) or now

-- Who synced, and who sees failures.
redis.call('ZADD', KEYS[2], now, node)
if ARGV[8] == '1' then
  redis.call('ZADD', KEYS[3], now, node)
else
  redis.call('ZREM', KEYS[3], node)
end
if now >= window then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
end

-- The window's buckets.
local bucket = math.floor(window / 10)
local tick = math.floor(now / bucket)
local slot = tick % 10
if w['t' .. slot] ~= tick then
  w['t' .. slot], w['c' .. slot], w['f' .. slot] = tick, 0, 0
end
w['c' .. slot] = (w['c' .. slot] or 0) + calls
w['f' .. slot] = (w['f' .. slot] or 0) + failures
-- Each process's run of failures since its own last success. Batches cover the same
-- interval, so one process's success must not end another's run (it may be older).
if successes > 0 then
  if trailing > 0 then
    redis.call('HSET', KEYS[4], node, trailing)
  else
    redis.call('HDEL', KEYS[4], node)
  end
elseif failures > 0 then
  local run = whole(redis.call('HGET', KEYS[4], node)) or 0
  redis.call('HSET', KEYS[4], node, run + failures)
end

-- Counts from before an open or a recovery must not trip anyone after it.
local function reset_counts()
  w = {}
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
end

-- The probe lease returned.
local op, token = ARGV[10], ARGV[11]
if op == '2' then
  if holder == token then
    redis.call('DEL', KEYS[7])
    holder = nil
  end
  if ARGV[13] == '1' then
    recoveries = recoveries + 1
    reset_counts()
  end
end
-- An open announced.
local announce = tonumber(ARGV[9])
if announce > 0 and not open_gen then
  gen = gen + 1
  open_gen, open_until = tostring(gen), now + announce
  redis.call('SET', KEYS[5], open_gen .. ':' .. open_until, 'PX', announce)
  reset_counts()
end
-- The probe lease asked for.
local lease, lease_left = 0, 0
if op == '1' then
  if open_gen then
    lease, lease_left = 2, open_until - now
  elseif holder == token then
    lease = 1
  elseif holder then
    lease, lease_left = 2, holder_until - now
  else
    local ttl = math.max(tonumber(ARGV[12]), 1)
    redis.call('SET', KEYS[7], token .. ':' .. (now + ttl), 'PX', ttl)
    lease = 1
  end
end

-- The budget.
local retries = 0
if ARGV[14] == '1' then
  local b = hash(KEYS[9])
  local span = math.max(tonumber(ARGV[19]), 10)
  local btick = math.floor(now / math.floor(span / 10))
  local bslot = btick % 10
  if b['t' .. bslot] ~= btick then
    b['t' .. bslot], b['d' .. bslot], b['w' .. bslot] = btick, 0, 0
  end
  b['d' .. bslot] = (b['d' .. bslot] or 0) + tonumber(ARGV[15])
  local deposits, leased = 0, 0
  for i = 0, 9 do
    local t = b['t' .. i]
    if t and btick - t < 10 then
      deposits = deposits + (b['d' .. i] or 0)
      leased = leased + (b['w' .. i] or 0)
    end
  end
  local earned = deposits * tonumber(ARGV[17]) + tonumber(ARGV[18])
  local left = math.floor(math.max(earned - leased * 1000000, 0) / 1000000)
  retries = math.min(left, tonumber(ARGV[16]))
  b['w' .. bslot] = (b['w' .. bslot] or 0) + retries
  redis.call('HSET', KEYS[9], 't' .. bslot, b['t' .. bslot], 'd' .. bslot, b['d' .. bslot],
    'w' .. bslot, b['w' .. bslot])
end

-- The fleet's view.
local sum_calls, sum_failures = 0, 0
for i = 0, 9 do
  local t = w['t' .. i]
  if t and tick - t < 10 then
    sum_calls = sum_calls + (w['c' .. i] or 0)
    sum_failures = sum_failures + (w['f' .. i] or 0)
  end
end
-- The fleet's run: every live process's own, summed.
local streak, streak_nodes = 0, 0
for n, run in pairs(hash(KEYS[4])) do
  if redis.call('ZSCORE', KEYS[2], n) then
    if run > 0 then
      streak, streak_nodes = streak + run, streak_nodes + 1
    end
  else
    redis.call('HDEL', KEYS[4], n)
  end
end
local flat = {'at', now}
for i = 0, 9 do
  if w['t' .. i] then
    table.insert(flat, 't' .. i); table.insert(flat, w['t' .. i])
    table.insert(flat, 'c' .. i); table.insert(flat, w['c' .. i] or 0)
    table.insert(flat, 'f' .. i); table.insert(flat, w['f' .. i] or 0)
  end
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('SET', KEYS[6], gen, 'PX', keep)
redis.call('SET', KEYS[8], recoveries, 'PX', keep)
for _, k in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[9]}) do
  redis.call('PEXPIRE', k, keep)
end
return {
  sum_calls, sum_failures, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  streak, streak_nodes,
  tonumber(open_gen or 0), open_gen and (open_until - now) or 0, recoveries,
  lease, lease_left, retries, repaired,
}
