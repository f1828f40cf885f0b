-- Forget a task that never got queued (its start failed), and its parts.
-- args: owner, id, part ids...
local owner, id = args[1], args[2]
for i = 2, #args do
  if redis.call('EXISTS', task_key(args[i])) == 1 then forget_live(args[i], owner) end
end
for i = 2, #args do redis.call('DEL', task_key(args[i])) end
redis.call('ZREM', prefix .. ':owner:' .. owner, id)
return 1
