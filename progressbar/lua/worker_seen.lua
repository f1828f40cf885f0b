-- A worker's sign of life. args: worker name. Names unseen for a day go.
local key, t = prefix .. ':workers', now()
redis.call('ZADD', key, t, args[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', t - 86400)
return 1
