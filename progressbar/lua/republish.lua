-- Push the stored snapshot of each task again (after a web process lost the
-- channel for a while: pub/sub delivers at most once). args: ttl, then for
-- each task its id and the snapshot JSON of its end if its record is gone
-- ('' for a task known to have ended). A task whose record is gone (Redis came
-- back without it) gets that `lost` snapshot stored as its record and pushed,
-- so every web process pushes the same state and the task never runs again.
-- Returns how many were pushed.
local ttl = args[1]
local pushed = 0
for i = 2, #args, 2 do
  local id, gone = args[i], args[i + 1]
  local key = task_key(id)
  local snapshot = redis.call('HGET', key, 'snapshot')
  if not snapshot and gone ~= '' and redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'state', 'lost', 'snapshot', gone)
    redis.call('EXPIRE', key, ttl)
    snapshot = gone
  end
  if snapshot then
    publish(id, snapshot)
    pushed = pushed + 1
  end
end
return pushed
