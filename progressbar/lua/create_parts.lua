-- The parts of a new group. args: group id, owner, ttl, snapshot JSON of a
-- part with "__ID__" for its id, then the part ids. Parts are not listed under
-- their owner (the group is) and do not count toward the limit.
local gid, owner, ttl, template = args[1], args[2], args[3], args[4]
for i = 5, #args do
  local id = args[i]
  local snapshot = string.gsub(template, '__ID__', id)
  redis.call('HSET', task_key(id), 'owner', owner, 'seq', 1, 'state', 'queued',
             'snapshot', snapshot, 'parent', gid, 'percent', 0)
  redis.call('EXPIRE', task_key(id), ttl)
end
redis.call('HSET', task_key(gid), 'children', table.concat(args, ',', 5))
return 1
