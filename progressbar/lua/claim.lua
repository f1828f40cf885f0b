-- One delivery of a task's message takes the task on, once: the broker may
-- deliver a message twice (a worker died holding it, and it came back after
-- the visibility timeout, or a copy was restored while another worker still
-- held it). args: id. Returns 'claimed', 'taken' (another delivery has it),
-- 'ended' (terminal) or 'missing' (no record: not started by us).
local key = task_key(args[1])
local state = redis.call('HGET', key, 'state')
if not state then return 'missing' end
if is_terminal(state) then return 'ended' end
if redis.call('HSETNX', key, 'claimed', '1') == 0 then return 'taken' end
return 'claimed'
