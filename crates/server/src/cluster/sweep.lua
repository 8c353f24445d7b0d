-- Removes the nodes whose liveness key expired, and their members from
-- every room. KEYS: 1 the set of nodes. ARGV: 1 the key prefix ('sb:'),
-- 2 the sweeping node (never swept by itself).
-- Returns the nodes removed.
local p = ARGV[1]
local gone = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if n ~= ARGV[2] and redis.call('EXISTS', p .. 'alive:' .. n) == 0 then
    redis.call('SREM', KEYS[1], n)
    local prefix = n .. '-p'
    for _, room in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':rooms')) do
      local m = p .. 'room:' .. room .. ':m'
      for _, peer in ipairs(redis.call('HKEYS', m)) do
        if string.sub(peer, 1, #prefix) == prefix then redis.call('HDEL', m, peer) end
      end
      if redis.call('HLEN', m) == 0 then
        redis.call('DEL', m, p .. 'room:' .. room .. ':pw', p .. 'room:' .. room .. ':v')
        redis.call('SREM', p .. 'rooms', room)
      else
        bump(p .. 'room:' .. room .. ':v')
      end
    end
    redis.call('DEL', p .. 'node:' .. n .. ':rooms')
    table.insert(gone, n)
  end
end
return gone
