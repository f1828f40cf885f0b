"""The Lua scripts behind every change of a task record, each atomic in Redis.

Record of a task, hash `{prefix}:task:{id}`: owner, seq, state, snapshot (JSON,
with seq), cancel (set when its owner asked to cancel it). Beside it:
`{prefix}:owner:{owner}` (sorted set of the owner's task ids by creation),
`{prefix}:active:{owner}` (set of the owner's unfinished task ids, for the
limit) and `{prefix}:live` (sorted set: task id -> heartbeat deadline, Redis
time). Keys are built inside the scripts from the prefix: one Redis, no cluster.
"""

from __future__ import annotations

PRELUDE = """
local prefix = ARGV[1]
local function task_key(id) return prefix .. ':task:' .. id end
local function is_terminal(state)
  return state == 'succeeded' or state == 'failed' or state == 'cancelled' or state == 'lost'
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local function forget_live(id, owner)
  redis.call('ZREM', prefix .. ':live', id)
  redis.call('SREM', prefix .. ':active:' .. owner, id)
  redis.call('HDEL', task_key(id), 'cancel')
end
-- End a task in `state` from its stored snapshot, with `field` set to `text`.
local function terminate(id, state, field, text, ttl)
  local key = task_key(id)
  local snapshot = cjson.decode(redis.call('HGET', key, 'snapshot'))
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  snapshot['seq'] = seq
  snapshot['state'] = state
  snapshot['eta'] = cjson.null
  snapshot['cancel_requested'] = nil
  snapshot['updated_at'] = math.floor(now() * 1000) / 1000
  snapshot[field] = text
  local encoded = cjson.encode(snapshot)
  redis.call('HSET', key, 'state', state, 'snapshot', encoded)
  redis.call('EXPIRE', key, ttl)
  forget_live(id, redis.call('HGET', key, 'owner'))
  return encoded
end
"""

# ARGV: prefix, id, owner, snapshot JSON (seq 1), created_at, ttl, limit.
# Returns 1, or 0 when the owner already has `limit` unfinished tasks.
CREATE = (
    PRELUDE
    + """
local id, owner, ttl = ARGV[2], ARGV[3], tonumber(ARGV[6])
local active_key = prefix .. ':active:' .. owner
local active = 0
for _, other in ipairs(redis.call('SMEMBERS', active_key)) do
  local state = redis.call('HGET', task_key(other), 'state')
  if state and not is_terminal(state) then active = active + 1
  else redis.call('SREM', active_key, other) end
end
if active >= tonumber(ARGV[7]) then return 0 end
redis.call('HSET', task_key(id), 'owner', owner, 'seq', 1, 'state', 'queued',
           'snapshot', ARGV[4])
redis.call('EXPIRE', task_key(id), ttl)
redis.call('ZADD', prefix .. ':owner:' .. owner, ARGV[5], id)
redis.call('EXPIRE', prefix .. ':owner:' .. owner, ttl)
redis.call('SADD', active_key, id)
redis.call('EXPIRE', active_key, ttl)
return 1
"""
)

# A new snapshot from the task's reporter. ARGV: prefix, id, snapshot JSON
# without seq, its state, ttl, heartbeat timeout, and optionally the Socket.IO
# queue channel with the queue message's text before and after the snapshot:
# then the push is published from here, saving the worker a round trip.
# Refused (seq 0) when the record is gone or already terminal: a late update
# never resurrects a bar. Returns {seq, cancel requested (0/1)}.
WRITE = (
    PRELUDE
    + """
local id, state = ARGV[2], ARGV[4]
local key = task_key(id)
local current = redis.call('HGET', key, 'state')
if not current or is_terminal(current) then return {0, 0} end
local seq = redis.call('HINCRBY', key, 'seq', 1)
local snapshot = '{"seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
local cancel = redis.call('HGET', key, 'cancel') and 1 or 0
if cancel == 1 and not is_terminal(state) then
  snapshot = string.sub(snapshot, 1, -2) .. ',"cancel_requested":true}'
end
redis.call('HSET', key, 'state', state, 'snapshot', snapshot)
redis.call('EXPIRE', key, ARGV[5])
if is_terminal(state) then
  forget_live(id, redis.call('HGET', key, 'owner'))
else
  redis.call('ZADD', prefix .. ':live', now() + tonumber(ARGV[6]), id)
end
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[8] .. snapshot .. ARGV[9])
end
return {seq, cancel}
"""
)

# Proof of life for tasks a worker holds. ARGV: prefix, timeout, id...
# Only unfinished tasks are (re)armed. Returns the ids whose cancel was asked.
HEARTBEAT = (
    PRELUDE
    + """
local deadline = now() + tonumber(ARGV[2])
local cancelled = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local state = redis.call('HGET', task_key(id), 'state')
  if state and not is_terminal(state) then
    redis.call('ZADD', prefix .. ':live', deadline, id)
    if redis.call('HGET', task_key(id), 'cancel') then table.insert(cancelled, id) end
  end
end
return cancelled
"""
)

# The owner's cancel. ARGV: prefix, id, ttl. A queued task ends `cancelled`
# at once; a running one is flagged for its reporter; a finished one is left.
# Returns {outcome, snapshot JSON}: outcome 'cancelled', 'requested' or 'finished'.
CANCEL = (
    PRELUDE
    + """
local id = ARGV[2]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return false end
if is_terminal(state) then return {'finished', redis.call('HGET', key, 'snapshot')} end
if state == 'queued' then
  return {'cancelled', terminate(id, 'cancelled', 'message', 'Cancelled before it started',
                                 ARGV[3])}
end
redis.call('HSET', key, 'cancel', 1)
local snapshot = cjson.decode(redis.call('HGET', key, 'snapshot'))
snapshot['cancel_requested'] = true
return {'requested', cjson.encode(snapshot)}
"""
)

# The watchdog's verdict. ARGV: prefix, id, reason, ttl, 'expired' or 'now'.
# With 'expired' the task is ended only if its heartbeat deadline has passed
# (several web processes may judge at once: one wins, none double-reports).
# Returns the new snapshot JSON, or false when nothing changed.
LOSE = (
    PRELUDE
    + """
local id = ARGV[2]
local state = redis.call('HGET', task_key(id), 'state')
if not state or is_terminal(state) then
  redis.call('ZREM', prefix .. ':live', id)
  return false
end
if ARGV[5] == 'expired' then
  local deadline = redis.call('ZSCORE', prefix .. ':live', id)
  if not deadline or tonumber(deadline) > now() then return false end
end
return terminate(id, 'lost', 'error', ARGV[3], ARGV[4])
"""
)

# ARGV: prefix, max count. Ids whose heartbeat deadline has passed.
EXPIRED = (
    PRELUDE
    + """
return redis.call('ZRANGEBYSCORE', prefix .. ':live', '-inf', now(), 'LIMIT', 0, ARGV[2])
"""
)
