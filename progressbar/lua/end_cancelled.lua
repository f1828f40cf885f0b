-- A cancel its task did not obey: the task is ended `cancelled` once `grace`
-- seconds have passed since its owner asked (the caller then has its worker
-- terminate it). args: id, grace (s), message, ttl. Returns the new snapshot
-- JSON, or false when nothing changed (several web processes may judge at
-- once: one wins).
local id = args[1]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state or is_terminal(state) or not redis.call('HGET', key, 'cancel') then
  redis.call('ZREM', prefix .. ':cancelling', id)
  return false
end
local asked = redis.call('ZSCORE', prefix .. ':cancelling', id)
if not asked or tonumber(asked) > now() - tonumber(args[2]) then return false end
return terminate(id, 'cancelled', 'message', args[3], args[4])
