-- args: id, owner, snapshot JSON (seq 1), created_at, ttl, limit, '1' if anyone
-- holding its id may watch it (shared).
-- Returns 1, or 0 when the owner already has `limit` unfinished tasks.
local id, owner, ttl = args[1], args[2], tonumber(args[5])
local active_key = prefix .. ':active:' .. owner
local active = 0
for _, other in ipairs(redis.call('SMEMBERS', active_key)) do
  local state = redis.call('HGET', task_key(other), 'state')
  if state and not is_terminal(state) then active = active + 1
  else redis.call('SREM', active_key, other) end
end
if active >= tonumber(args[6]) then return 0 end
redis.call('HSET', task_key(id), 'owner', owner, 'seq', 1, 'state', 'queued',
           'snapshot', args[3])
if args[7] == '1' then redis.call('HSET', task_key(id), 'shared', 1) end
redis.call('EXPIRE', task_key(id), ttl)
redis.call('ZADD', prefix .. ':owner:' .. owner, args[4], id)
redis.call('EXPIRE', prefix .. ':owner:' .. owner, ttl)
redis.call('SADD', active_key, id)
redis.call('EXPIRE', active_key, ttl)
return 1
