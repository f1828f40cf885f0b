-- One delivery of a task's message takes the task on, once per attempt: the
-- broker may deliver a message twice (a worker died holding it, and it came
-- back after the visibility timeout, or a copy was restored while another
-- worker still held it), while a retry is a new attempt of the same task.
-- args: id, attempt (Celery's `retries`: 0 for the first), the fair share of
-- the worker slots (1: none), the age (s) within which a worker counts as
-- alive, ttl. `claimed` keeps the highest attempt taken, counted from 1.
-- Returns 'claimed', 'taken' (this or a later attempt has it), 'ended'
-- (terminal), 'missing' (no record: not started by us) or 'deferred' (its
-- owner, or its client address, already runs its share: not now).
local id = args[1]
local key = task_key(id)
local attempt = (tonumber(args[2]) or 0) + 1
local share, ttl = tonumber(args[3]) or 1, tonumber(args[5])
local state = redis.call('HGET', key, 'state')
if not state then return 'missing' end
if is_terminal(state) then return 'ended' end
local claimed = tonumber(redis.call('HGET', key, 'claimed'))
if claimed and claimed >= attempt then return 'taken' end
local t = now()
local holders = {running_key('owner', redis.call('HGET', key, 'owner'))}
local address = address_of(id)
if address then table.insert(holders, running_key('address', address)) end
-- The running units `holder` counts, those that ended or are gone left out.
local function running(holder)
  redis.call('ZREMRANGEBYSCORE', holder, '-inf', t - ttl)
  local n = 0
  for _, other in ipairs(redis.call('ZRANGE', holder, 0, 99)) do
    local other_state = redis.call('HGET', task_key(other), 'state')
    if other_state and not is_terminal(other_state) then n = n + 1
    else redis.call('ZREM', holder, other) end
  end
  return n
end
-- Its message reached a worker: it can no longer be unsent (even if deferred).
redis.call('ZREM', prefix .. ':unsent', id)
if share < 1 then
  local slots = 0
  local alive = redis.call('ZRANGEBYSCORE', prefix .. ':workers', t - tonumber(args[4]), '+inf')
  for _, name in ipairs(alive) do
    slots = slots + (tonumber(redis.call('HGET', prefix .. ':slots', name)) or 0)
  end
  if slots > 0 then
    local cap = math.max(1, math.floor(share * slots))
    for _, holder in ipairs(holders) do
      -- A retry of a task that holds its place already takes no other.
      if not redis.call('ZSCORE', holder, id) and running(holder) >= cap then
        return 'deferred'
      end
    end
  end
end
redis.call('HSET', key, 'claimed', attempt)
for _, holder in ipairs(holders) do
  redis.call('ZADD', holder, t, id)
  redis.call('EXPIRE', holder, ttl)
end
-- Taken on: it no longer waits for a worker.
local parent = redis.call('HGET', key, 'parent')
for _, set in ipairs({'waiting', 'stranded'}) do
  redis.call('ZREM', prefix .. ':' .. set, id)
  if parent then redis.call('ZREM', prefix .. ':' .. set, parent) end
end
return 'claimed'
