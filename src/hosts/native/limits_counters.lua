-- Reads one client's counts as they are (for the status page), changing nothing: the keys of
-- limits_reserve.lua, in `Counters`' terms (src/core/limits/mod.rs).
--
-- KEYS[1]  the minute hash   {minute, requests, tokens}
-- KEYS[2]  the in-flight zset (score: deadline in ms)
-- KEYS[3]  the budget hash   {period, spent}
--
-- Returns {minute, requests, tokens, period, spent, deadline...}: '0' for what is not there.

local counts = redis.call('HMGET', KEYS[1], 'minute', 'requests', 'tokens')
local budget = redis.call('HMGET', KEYS[3], 'period', 'spent')
local out = {counts[1] or '0', counts[2] or '0', counts[3] or '0', budget[1] or '0', budget[2] or '0'}
local places = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 2, #places, 2 do
  out[#out + 1] = places[i]
end
return out
