-- Queued tasks say on their bars whether a worker is alive to take them:
-- while none is, those still waiting get `none` as their message; once one is,
-- those get `some` again. Each change is a new seq, pushed. args: max age (s)
-- of a live worker's last sign, `none`, `some`, max count. Returns how many
-- bars changed.
local t = now()
local seen = redis.call('ZRANGEBYSCORE', prefix .. ':workers', t - tonumber(args[1]), '+inf',
                        'LIMIT', 0, 1)
local from, to, message = prefix .. ':waiting', prefix .. ':stranded', args[2]
if #seen > 0 then from, to, message = to, from, args[3] end
local found = redis.call('ZRANGE', from, 0, tonumber(args[4]) - 1, 'WITHSCORES')
local changed = 0
for i = 1, #found, 2 do
  local id, since = found[i], found[i + 1]
  local key = task_key(id)
  redis.call('ZREM', from, id)
  if redis.call('HGET', key, 'state') == 'queued' and not redis.call('HGET', key, 'claimed') then
    redis.call('ZADD', to, since, id)
    -- A snapshot that will not decode or encode is left as it is: one bad
    -- record must not keep every other bar from being told.
    local ok, snapshot = pcall(cjson.decode, redis.call('HGET', key, 'snapshot'))
    local encoded
    if ok then
      snapshot['seq'] = tonumber(redis.call('HGET', key, 'seq')) + 1
      snapshot['message'] = message
      snapshot['updated_at'] = math.floor(t * 1000) / 1000
      ok, encoded = pcall(cjson.encode, snapshot)
    end
    if ok then
      redis.call('HSET', key, 'seq', snapshot['seq'], 'snapshot', encoded)
      publish(id, encoded)
      changed = changed + 1
    end
  end
end
return changed
