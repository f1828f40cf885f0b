-- One delivery of a task's message takes the task on, once per attempt: the
-- broker may deliver a message twice (a worker died holding it, and it came
-- back after the visibility timeout, or a copy was restored while another
-- worker still held it), while a retry is a new attempt of the same task.
-- args: id, attempt (Celery's `retries`: 0 for the first). `claimed` keeps the
-- highest attempt taken, counted from 1. Returns 'claimed', 'taken' (this or a
-- later attempt has it), 'ended' (terminal) or 'missing' (no record: not
-- started by us).
local key = task_key(args[1])
local attempt = (tonumber(args[2]) or 0) + 1
local state = redis.call('HGET', key, 'state')
if not state then return 'missing' end
if is_terminal(state) then return 'ended' end
local claimed = tonumber(redis.call('HGET', key, 'claimed'))
if claimed and claimed >= attempt then return 'taken' end
redis.call('HSET', key, 'claimed', attempt)
-- Its message reached a worker: it no longer waits, nor can be unsent.
local id, parent = args[1], redis.call('HGET', key, 'parent')
redis.call('ZREM', prefix .. ':unsent', id)
for _, set in ipairs({'waiting', 'stranded'}) do
  redis.call('ZREM', prefix .. ':' .. set, id)
  if parent then redis.call('ZREM', prefix .. ':' .. set, parent) end
end
return 'claimed'
