-- A new snapshot from the task's reporter. args: id, snapshot JSON without
-- seq, its state, ttl, heartbeat timeout, its percent ('' if none), its error
-- ('' if none). Refused (false) when the record is gone or already terminal:
-- a late update never resurrects a bar. Returns the snapshot as stored, with
-- its seq, and `cancel_requested` while its owner's cancel is pending.
local id, state, ttl = args[1], args[3], args[4]
local key = task_key(id)
local current = redis.call('HGET', key, 'state')
if not current or is_terminal(current) then return false end
local seq = redis.call('HINCRBY', key, 'seq', 1)
local snapshot = '{"seq":' .. seq .. ',' .. string.sub(args[2], 2)
if redis.call('HGET', key, 'cancel') and not is_terminal(state) then
  snapshot = string.sub(snapshot, 1, -2) .. ',"cancel_requested":true}'
end
redis.call('HSET', key, 'state', state, 'snapshot', snapshot)
local percent = tonumber(args[6])
if percent and percent > (tonumber(redis.call('HGET', key, 'percent')) or -1) then
  redis.call('HSET', key, 'percent', percent)
end
if args[7] ~= '' then redis.call('HSET', key, 'error', args[7]) end
redis.call('EXPIRE', key, ttl)
if is_terminal(state) then
  forget_live(id, redis.call('HGET', key, 'owner'))
else
  redis.call('ZADD', prefix .. ':live', now() + tonumber(args[5]), id)
end
publish(id, snapshot)
local parent = redis.call('HGET', key, 'parent')
if parent then aggregate(parent, ttl) end
return snapshot
