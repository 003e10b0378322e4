-- Reserves one request against one client's limits, atomically: `Counters::reserve`
-- (src/core/limits/mod.rs) step for step, on the client's keys (see src/hosts/native/redis.rs).
-- Every number comes from the proxy as a decimal string; tokens and pico-USD may pass 2^53,
-- where Lua's numbers stop being exact, so they are added and compared as two parts (`num`).
--
-- KEYS[1]  the minute hash   {minute, requests, tokens}
-- KEYS[2]  the in-flight zset (member: one request's place; score: its deadline in ms)
-- KEYS[3]  the budget hash   {period, spent}
-- ARGV[1]  now_ms               ARGV[8]  the request's deadline_ms
-- ARGV[2]  minute               ARGV[9]  its in-flight member (unique)
-- ARGV[3]  minute key TTL ms    ARGV[10] in-flight key TTL ms (until the deadline)
-- ARGV[4]  budget period        ARGV[11] max_concurrent       ('' when unset)
-- ARGV[5]  budget key TTL ms    ARGV[12] requests_per_minute  ('' when unset)
-- ARGV[6]  tokens asked         ARGV[13] tokens_per_minute    ('' when unset)
-- ARGV[7]  cost asked (pico-USD) ARGV[14] budget in pico-USD  ('' when unset: no budget key)
--
-- Returns {verdict, requests, tokens, spent}: verdict `ok` (reserved) or the limit that refused
-- (`concurrency`, `requests`, `tokens`, `budget`: nothing counted), and the counts after it.

-- (The u64 helpers, num/cmp/add/sub/str, come first: limits_u64.lua.)

local minute, period = ARGV[2], ARGV[4]
local budgeted = ARGV[14] ~= ''

-- Counters::roll: a new minute or period starts from nothing; places past their deadline are
-- free again. (Kept even when the request is refused, as the in-memory counters keep it.)
local counts = redis.call('HMGET', KEYS[1], 'minute', 'requests', 'tokens')
local requests, tokens = 0, {0, 0}
if counts[1] == minute then
  requests, tokens = tonumber(counts[2]), num(counts[3])
else
  redis.call('HSET', KEYS[1], 'minute', minute, 'requests', '0', 'tokens', '0')
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local spent = {0, 0}
if budgeted then
  local budget = redis.call('HMGET', KEYS[3], 'period', 'spent')
  if budget[1] == period then
    spent = num(budget[2])
  else
    redis.call('HSET', KEYS[3], 'period', period, 'spent', '0')
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local in_flight = redis.call('ZCARD', KEYS[2])

local function answer(verdict)
  return {verdict, string.format('%d', requests), str(tokens), str(spent)}
end

if ARGV[11] ~= '' and in_flight >= tonumber(ARGV[11]) then
  return answer('concurrency')
end
if ARGV[12] ~= '' and requests >= tonumber(ARGV[12]) then
  return answer('requests')
end
local ask = num(ARGV[6])
-- A request larger than the whole limit still gets its turn in an empty minute, or it could
-- never run; then nothing else runs in that minute.
if ARGV[13] ~= '' and cmp(tokens, {0, 0}) > 0 and cmp(add(tokens, ask), num(ARGV[13])) > 0 then
  return answer('tokens')
end
local cost = num(ARGV[7])
if budgeted and cmp(add(spent, cost), num(ARGV[14])) > 0 then
  return answer('budget')
end

requests = redis.call('HINCRBY', KEYS[1], 'requests', 1)
tokens = add(tokens, ask)
redis.call('HSET', KEYS[1], 'tokens', str(tokens))
if budgeted then
  spent = add(spent, cost)
  redis.call('HSET', KEYS[3], 'spent', str(spent))
end
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[9])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[10]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[10])
end
return answer('ok')
