-- Forget a task that never got queued (its start failed), and its parts.
-- args: owner, id, part ids...
local owner, id = args[1], args[2]
for i = 2, #args do
  redis.call('DEL', task_key(args[i]))
  redis.call('ZREM', prefix .. ':unsent', args[i])
end
redis.call('ZREM', prefix .. ':waiting', id)
redis.call('ZREM', prefix .. ':owner:' .. owner, id)
redis.call('SREM', prefix .. ':active:' .. owner, id)
return 1
