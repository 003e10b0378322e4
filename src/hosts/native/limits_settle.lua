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

-- A u64 as {high, low} in base 10^9: every part stays far below 2^53.
local BASE = 1000000000
local MAX = {18446744073, 709551615}

local function num(text)
  text = text or '0'
  local n = #text
  if n <= 9 then
    return {0, tonumber(text)}
  end
  return {tonumber(string.sub(text, 1, n - 9)), tonumber(string.sub(text, n - 8))}
end

local function cmp(a, b)
  if a[1] ~= b[1] then
    return a[1] < b[1] and -1 or 1
  end
  if a[2] ~= b[2] then
    return a[2] < b[2] and -1 or 1
  end
  return 0
end

-- a + b, at most u64::MAX (Rust's saturating_add).
local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= BASE then
    hi, lo = hi + 1, lo - BASE
  end
  local sum = {hi, lo}
  if cmp(sum, MAX) > 0 then
    return MAX
  end
  return sum
end

-- a - b, at least 0 (Rust's saturating_sub).
local function sub(a, b)
  if cmp(a, b) <= 0 then
    return {0, 0}
  end
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then
    hi, lo = hi - 1, lo + BASE
  end
  return {hi, lo}
end

local function str(a)
  if a[1] == 0 then
    return string.format('%d', a[2])
  end
  return string.format('%d%09d', a[1], a[2])
end

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
