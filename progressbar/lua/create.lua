-- args: id, owner, snapshot JSON (seq 1), created_at, ttl, limit, '1' if anyone
-- holding its id may watch it (shared); for a group, then the snapshot JSON of
-- a part with "__ID__" for its id, and the part ids: a group and its parts are
-- created together or not at all.
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
-- Waiting for a worker, and not sent yet: `start` marks its messages sent
-- once the broker has them; a record never marked ends lost (watchdog).
local t = now()
redis.call('ZADD', prefix .. ':waiting', t, id)
local template = args[8]
if not template or template == '' then
  redis.call('ZADD', prefix .. ':unsent', t, id)
  return 1
end
-- Parts are not listed under their owner (the group is).
for i = 9, #args do
  local part = args[i]
  local snapshot = string.gsub(template, '__ID__', part)
  redis.call('HSET', task_key(part), 'owner', owner, 'seq', 1, 'state', 'queued',
             'snapshot', snapshot, 'parent', id, 'percent', 0)
  redis.call('EXPIRE', task_key(part), ttl)
  redis.call('ZADD', prefix .. ':unsent', t, part)
end
redis.call('HSET', task_key(id), 'children', table.concat(args, ',', 9))
return 1
