-- A room's members and version. KEYS: 1 the room's member hash, 2 its
-- version. Returns {version, {member JSON…}}.
return {redis.call('GET', KEYS[2]) or '0', redis.call('HVALS', KEYS[1])}
