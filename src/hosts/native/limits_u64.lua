-- Shared by limits_reserve.lua and limits_settle.lua, prepended to each (redis.rs):
-- saturating u64 arithmetic that Lua's doubles cannot do above 2^53.

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

