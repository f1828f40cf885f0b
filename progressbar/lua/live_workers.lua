-- args: max age (s). The names of the workers seen within it.
return redis.call('ZRANGEBYSCORE', prefix .. ':workers', now() - tonumber(args[1]), '+inf')
