-- Push the stored snapshot of each task again (after a web process lost the
-- channel for a while: pub/sub delivers at most once). args: id...
-- Returns how many were pushed.
local pushed = 0
for _, id in ipairs(args) do
  local snapshot = redis.call('HGET', task_key(id), 'snapshot')
  if snapshot then
    publish(id, snapshot)
    pushed = pushed + 1
  end
end
return pushed
