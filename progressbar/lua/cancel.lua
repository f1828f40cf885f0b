-- The owner's cancel. args: id, ttl, the message of a task cancelled before
-- it started. For a group, every unfinished part is cancelled. Returns
-- {outcome, snapshot JSON}: 'cancelled', 'requested' or 'finished'.
local id, ttl, message = args[1], args[2], args[3]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return false end
local children = redis.call('HGET', key, 'children')
if not children or is_terminal(state) then return cancel(id, ttl, message) end
local requested = false
for _, part in ipairs(split(children)) do
  if cancel(part, ttl, message)[1] == 'requested' then requested = true end
end
local snapshot = redis.call('HGET', key, 'snapshot')
if redis.call('HGET', key, 'state') == 'cancelled' then return {'cancelled', snapshot} end
-- Parts still stopping: the group's bar says so too, once, with a seq of its own.
if requested and not redis.call('HGET', key, 'cancel') then
  redis.call('HSET', key, 'cancel', 1)
  snapshot = with_cancel_requested(snapshot, redis.call('HINCRBY', key, 'seq', 1))
  redis.call('HSET', key, 'snapshot', snapshot)
  publish(id, snapshot)
end
return {requested and 'requested' or 'finished', snapshot}
