-- Proof of life for tasks a worker holds. args: timeout, id...
-- Only unfinished tasks are (re)armed. Returns the ids whose cancel was asked.
local deadline = now() + tonumber(args[1])
local cancelled = {}
for i = 2, #args do
  local id = args[i]
  local state = redis.call('HGET', task_key(id), 'state')
  if state and not is_terminal(state) then
    -- GT: never shortens a longer deadline, that of a retry's wait.
    redis.call('ZADD', prefix .. ':live', 'GT', deadline, id)
    if redis.call('HGET', task_key(id), 'cancel') then table.insert(cancelled, id) end
  end
end
return cancelled
