"""The Lua scripts behind every change of a task record, each atomic in Redis.

Record of a task, hash `{prefix}:task:{id}`: owner, seq, state, snapshot (JSON,
with seq), cancel (set when its owner asked to cancel it). Beside it:
`{prefix}:owner:{owner}` (sorted set of the owner's task ids by creation),
`{prefix}:active:{owner}` (set of the owner's unfinished task ids, for the
limit) and `{prefix}:live` (sorted set: task id -> heartbeat deadline, Redis
time). Keys are built inside the scripts from the prefix: one Redis, no cluster.

A group (a batch of parts) is a record with `children` (comma-separated ids);
each part has `parent`, `percent` (the highest it reached) and `error`. Any
change of a part recomputes the group's snapshot in the same script.

ARGV[1] of every script is the key prefix, then a newline and the Socket.IO
channel on which the scripts publish what they change themselves.
"""

from __future__ import annotations

PRELUDE = """
local prefix, channel = string.match(ARGV[1], '^([^\\n]*)\\n?(.*)$')
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
-- A `progress` emit to the task's room, as python-socketio's queue carries it
-- (pinned 5.x format); the host id is no web process's, so all deliver it.
local function publish(id, snapshot)
  if channel == '' then return end
  redis.call('PUBLISH', channel, '{"method":"emit","event":"progress","data":[' .. snapshot ..
    '],"binary":false,"namespace":"/progress","room":"' .. id ..
    '","skip_sid":null,"callback":null,"host_id":"progressbar-store"}')
end
local function split(text)
  local out = {}
  for part in string.gmatch(text or '', '[^,]+') do table.insert(out, part) end
  return out
end
-- Recompute a group from its parts: current and total in percent points of
-- the parts (each part's highest), so the group's percent never goes back.
-- It ends when every part has: failed if one failed, else lost if one was
-- lost, else cancelled if one was cancelled, else succeeded.
local function aggregate(gid, ttl)
  local gkey = task_key(gid)
  local gstate = redis.call('HGET', gkey, 'state')
  if not gstate or is_terminal(gstate) then return end
  local ids = split(redis.call('HGET', gkey, 'children'))
  local n = #ids
  local current, finished, started, counts, parts, first_error = 0, 0, false, {}, {}, nil
  for i, id in ipairs(ids) do
    local f = redis.call('HMGET', task_key(id), 'state', 'percent', 'error')
    local st = f[1] or 'lost'
    local pct = tonumber(f[2]) or 0
    if st == 'succeeded' then pct = 100 end
    current = current + pct
    counts[st] = (counts[st] or 0) + 1
    if is_terminal(st) then finished = finished + 1 end
    if st ~= 'queued' then started = true end
    if (st == 'failed' or st == 'lost') and not first_error and f[3] then
      first_error = 'part ' .. i .. ': ' .. f[3]
    end
    parts[i] = {task_id = id, state = st, percent = pct}
  end
  local snapshot = cjson.decode(redis.call('HGET', gkey, 'snapshot'))
  local state = started and 'running' or 'queued'
  snapshot['error'] = nil
  if finished == n then
    if counts['failed'] then
      state = 'failed'
      snapshot['error'] = counts['failed'] .. ' of ' .. n .. ' parts failed; ' .. first_error
    elseif counts['lost'] then
      state = 'lost'
      snapshot['error'] = counts['lost'] .. ' of ' .. n .. ' parts lost; ' .. first_error
    elseif counts['cancelled'] then
      state = 'cancelled'
    else
      state = 'succeeded'
      snapshot['result'] = {parts = n}
    end
  end
  local t = now()
  snapshot['seq'] = redis.call('HINCRBY', gkey, 'seq', 1)
  snapshot['state'] = state
  snapshot['current'] = current
  snapshot['total'] = 100 * n
  snapshot['percent'] = math.floor(current / n * 100 + 0.5) / 100
  snapshot['message'] = finished .. ' of ' .. n .. ' parts done'
  snapshot['children'] = parts
  snapshot['updated_at'] = math.floor(t * 1000) / 1000
  snapshot['elapsed'] = math.floor((t - tonumber(snapshot['created_at'])) * 1000) / 1000
  local encoded = cjson.encode(snapshot)
  redis.call('HSET', gkey, 'state', state, 'snapshot', encoded)
  redis.call('EXPIRE', gkey, ttl)
  if is_terminal(state) then forget_live(gid, redis.call('HGET', gkey, 'owner')) end
  publish(gid, encoded)
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
  if field == 'error' then redis.call('HSET', key, 'error', text) end
  redis.call('EXPIRE', key, ttl)
  forget_live(id, redis.call('HGET', key, 'owner'))
  local parent = redis.call('HGET', key, 'parent')
  if parent then aggregate(parent, ttl) end
  return encoded
end
-- The owner's cancel of one task: {outcome, snapshot JSON}. A queued task
-- ends `cancelled` at once; a running one is flagged for its reporter.
local function cancel(id, ttl)
  local key = task_key(id)
  local state = redis.call('HGET', key, 'state')
  if not state then return {'finished', false} end
  if is_terminal(state) then return {'finished', redis.call('HGET', key, 'snapshot')} end
  -- Queued and not yet claimed by a worker: it never starts. Once claimed,
  -- its body may be running already: it is asked to stop, like a running one.
  if state == 'queued' and not redis.call('HGET', key, 'claimed') then
    return {'cancelled', terminate(id, 'cancelled', 'message', 'Cancelled before it started', ttl)}
  end
  redis.call('HSET', key, 'cancel', 1)
  local snapshot = cjson.decode(redis.call('HGET', key, 'snapshot'))
  snapshot['cancel_requested'] = true
  return {'requested', cjson.encode(snapshot)}
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

# The parts of a new group. ARGV: prefix, group id, owner, ttl, snapshot JSON
# of a part with "__ID__" for its id, then the part ids. Parts are not listed
# under their owner (the group is) and do not count toward the limit.
CREATE_PARTS = (
    PRELUDE
    + """
local gid, owner, ttl, template = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV do
  local id = ARGV[i]
  local snapshot = string.gsub(template, '__ID__', id)
  redis.call('HSET', task_key(id), 'owner', owner, 'seq', 1, 'state', 'queued',
             'snapshot', snapshot, 'parent', gid, 'percent', 0)
  redis.call('EXPIRE', task_key(id), ttl)
end
redis.call('HSET', task_key(gid), 'children', table.concat(ARGV, ',', 6))
return 1
"""
)

# A new snapshot from the task's reporter. ARGV: prefix, id, snapshot JSON
# without seq, its state, ttl, heartbeat timeout, its percent ('' if none),
# its error ('' if none), and '1' to publish the push from here (a worker's:
# it saves a round trip). Refused (seq 0) when the record is gone or already
# terminal: a late update never resurrects a bar. Returns {seq, cancel asked}.
WRITE = (
    PRELUDE
    + """
local id, state, ttl = ARGV[2], ARGV[4], ARGV[5]
local key = task_key(id)
local current = redis.call('HGET', key, 'state')
if not current or is_terminal(current) then return {0, 0} end
local seq = redis.call('HINCRBY', key, 'seq', 1)
local snapshot = '{"seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
local cancel_asked = redis.call('HGET', key, 'cancel') and 1 or 0
if cancel_asked == 1 and not is_terminal(state) then
  snapshot = string.sub(snapshot, 1, -2) .. ',"cancel_requested":true}'
end
redis.call('HSET', key, 'state', state, 'snapshot', snapshot)
local percent = tonumber(ARGV[7])
if percent and percent > (tonumber(redis.call('HGET', key, 'percent')) or -1) then
  redis.call('HSET', key, 'percent', percent)
end
if ARGV[8] ~= '' then redis.call('HSET', key, 'error', ARGV[8]) end
redis.call('EXPIRE', key, ttl)
if is_terminal(state) then
  forget_live(id, redis.call('HGET', key, 'owner'))
else
  redis.call('ZADD', prefix .. ':live', now() + tonumber(ARGV[6]), id)
end
if ARGV[9] == '1' then publish(id, snapshot) end
local parent = redis.call('HGET', key, 'parent')
if parent then aggregate(parent, ttl) end
return {seq, cancel_asked}
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

# One delivery of a task's message takes the task on, once: the broker may
# deliver a message twice (a worker died holding it, and it came back after
# the visibility timeout, or a copy was restored while another worker still
# held it). ARGV: prefix, id. Returns 'claimed', 'taken' (another delivery
# has it), 'ended' (terminal) or 'missing' (no record: not started by us).
CLAIM = (
    PRELUDE
    + """
local key = task_key(ARGV[2])
local state = redis.call('HGET', key, 'state')
if not state then return 'missing' end
if is_terminal(state) then return 'ended' end
if redis.call('HSETNX', key, 'claimed', '1') == 0 then return 'taken' end
return 'claimed'
"""
)

# The owner's cancel. ARGV: prefix, id, ttl. For a group, every unfinished
# part is cancelled. Returns {outcome, snapshot JSON}: 'cancelled',
# 'requested' or 'finished'.
CANCEL = (
    PRELUDE
    + """
local id, ttl = ARGV[2], ARGV[3]
local key = task_key(id)
local state = redis.call('HGET', key, 'state')
if not state then return false end
local children = redis.call('HGET', key, 'children')
if not children or is_terminal(state) then return cancel(id, ttl) end
local requested = false
for _, part in ipairs(split(children)) do
  if cancel(part, ttl)[1] == 'requested' then requested = true end
end
local snapshot = redis.call('HGET', key, 'snapshot')
if redis.call('HGET', key, 'state') == 'cancelled' then return {'cancelled', snapshot} end
return {requested and 'requested' or 'finished', snapshot}
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

# A worker's proof of life. ARGV: prefix, worker name, max age (s). Returns the
# names of the workers seen within max age (with name '': only reads).
WORKERS = (
    PRELUDE
    + """
local key, t = prefix .. ':workers', now()
if ARGV[2] ~= '' then redis.call('ZADD', key, t, ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', t - 86400)
return redis.call('ZRANGEBYSCORE', key, t - tonumber(ARGV[3]), '+inf')
"""
)

# ARGV: prefix, max count. Ids whose heartbeat deadline has passed.
EXPIRED = (
    PRELUDE
    + """
return redis.call('ZRANGEBYSCORE', prefix .. ':live', '-inf', now(), 'LIMIT', 0, ARGV[2])
"""
)
