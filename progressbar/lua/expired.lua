-- args: max count. Ids whose heartbeat deadline has passed.
return redis.call('ZRANGEBYSCORE', prefix .. ':live', '-inf', now(), 'LIMIT', 0, args[1])
