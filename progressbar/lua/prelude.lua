-- Shared by every script (scripts.py puts it in front of each). The names in
-- double braces are filled in from Python: the terminal states and the push
-- message's format.
local prefix, channel, by_task = ARGV[1], ARGV[2], ARGV[3] == '1'
local args = {}
for i = 4, #ARGV do args[i - 3] = ARGV[i] end
local TERMINAL = {{{TERMINAL}}}
local function task_key(id) return prefix .. ':task:' .. id end
local function is_terminal(state) return TERMINAL[state] == true end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end
-- Units (a task, or a part of a group) that count toward the limits: every
-- unfinished one, all of an owner's, all of a client address's (sorted sets,
-- by when it was created); and those running, by owner and by address (by
-- when they were claimed), for the fair share of the workers.
local function unfinished_key(by, who)
  if by then return prefix .. ':unfinished:' .. by .. ':' .. who end
  return prefix .. ':unfinished'
end
local function running_key(by, who) return prefix .. ':running:' .. by .. ':' .. who end
-- The client address a task was started from (a part's is its group's), or nil.
local function address_of(id)
  local fields = redis.call('HMGET', task_key(id), 'address', 'parent')
  if fields[1] then return fields[1] end
  if fields[2] then return redis.call('HGET', task_key(fields[2]), 'address') or nil end
  return nil
end
local function forget_live(id, owner)
  redis.call('ZREM', prefix .. ':live', id)
  for _, set in ipairs({'unsent', 'cancelling', 'waiting', 'stranded'}) do
    redis.call('ZREM', prefix .. ':' .. set, id)
  end
  redis.call('HDEL', task_key(id), 'cancel')
  redis.call('ZREM', unfinished_key(), id)
  redis.call('ZREM', unfinished_key('owner', owner), id)
  redis.call('ZREM', running_key('owner', owner), id)
  local address = address_of(id)
  if address then
    redis.call('ZREM', unfinished_key('address', address), id)
    redis.call('ZREM', running_key('address', address), id)
  end
end
-- Push a stored snapshot (JSON) to the task's room: on the task's own
-- channel (messages.task_channel), heard by the web processes hosting the
-- room, or on the shared one, heard by every web process.
local function publish(id, snapshot)
  if channel == '' then return end
  local to = channel
  if by_task then to = channel .. ':' .. id end
  redis.call('PUBLISH', to, {{PUSH_HEAD}} .. snapshot .. {{PUSH_MIDDLE}} .. id .. {{PUSH_TAIL}})
end

-- A stored snapshot as a table, with every number that is not finite (NaN
-- or Infinity, as earlier versions could store) made null: cjson refuses to
-- encode those, and the task could then never end.
local function finite_only(value)
  if type(value) == 'number' then
    if value ~= value or value == math.huge or value == -math.huge then return cjson.null end
  elseif type(value) == 'table' then
    for k, v in pairs(value) do value[k] = finite_only(v) end
  end
  return value
end
local function decoded(raw) return finite_only(cjson.decode(raw)) end

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
  local snapshot = decoded(redis.call('HGET', gkey, 'snapshot'))
  local state = started and 'running' or 'queued'
  snapshot['error'] = nil
  if finished == n then
    snapshot['cancel_requested'] = nil
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
  local snapshot = decoded(redis.call('HGET', key, 'snapshot'))
  snapshot['seq'] = redis.call('HINCRBY', key, 'seq', 1)
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
  publish(id, encoded)
  local parent = redis.call('HGET', key, 'parent')
  if parent then aggregate(parent, ttl) end
  return encoded
end
-- The owner's cancel of one task: {outcome, snapshot JSON}. A queued task
-- ends `cancelled` at once; a running one is flagged for its reporter, and its
-- snapshot says so (`cancel_requested`) from then on.
-- A stored snapshot (JSON text) with its seq replaced and `cancel_requested`
-- set. Edited as text: decoding and encoding it again would round its numbers
-- (cjson keeps 14 digits) while the task is still live.
local function with_cancel_requested(raw, seq)
  local text = (string.gsub(raw, '"seq":%d+', '"seq":' .. seq, 1))
  if not string.find(text, '"cancel_requested":true', 1, true) then
    text = string.sub(text, 1, -2) .. ',"cancel_requested":true}'
  end
  return text
end
local function cancel(id, ttl, message)
  local key = task_key(id)
  local state = redis.call('HGET', key, 'state')
  if not state then return {'finished', false} end
  if is_terminal(state) then return {'finished', redis.call('HGET', key, 'snapshot')} end
  -- Queued and not yet claimed by a worker: it never starts. Once claimed,
  -- its body may be running already: it is asked to stop, like a running one.
  if state == 'queued' and not redis.call('HGET', key, 'claimed') then
    return {'cancelled', terminate(id, 'cancelled', 'message', message, ttl)}
  end
  if redis.call('HGET', key, 'cancel') then
    return {'requested', redis.call('HGET', key, 'snapshot')}  -- asked before
  end
  redis.call('HSET', key, 'cancel', 1)
  -- When it was asked: a task that has not stopped CANCEL_GRACE later is
  -- terminated on its worker.
  redis.call('ZADD', prefix .. ':cancelling', 'NX', now(), id)
  local seq = redis.call('HINCRBY', key, 'seq', 1)
  local encoded = with_cancel_requested(redis.call('HGET', key, 'snapshot'), seq)
  redis.call('HSET', key, 'snapshot', encoded)
  publish(id, encoded)
  return {'requested', encoded}
end
