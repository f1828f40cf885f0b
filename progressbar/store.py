"""Task records in Redis: owner, latest snapshot and its seq."""

from __future__ import annotations

import json
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "lost"})

# Bump seq and store the snapshot in one step, unless the task is already
# terminal (a late update must never resurrect a finished bar). The snapshot
# arrives as JSON without seq; seq is spliced in front of its first key.
_WRITE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'succeeded' or state == 'failed' or state == 'cancelled'
   or state == 'lost' then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local snapshot = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'snapshot', snapshot)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return seq
"""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def connect(url: str, max_connections: int) -> redis.Redis:
    """A client whose pool waits for a free connection instead of failing."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=1,
        socket_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


class Store:
    """Reads and writes task records; every write of a snapshot bumps its seq."""

    def __init__(self, client: redis.Redis, ttl: int, prefix: str = "progressbar") -> None:
        self.redis = client
        self.ttl = ttl
        self.prefix = prefix
        self._write = client.register_script(_WRITE)

    def warm_up(self) -> None:
        self.redis.ping()
        self._write.sha = self.redis.script_load(_WRITE)

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    def create(self, task_id: str, owner: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Record a new task (seq 1) and file it under its owner."""
        snapshot = {**snapshot, "seq": 1}
        key = self._task_key(task_id)
        pipe = self.redis.pipeline()
        pipe.hset(
            key,
            mapping={
                "owner": owner,
                "seq": 1,
                "state": snapshot["state"],
                "snapshot": dumps(snapshot),
            },
        )
        pipe.expire(key, self.ttl)
        pipe.zadd(self._owner_key(owner), {task_id: snapshot["created_at"]})
        pipe.expire(self._owner_key(owner), self.ttl)
        pipe.execute()
        return snapshot

    def discard(self, task_id: str, owner: str) -> None:
        """Forget a task that never got queued."""
        pipe = self.redis.pipeline()
        pipe.delete(self._task_key(task_id))
        pipe.zrem(self._owner_key(owner), task_id)
        pipe.execute()

    def write(self, task_id: str, snapshot: dict[str, Any]) -> int | None:
        """Store a new snapshot; its seq, or None if the task is gone or finished."""
        seq = self._write(
            keys=[self._task_key(task_id)],
            args=[dumps(snapshot), snapshot["state"], self.ttl],
        )
        return int(seq) if seq else None

    def get(self, task_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._task_key(task_id), "snapshot")
        return json.loads(raw) if raw else None

    def get_owned(self, task_id: str, owner: str) -> dict[str, Any] | None:
        """The snapshot if `owner` started this task, else None: as if absent."""
        stored_owner, raw = self.redis.hmget(self._task_key(task_id), ["owner", "snapshot"])
        if raw is None or stored_owner is None or stored_owner != owner:
            return None
        return json.loads(raw)

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's tasks, newest first; expired records are pruned."""
        owner_key = self._owner_key(owner)
        task_ids: list[str] = self.redis.zrevrange(owner_key, 0, -1)  # type: ignore[assignment]
        if not task_ids:
            return []
        pipe = self.redis.pipeline()
        for task_id in task_ids:
            pipe.hget(self._task_key(task_id), "snapshot")
        snapshots = []
        expired = []
        for task_id, raw in zip(task_ids, pipe.execute(), strict=True):
            if raw is None:
                expired.append(task_id)
            else:
                snapshots.append(json.loads(raw))
        if expired:
            self.redis.zrem(owner_key, *expired)
        return snapshots
