-- The verdict on a task whose worker is gone, or that its worker stopped
-- (past its hard time limit). args: id, reason, ttl, 'expired' or 'now', and
-- 'failed' to end it failed rather than lost. With 'expired' the task is
-- ended only if its heartbeat deadline has passed (several web processes may
-- judge at once: one wins, none double-reports). Returns the new snapshot JSON, or false when nothing changed.
local id = args[1]
local state = redis.call('HGET', task_key(id), 'state')
if not state or is_terminal(state) then
  redis.call('ZREM', prefix .. ':live', id)
  return false
end
if args[4] == 'expired' then
  local deadline = redis.call('ZSCORE', prefix .. ':live', id)
  if not deadline or tonumber(deadline) > now() then return false end
end
return terminate(id, args[5] == 'failed' and 'failed' or 'lost', 'error', args[2], args[3])
