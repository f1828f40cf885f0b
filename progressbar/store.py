"""Task records in Redis: owner, latest snapshot and its seq.

Every change of a record is one of the Lua scripts of `scripts`, so several
web processes and workers can act on one task without races, and every change
of a snapshot is published by the script that makes it.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import scripts
from .messages import task_channel
from .snapshot import CANCELLED_BEFORE_START, gone_snapshot
from .strict_json import dumps as strict_dumps
from .strict_json import loads


def dumps(value: Any) -> str:
    """Strict JSON of a snapshot: NaN and ±Infinity become null, and an object
    without a JSON form is written as its text. Unencodable if nested too
    deeply or circular."""
    return strict_dumps(value, default=str)


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


class Record(NamedTuple):
    """What a web process reads of a task to serve a watcher: who may see it,
    and its snapshot (None: no such task)."""

    owner: str | None
    shared: bool
    snapshot: dict[str, Any] | None


class LimitReached(Exception):
    """A new task would pass a limit on unfinished tasks: `which` is 'owner'
    (MAX_ACTIVE_TASKS), 'address' (the client address's) or 'total' (everyone's)."""

    def __init__(self, which: str = "owner") -> None:
        super().__init__(which)
        self.which = which


class Store:
    """Reads and writes task records; every change of a snapshot bumps its seq
    and is pushed on `channel` ('' pushes nothing), or with `task_channels`
    on the task's own channel beside it."""

    def __init__(
        self,
        client: redis.Redis,
        ttl: int,
        prefix: str = "progressbar",
        heartbeat_timeout: float = 5.0,
        max_active: int = 10,
        channel: str = "",
        max_active_per_address: int = 0,
        max_active_total: int = 0,
        fair_share: float = 1.0,
        task_channels: bool = False,
    ) -> None:
        self.redis = client
        self.ttl = ttl
        self.prefix = prefix
        self.heartbeat_timeout = heartbeat_timeout
        self.max_active = max_active
        self.channel = channel
        # Each task's pushes on a channel of its own (`messages.task_channel`).
        self.task_channels = task_channels
        # Limits of a client address's and everyone's unfinished tasks (0: none).
        self.max_active_per_address = max_active_per_address
        self.max_active_total = max_active_total
        # Share of the live workers' slots one owner, or one address, may run at once.
        self.fair_share = fair_share
        self._scripts = {
            name: client.register_script(scripts.source(name)) for name in scripts.NAMES
        }

    def warm_up(self) -> None:
        """Connect and load the scripts now rather than on first use."""
        for script in self._scripts.values():
            script.sha = self.redis.script_load(script.script)

    def _run(self, name: str, *args: Any) -> Any:
        by_task = "1" if self.task_channels else ""
        return self._scripts[name](args=[self.prefix, self.channel, by_task, *args])

    def push_channel(self, task_id: str) -> str:
        """The channel `task_id`'s pushes are published on."""
        return task_channel(self.channel, task_id) if self.task_channels else self.channel

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{owner}"

    # -- changes ------------------------------------------------------------

    def create(
        self,
        task_id: str,
        owner: str,
        snapshot: dict[str, Any],
        shared: bool = False,
        *,
        address: str = "",
    ) -> dict[str, Any]:
        """Record a new queued task (seq 1) under its owner, started from
        client `address` ('' for server code); LimitReached if it would pass a
        limit. A `shared` task may be watched by anyone who has its id."""
        return self._create(task_id, owner, snapshot, shared, address, "", [task_id])

    def create_group(
        self,
        group_id: str,
        owner: str,
        snapshot: dict[str, Any],
        parts: dict[str, str],
        shared: bool = False,
        *,
        address: str = "",
    ) -> dict[str, Any]:
        """Record a queued group and its queued parts ({part id: kind}), all
        in one script: there is never a group without its parts. It counts
        as its parts toward the limits."""
        kind = next(iter(parts.values()))
        template = {**snapshot, "task_id": "__ID__", "kind": kind, "seq": 1}
        children = [{"task_id": part_id, "state": "queued", "percent": 0} for part_id in parts]
        group = {**snapshot, "children": children}
        return self._create(group_id, owner, group, shared, address, dumps(template), list(parts))

    def _create(
        self,
        task_id: str,
        owner: str,
        snapshot: dict[str, Any],
        shared: bool,
        address: str,
        part_template: str,
        units: list[str],
    ) -> dict[str, Any]:
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
            address,
            self.max_active_per_address,
            self.max_active_total,
            part_template,
            *units,
        )
        if created != 1:
            raise LimitReached(str(created))
        return snapshot

    def sent(self, *task_ids: str) -> None:
        """The broker has these tasks' messages (a group's: its parts'): they
        are no longer at risk of never being sent."""
        self.redis.zrem(f"{self.prefix}:unsent", *task_ids)

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
        return loads(stored) if stored else None

    def claim(self, task_id: str, attempt: int = 0) -> str:
        """Take the task on for one delivery of attempt `attempt` (Celery's
        `retries`): 'claimed', or 'taken', 'ended' or 'missing' when this
        delivery must not run it, or 'deferred' when its owner (or its client
        address) already runs its fair share of the workers: not now."""
        return str(
            self._run(
                "claim", task_id, attempt, self.fair_share, self.heartbeat_timeout, self.ttl
            )
        )

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
        return loads(raw) if raw else None

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
        return outcome, loads(raw)

    def lose(
        self, task_id: str, reason: str, only_if_expired: bool, failed: bool = False
    ) -> dict[str, Any] | None:
        """End an unfinished task as lost (`failed`: as failed, for a task its
        worker stopped); the new snapshot, or None if nothing changed."""
        raw = self._run(
            "lose",
            task_id,
            reason,
            self.ttl,
            "expired" if only_if_expired else "now",
            "failed" if failed else "lost",
        )
        return loads(raw) if raw else None

    def lose_unsent(self, task_id: str, reason: str, age: float) -> dict[str, Any] | None:
        """End a task as lost if its message was still not marked sent `age`
        seconds after its creation; the new snapshot, or None."""
        raw = self._run("lose", task_id, reason, self.ttl, "unsent", "lost", age)
        return loads(raw) if raw else None

    def end_cancelled(self, task_id: str, grace: float, message: str) -> dict[str, Any] | None:
        """End as cancelled a task still unfinished `grace` seconds after its
        owner's cancel; the new snapshot, or None if nothing changed."""
        raw = self._run("end_cancelled", task_id, grace, message, self.ttl)
        return loads(raw) if raw else None

    def note_waiting(self, max_age: float, none: str, some: str, limit: int = 500) -> int:
        """Queued tasks' bars say `none` while no worker was seen within
        `max_age` seconds, and `some` again once one is; how many changed."""
        return int(self._run("waiting", max_age, none, some, limit))

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

    def worker_seen(self, name: str, slots: int | None = None) -> None:
        """Worker `name`, with `slots` pool processes, is alive now."""
        self._run("worker_seen", name, slots or "")

    # -- reads --------------------------------------------------------------

    def expired(self, limit: int = 100) -> list[str]:
        """Ids of tasks whose heartbeat deadline has passed."""
        return list(self._run("expired", limit))

    def overdue(self, which: str, age: float, limit: int = 100) -> list[str]:
        """Ids of tasks `age` seconds or more in set `which`: 'unsent' (since
        their creation) or 'cancelling' (since their owner's cancel)."""
        return list(self._run("overdue", which, age, limit))

    def live_workers(self, max_age: float) -> list[str]:
        """Workers seen within `max_age` seconds."""
        return list(self._run("live_workers", max_age))

    def get(self, task_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self._task_key(task_id), "snapshot")
        return loads(raw) if raw else None  # type: ignore[arg-type]

    def records(self, task_ids: list[str], client: redis.Redis | None = None) -> dict[str, Record]:
        """Owner, `shared` flag and snapshot of each task, in one round trip
        (an absent task: all empty), over `client` if given."""
        # No MULTI: a read must work at `maxmemory` too.
        pipe = (client or self.redis).pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hmget(self._task_key(task_id), ["owner", "shared", "snapshot"])
        found = {}
        for task_id, (owner, shared, raw) in zip(task_ids, pipe.execute(), strict=True):
            found[task_id] = Record(owner, bool(shared), loads(raw) if raw else None)
        return found

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
        return loads(raw)

    def lists(
        self, owners: list[str], client: redis.Redis | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """`list` of each of several owners, in two round trips for them all,
        over `client` if given."""
        # No MULTI: Redis refuses a transaction once at `maxmemory`, and a
        # read must work then too.
        client = client or self.redis
        pipe = client.pipeline(transaction=False)
        for owner in owners:
            pipe.zrevrange(self._owner_key(owner), 0, -1)
        indexes: list[list[str]] = pipe.execute()
        pipe = client.pipeline(transaction=False)
        for task_ids in indexes:
            for task_id in task_ids:
                pipe.hget(self._task_key(task_id), "snapshot")
        raws = iter(pipe.execute() if any(indexes) else [])
        found: dict[str, list[dict[str, Any]]] = {}
        for owner, task_ids in zip(owners, indexes, strict=True):
            snapshots = found[owner] = []
            expired = []
            for task_id in task_ids:
                raw = next(raws)
                if raw is None:
                    expired.append(task_id)
                else:
                    snapshots.append(loads(raw))
            if expired:
                self.redis.zrem(self._owner_key(owner), *expired)
        return found

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's tasks, newest first; ids of expired records are dropped
        from the owner's index on the way."""
        return self.lists([owner])[owner]
