-- A task's attempt ended and another will run: a retry after a wait, or a
-- message put back in the queue. args: id, snapshot JSON without seq (the
-- attempt's progress; its message says why), seconds until the next attempt
-- may start, heartbeat timeout, ttl, '1' if the same attempt runs again (a
-- requeued message). The task is judged lost only if no attempt has started
-- once the wait and one heartbeat timeout are over. Returns the snapshot as
-- stored, or false if the task has ended meanwhile.
local id, ttl = args[1], args[5]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state or is_terminal(state) then return false end
local seq = redis.call('HINCRBY', key, 'seq', 1)
local snapshot = '{"seq":' .. seq .. ',' .. string.sub(args[2], 2)
if redis.call('HGET', key, 'cancel') then
  snapshot = string.sub(snapshot, 1, -2) .. ',"cancel_requested":true}'
end
redis.call('HSET', key, 'state', 'running', 'snapshot', snapshot)
redis.call('EXPIRE', key, ttl)
redis.call('ZADD', prefix .. ':live', now() + tonumber(args[3]) + tonumber(args[4]), id)
if args[6] == '1' then
  local claimed = tonumber(redis.call('HGET', key, 'claimed')) or 1
  redis.call('HSET', key, 'claimed', claimed - 1)
end
publish(id, snapshot)
return snapshot
