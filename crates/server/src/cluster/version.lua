-- Prepended to the room scripts: sets a room's version to Redis's time in
-- µs, or one more than the last if the clock went back; returns it as text.
local function bump(key)
  local t = redis.call('TIME')
  local last = tonumber(redis.call('GET', key) or '0')
  local v = string.format('%.0f', math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), last + 1))
  redis.call('SET', key, v)
  return v
end
