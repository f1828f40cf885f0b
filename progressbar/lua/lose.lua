-- The verdict on a task whose worker is gone, that never reached one, or
-- that its worker stopped (past its hard time limit). args: id, reason, ttl,
-- 'expired', 'unsent' or 'now', 'failed' to end it failed rather than lost,
-- and for 'unsent' an age (s). With 'expired' the task is ended only if its
-- heartbeat deadline has passed, and only if it had started: a task still
-- queued and unclaimed lost no work, and its message is still with the broker
-- (put back by its worker after a broker reconnect, or handed out again after
-- the visibility timeout when its worker died), so it is disarmed and stays
-- queued until it runs. With 'unsent' it is ended only if its message was
-- still not marked sent `age` seconds after its creation. Several web
-- processes may judge at once: one wins, none double-reports. Returns the new
-- snapshot JSON, or false when nothing changed.
local id = args[1]
local state = redis.call('HGET', task_key(id), 'state')
if not state or is_terminal(state) then
  redis.call('ZREM', prefix .. ':live', id)
  redis.call('ZREM', prefix .. ':unsent', id)
  return false
end
if args[4] == 'expired' then
  local deadline = redis.call('ZSCORE', prefix .. ':live', id)
  if not deadline or tonumber(deadline) > now() then return false end
  if state == 'queued' and not redis.call('HGET', task_key(id), 'claimed') then
    redis.call('ZREM', prefix .. ':live', id)
    return false
  end
elseif args[4] == 'unsent' then
  local created = redis.call('ZSCORE', prefix .. ':unsent', id)
  if not created or tonumber(created) > now() - tonumber(args[6]) then return false end
end
return terminate(id, args[5] == 'failed' and 'failed' or 'lost', 'error', args[2], args[3])
