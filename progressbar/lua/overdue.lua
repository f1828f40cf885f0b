-- args: 'unsent' or 'cancelling', age (s), max count. Ids that entered that
-- set (created, or asked to cancel) at least `age` seconds ago.
return redis.call('ZRANGEBYSCORE', prefix .. ':' .. args[1], '-inf', now() - tonumber(args[2]),
                  'LIMIT', 0, args[3])
