-- A worker's sign of life. args: worker name, its slots (pool processes; ''
-- if unknown). Names unseen for a day go.
local key, t = prefix .. ':workers', now()
redis.call('ZADD', key, t, args[1])
if (tonumber(args[2]) or 0) > 0 then redis.call('HSET', prefix .. ':slots', args[1], args[2]) end
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', t - 86400)) do
  redis.call('HDEL', prefix .. ':slots', gone)
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', t - 86400)
return 1
