-- args: id, owner, snapshot JSON (seq 1), created_at, ttl, the owner's limit,
-- '1' if anyone holding its id may watch it (shared), the client address (''
-- if none), the address's limit and the limit of all (0: none), for a group
-- the snapshot JSON of a part with "__ID__" for its id ('' for a task of its
-- own), then the units it counts: its own id, or a group's part ids. A group
-- counts its parts, and is created with them or not at all.
-- Returns 1, or the limit it would pass: 'owner', 'address' or 'total'.
local id, owner, ttl, address = args[1], args[2], tonumber(args[5]), args[8]
local template = args[11]
local units = {}
for i = 12, #args do units[#units + 1] = args[i] end
local t = now()
-- The units `key` counts, the stale left out: those older than the ttl and,
-- when the limit is near, those whose record ended or is gone (a part's
-- record follows its group's by a moment: only an old one counts as gone).
local function count(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t - ttl)
  local n = redis.call('ZCARD', key)
  if n + #units <= limit then return n end
  local oldest = redis.call('ZRANGE', key, 0, 99, 'WITHSCORES')
  for i = 1, #oldest, 2 do
    local other, since = oldest[i], tonumber(oldest[i + 1])
    local state = redis.call('HGET', task_key(other), 'state')
    if (state and is_terminal(state)) or (not state and since < t - 60) then
      redis.call('ZREM', key, other)
      n = n - 1
    end
  end
  return n
end
local checks = {{'owner', unfinished_key('owner', owner), tonumber(args[6])}}
if address ~= '' and tonumber(args[9]) > 0 then
  table.insert(checks, {'address', unfinished_key('address', address), tonumber(args[9])})
end
if tonumber(args[10]) > 0 then
  table.insert(checks, {'total', unfinished_key(), tonumber(args[10])})
end
for _, check in ipairs(checks) do
  if count(check[2], check[3]) + #units > check[3] then return check[1] end
end
redis.call('HSET', task_key(id), 'owner', owner, 'seq', 1, 'state', 'queued',
           'snapshot', args[3])
if args[7] == '1' then redis.call('HSET', task_key(id), 'shared', 1) end
if address ~= '' then redis.call('HSET', task_key(id), 'address', address) end
redis.call('EXPIRE', task_key(id), ttl)
redis.call('ZADD', prefix .. ':owner:' .. owner, args[4], id)
redis.call('EXPIRE', prefix .. ':owner:' .. owner, ttl)
for _, check in ipairs(checks) do
  for _, unit in ipairs(units) do redis.call('ZADD', check[2], t, unit) end
  redis.call('EXPIRE', check[2], ttl)
end
-- Waiting for a worker, and not sent yet: `launch` marks its messages sent
-- once the broker has them; a record never marked ends lost (watchdog).
redis.call('ZADD', prefix .. ':waiting', t, id)
if template == '' then
  redis.call('ZADD', prefix .. ':unsent', t, id)
  return 1
end
-- Parts are not listed under their owner (the group is).
for _, part in ipairs(units) do
  local snapshot = string.gsub(template, '__ID__', part)
  redis.call('HSET', task_key(part), 'owner', owner, 'seq', 1, 'state', 'queued',
             'snapshot', snapshot, 'parent', id, 'percent', 0)
  redis.call('EXPIRE', task_key(part), ttl)
  redis.call('ZADD', prefix .. ':unsent', t, part)
end
redis.call('HSET', task_key(id), 'children', table.concat(units, ','))
return 1
