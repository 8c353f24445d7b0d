-- Admits a member into a room, atomically across the cluster
-- (docs/cluster.md). KEYS: 1 the room's member hash, 2 its password hash,
-- 3 its version, 4 the set of open rooms, 5 the joiner's node's room set.
-- ARGV: 1 room, 2 peer id, 3 member JSON, 4 password hash or '', 5 '1' if
-- admin, 6 room size, 7 SFU room size (0: none), 8 most rooms, 9 '1' if the
-- joiner declared sfu.
-- Returns {'ok', version, {member JSON…}} or {refusal, limit}.
local n = redis.call('HLEN', KEYS[1])
if n == 0 then
  local open = redis.call('SCARD', KEYS[4])
  if open >= tonumber(ARGV[8]) and redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0 then
    return {'too-many-rooms', ARGV[8]}
  end
  redis.call('DEL', KEYS[2])
  if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4]) end
else
  local pw = redis.call('GET', KEYS[2])
  if pw and ARGV[5] ~= '1' and pw ~= ARGV[4] then
    return {'bad-password', '0'}
  end
  local limit = tonumber(ARGV[6])
  if ARGV[9] == '1' and tonumber(ARGV[7]) > 0 then
    local all = true
    for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
      local ok, m = pcall(cjson.decode, v)
      if not ok or type(m) ~= 'table' or m.sfu ~= true then all = false break end
    end
    if all then limit = tonumber(ARGV[7]) end
  end
  if n >= limit then return {'room-full', tostring(limit)} end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
local v = bump(KEYS[3])
return {'ok', v, redis.call('HVALS', KEYS[1])}
