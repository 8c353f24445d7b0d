-- Takes a member out of its room. KEYS: 1 the room's member hash, 2 its
-- password hash, 3 its version, 4 the set of open rooms, 5 the member's
-- node's room set. ARGV: 1 room, 2 peer id, 3 the node's peer id prefix
-- ('<node>-p').
-- Returns {'ok', version, {member JSON…}} (those left) or {'none'}.
if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return {'none'} end
local v = bump(KEYS[3])
local left = redis.call('HVALS', KEYS[1])
if #left == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('SREM', KEYS[5], ARGV[1])
else
  local mine = false
  for _, peer in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(peer, 1, #ARGV[3]) == ARGV[3] then mine = true break end
  end
  if not mine then redis.call('SREM', KEYS[5], ARGV[1]) end
end
return {'ok', v, left}
