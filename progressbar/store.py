"""Task records in Redis: owner, latest snapshot and its seq.

Every change of a record is one of the Lua scripts of `scripts`, so several
web processes and workers can act on one task without races, and every change
of a snapshot is published by the script that makes it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import scripts
from .snapshot import CANCELLED_BEFORE_START, gone_snapshot


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
        # Two quick retries (about 0.1 s in all) ride out a dropped connection;
        # a Redis that is really down is then answered `unavailable` within
        # about a second, connect timeout included.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
        decode_responses=True,
    )
    return redis.Redis(connection_pool=pool)


class LimitReached(Exception):
    """The owner already has as many unfinished tasks as allowed."""


class Store:
    """Reads and writes task records; every change of a snapshot bumps its seq
    and is pushed on `channel` ('' pushes nothing)."""

    def __init__(
        self,
        client: redis.Redis,
        ttl: int,
        prefix: str = "progressbar",
        heartbeat_timeout: float = 5.0,
        max_active: int = 10,
        channel: str = "",
    ) -> None:
        self.redis = client
        self.ttl = ttl
        self.prefix = prefix
        self.heartbeat_timeout = heartbeat_timeout
        self.max_active = max_active
        self.channel = channel
        self._scripts = {
            name: client.register_script(scripts.source(name)) for name in scripts.NAMES
        }

    def warm_up(self) -> None:
        """Connect and load the scripts now rather than on first use."""
        for script in self._scripts.values():
            script.sha = self.redis.script_load(script.script)

    def _run(self, name: str, *args: Any) -> Any:
        return self._scripts[name](args=[self.prefix, self.channel, *args])

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    # -- changes ------------------------------------------------------------

    def create(
        self, task_id: str, owner: str, snapshot: dict[str, Any], shared: bool = False
    ) -> dict[str, Any]:
        """Record a new queued task (seq 1) under its owner; LimitReached if
        full. A `shared` task may be watched by anyone who has its id."""
        snapshot = {**snapshot, "seq": 1}
        created = self._run(
            "create",
            task_id,
            owner,
            dumps(snapshot),
            snapshot["created_at"],
            self.ttl,
            self.max_active,
            "1" if shared else "",
        )
        if not created:
            raise LimitReached
        return snapshot

    def create_group(
        self,
        group_id: str,
        owner: str,
        snapshot: dict[str, Any],
        parts: dict[str, str],
        shared: bool = False,
    ) -> dict[str, Any]:
        """Record a queued group and its queued parts ({part id: kind})."""
        snapshot = self.create(
            group_id,
            owner,
            {
                **snapshot,
                "children": [
                    {"task_id": part_id, "state": "queued", "percent": 0} for part_id in parts
                ],
            },
            shared,
        )
        kind = next(iter(parts.values()))
        template = {**snapshot, "task_id": "__ID__", "kind": kind, "seq": 1}
        del template["children"]
        self._run("create_parts", group_id, owner, self.ttl, dumps(template), *parts)
        return snapshot

    def discard(self, task_id: str, owner: str, *parts: str) -> None:
        """Forget a task (and its parts) that never got queued."""
        self._run("discard", owner, task_id, *parts)

    def write(self, task_id: str, snapshot: dict[str, Any]) -> dict[str, Any] | None:
        """Store and push a reporter's snapshot: it as stored (with its seq, and
        `cancel_requested` while a cancel is pending), or None if the task is
        gone or already finished."""
        percent = snapshot.get("percent")
        stored = self._run(
            "write",
            task_id,
            dumps(snapshot),
            snapshot["state"],
            self.ttl,
            self.heartbeat_timeout,
            "" if percent is None else percent,
            snapshot.get("error") or "",
        )
        return json.loads(stored) if stored else None

    def claim(self, task_id: str, attempt: int = 0) -> str:
        """Take the task on for one delivery of attempt `attempt` (Celery's
        `retries`): 'claimed', or 'taken', 'ended' or 'missing' when this
        delivery must not run it."""
        return str(self._run("claim", task_id, attempt))

    def retrying(
        self, task_id: str, snapshot: dict[str, Any], wait: float, same_attempt: bool = False
    ) -> dict[str, Any] | None:
        """An attempt ended and another follows within `wait` seconds (a retry;
        `same_attempt` for a requeued message): the bar shows `snapshot` (its
        message says why) and stays live meanwhile. The stored snapshot, or
        None if the task has ended."""
        raw = self._run(
            "retry",
            task_id,
            dumps(snapshot),
            max(0.0, wait),
            self.heartbeat_timeout,
            self.ttl,
            "1" if same_attempt else "",
        )
        return json.loads(raw) if raw else None

    def heartbeat(self, *task_ids: str) -> set[str]:
        """Arm the deadline of these unfinished tasks; those whose cancel was asked."""
        if not task_ids:
            return set()
        return set(self._run("heartbeat", self.heartbeat_timeout, *task_ids))

    def cancel(
        self, task_id: str, message: str = CANCELLED_BEFORE_START
    ) -> tuple[str, dict[str, Any]] | None:
        """Cancel: ('cancelled' | 'requested' | 'finished', snapshot), None if
        absent. `message` is the snapshot's message if it never started."""
        answer = self._run("cancel", task_id, self.ttl, message)
        if not answer:
            return None
        outcome, raw = answer
        return outcome, json.loads(raw)

    def lose(self, task_id: str, reason: str, only_if_expired: bool) -> dict[str, Any] | None:
        """End an unfinished task as lost; the new snapshot, or None if nothing changed."""
        raw = self._run("lose", task_id, reason, self.ttl, "expired" if only_if_expired else "now")
        return json.loads(raw) if raw else None

    def republish(self, task_ids: list[str], unfinished: set[str] | None = None) -> int:
        """Push these tasks' stored snapshots again; how many were pushed. A
        task of `unfinished` (all by default) whose record is gone is pushed
        `lost` instead, once and for all (`gone_snapshot`, kept as its record)."""
        if not task_ids:
            return 0
        now = time.time()
        args: list[str] = []
        for task_id in task_ids:
            gone = unfinished is None or task_id in unfinished
            args += [task_id, dumps(gone_snapshot(task_id, now)) if gone else ""]
        return int(self._run("republish", self.ttl, *args))

    def worker_seen(self, name: str) -> None:
        """Worker `name` is alive now."""
        self._run("worker_seen", name)

    # -- reads --------------------------------------------------------------

    def expired(self, limit: int = 100) -> list[str]:
        """Ids of tasks whose heartbeat deadline has passed."""
        return list(self._run("expired", limit))

    def live_workers(self, max_age: float) -> list[str]:
        """Workers seen within `max_age` seconds."""
        return list(self._run("live_workers", max_age))

    def get(self, task_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._task_key(task_id), "snapshot")
        return json.loads(raw) if raw else None  # type: ignore[arg-type]

    def get_owned(
        self, task_id: str, owner: str, or_shared: bool = False
    ) -> dict[str, Any] | None:
        """The snapshot if `owner` started this task (or, with `or_shared`, if
        it is shared), else None: as if absent."""
        fields = ["owner", "snapshot", "shared"]
        stored_owner, raw, shared = self.redis.hmget(self._task_key(task_id), fields)
        if raw is None or stored_owner is None:
            return None
        if stored_owner != owner and not (or_shared and shared):
            return None
        return json.loads(raw)

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's tasks, newest first; ids of expired records are dropped
        from the owner's index on the way."""
        owner_key = self._owner_key(owner)
        task_ids: list[str] = self.redis.zrevrange(owner_key, 0, -1)  # type: ignore[assignment]
        if not task_ids:
            return []
        # No MULTI: Redis refuses a transaction once at `maxmemory`, and a
        # read must work then too.
        pipe = self.redis.pipeline(transaction=False)
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
