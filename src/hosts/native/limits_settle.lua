-- Settles one reservation, atomically: `Counters::settle` (src/core/limits/mod.rs) step for step,
-- on the keys limits_reserve.lua uses (see there, and src/hosts/native/redis.rs). What counted
-- in a window that has since ended (or whose key expired) stays as it was.
--
-- KEYS[1]  the minute hash   {minute, requests, tokens}
-- KEYS[2]  the in-flight zset (score: deadline in ms)
-- KEYS[3]  the budget hash   {period, spent}
-- ARGV[1]  the grant's minute          ARGV[5]  tokens used
-- ARGV[2]  the grant's budget period   ARGV[6]  cost reserved (pico-USD)
-- ARGV[3]  the grant's deadline_ms     ARGV[7]  cost used (pico-USD)
-- ARGV[4]  tokens reserved             ARGV[8]  `1` when the client has a budget
--
-- Returns 1.

-- (The u64 helpers, num/cmp/add/sub/str, come first: limits_u64.lua.)

-- One place with the grant's deadline, whichever: places are alike.
local place = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[3], ARGV[3], 'LIMIT', 0, 1)
if place[1] then
  redis.call('ZREM', KEYS[2], place[1])
end
local counts = redis.call('HMGET', KEYS[1], 'minute', 'tokens')
if counts[1] == ARGV[1] then
  local tokens = add(sub(num(counts[2]), num(ARGV[4])), num(ARGV[5]))
  redis.call('HSET', KEYS[1], 'tokens', str(tokens))
end
if ARGV[8] == '1' then
  local budget = redis.call('HMGET', KEYS[3], 'period', 'spent')
  if budget[1] == ARGV[2] then
    local spent = add(sub(num(budget[2]), num(ARGV[6])), num(ARGV[7]))
    redis.call('HSET', KEYS[3], 'spent', str(spent))
  end
end
return 1
