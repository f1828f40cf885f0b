-- A task's attempt ended and another will run: a retry after a wait, or a
-- message put back in the queue. args: id, message, seconds until the next
-- attempt may start, heartbeat timeout, ttl, '1' if the same attempt runs
-- again (a requeued message). The bar keeps its state and says why in its
-- message; the task is judged lost only if no attempt has started once the
-- wait and one heartbeat timeout are over. Returns the snapshot JSON, or
-- false if the task has ended meanwhile.
local id, ttl = args[1], args[5]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state or is_terminal(state) then return false end
local snapshot = cjson.decode(redis.call('HGET', key, 'snapshot'))
snapshot['seq'] = redis.call('HINCRBY', key, 'seq', 1)
snapshot['message'] = args[2]
snapshot['eta'] = cjson.null
snapshot['rate'] = cjson.null
snapshot['updated_at'] = math.floor(now() * 1000) / 1000
if redis.call('HGET', key, 'cancel') then snapshot['cancel_requested'] = true end
local encoded = cjson.encode(snapshot)
redis.call('HSET', key, 'snapshot', encoded)
redis.call('EXPIRE', key, ttl)
redis.call('ZADD', prefix .. ':live', now() + tonumber(args[3]) + tonumber(args[4]), id)
if args[6] == '1' then
  local claimed = tonumber(redis.call('HGET', key, 'claimed')) or 1
  redis.call('HSET', key, 'claimed', claimed - 1)
end
publish(id, encoded)
return encoded
