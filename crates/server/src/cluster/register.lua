-- Puts a node's members back into a room (after Redis lost them, or swept
-- the node): no limits, they are in already. KEYS: 1 the room's member
-- hash, 2 its password hash, 3 its version, 4 the set of open rooms, 5 the
-- node's room set. ARGV: 1 room, 2 password hash or '', then peer id and
-- member JSON pairs.
-- Returns {version, {member JSON…}}.
if ARGV[2] ~= '' and redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'NX')
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
local v = bump(KEYS[3])
return {v, redis.call('HVALS', KEYS[1])}
