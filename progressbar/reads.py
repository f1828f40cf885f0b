"""Reads that many callers make at once (a thousand bars subscribing to one
task, a web restart with every bar coming back), served without a round trip
each and without ever running out of Redis connections.

Callers asking while earlier reads are on the wire wait together, and the
next read answers them all in one pipeline: each caller's answer is read
after it asked, so it is as true as a read of its own. A few reads run at
once and the rest queue behind them, in order. A task's owner and `shared`
flag never change once it exists, so the ones seen are kept (a bounded
number of them) and the check of who may watch a task needs no read at all.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import redis
from redis.exceptions import RedisError

from .store import Record, Store

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Reads on the wire at once, at most; never more than half the Redis pool.
IN_FLIGHT = 4
# Keys one read asks for, at most: a bigger storm is read in several.
MAX_BATCH = 1000
# Owners of tasks remembered (about 300 bytes each).
OWNERS_KEPT = 10_000


class _Batch(Generic[K, V]):
    def __init__(self) -> None:
        self.keys: dict[K, None] = {}
        self.callers = 0
        self.done = threading.Event()
        self.found: dict[K, V] = {}
        self.error: BaseException | None = None

    def run(self, fetch: Callable[[list[K]], dict[K, V]]) -> None:
        try:
            self.found = fetch(list(self.keys))
        except BaseException as exc:  # every waiter learns of it, then it goes on
            self.error = exc
        finally:
            self.done.set()

    def answer(self, key: K) -> V:
        if self.error is not None:
            raise self.error
        return self.found[key]


class Batched(Generic[K, V]):
    """`get(key)` through `fetch(keys) -> {key: value}`, which reads many keys
    in one go: a caller that finds reads on the wire joins the next one
    instead of starting its own. `slots` bounds the reads running at once
    (shared by several Batched over one pool); the others wait their turn."""

    def __init__(
        self,
        fetch: Callable[[list[K]], dict[K, V]],
        slots: threading.Semaphore,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._fetch = fetch
        self._slots = slots
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._open: _Batch[K, V] | None = None

    def waiting(self) -> int:
        """Callers waiting for the next read to begin."""
        with self._lock:
            return self._open.callers if self._open is not None else 0

    def get(self, key: K) -> V:
        """The value of `key`, read after this call began."""
        with self._lock:
            batch = self._open
            lead = batch is None or len(batch.keys) >= self._max_batch
            if lead:
                batch = self._open = _Batch()
            assert batch is not None
            batch.keys[key] = None
            batch.callers += 1
        if not lead:
            batch.done.wait()
            return batch.answer(key)
        # The first caller of a batch reads it once a slot is free; callers
        # that came meanwhile were added to it, and nobody after.
        try:
            self._slots.acquire()
        except BaseException as exc:  # never leaves its batch's callers waiting
            self._close(batch)
            batch.error = exc
            batch.done.set()
            raise
        try:
            self._close(batch)
            batch.run(self._fetch)
        finally:
            self._slots.release()
        return batch.answer(key)

    def _close(self, batch: _Batch[K, V]) -> None:
        with self._lock:
            if self._open is batch:
                self._open = None


class Kept(Generic[K, V]):
    """The values of the latest `size` keys used, the others forgotten."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._kept.get(key)
            if value is not None:
                self._kept.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._kept[key] = value
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


class Owners(Kept[str, tuple[str, bool]]):
    """The owner and `shared` flag of tasks seen, the latest `size` of them."""

    def __init__(self, size: int = OWNERS_KEPT) -> None:
        super().__init__(size)

    def note(self, task_id: str, record: Record) -> None:
        """Remember the owner of a task read from its record."""
        if record.owner is not None and record.snapshot is not None:
            self.put(task_id, (record.owner, record.shared))


def may_watch(owner: str | None, shared: bool, identity: str, or_shared: bool) -> bool:
    """Whether `identity` may see a task of `owner`: its own, or, with
    `or_shared`, a shared one."""
    return owner is not None and (owner == identity or (or_shared and shared))


class Reads:
    """The reads a web process serves watchers with, over one store."""

    def __init__(self, store: Store, pool_size: int, owners_kept: int = OWNERS_KEPT) -> None:
        self.in_flight = max(1, min(IN_FLIGHT, pool_size // 2))
        # Connections of their own, one per read in flight: the store's are
        # shared with everything else the process does, which could leave a
        # read to open one in the middle of a storm (see `open_connections`).
        self.redis = _own_client(store.redis, self.in_flight)
        slots = threading.Semaphore(self.in_flight)
        self._records: Batched[str, Record] = Batched(
            lambda ids: store.records(ids, self.redis), slots
        )
        self._lists: Batched[str, list[dict[str, Any]]] = Batched(
            lambda owners: store.lists(owners, self.redis), slots
        )
        self.owners = Owners(owners_kept)

    def open_connections(self) -> None:
        """Open now the Redis connections these reads use.

        Called as the process starts serving: right after a restart every
        open page comes back at once, and a connection opened then, with the
        process busy accepting them, could miss its one-second connect
        timeout (the green thread that connects is not run again in time)
        and answer `unavailable` with Redis healthy. A Redis not reachable
        now is connected to on first use, as before."""
        pool = self.redis.connection_pool
        opened = []
        try:
            for _ in range(self.in_flight):
                opened.append(pool.get_connection())
        except RedisError as exc:
            log.warning("could not open the read connections yet: %s", exc)
        finally:
            for connection in opened:
                pool.release(connection)

    def record(self, task_id: str) -> Record:
        """The task's record, read after this call began."""
        record = self._records.get(task_id)
        self.owners.note(task_id, record)
        return record

    def may_watch(self, task_id: str, identity: str, or_shared: bool = True) -> bool:
        """Whether the task exists (or did) and `identity` may see it; read
        only when its owner is not known yet."""
        known = self.owners.get(task_id)
        if known is None:
            record = self.record(task_id)
            if record.snapshot is None:
                return False
            known = (str(record.owner), record.shared)
        return may_watch(*known, identity, or_shared)

    def visible(self, task_id: str, identity: str, or_shared: bool = True) -> dict[str, Any] | None:
        """The task's snapshot, read after this call began, if `identity` may see it."""
        record = self.record(task_id)
        if record.snapshot is None or not may_watch(
            record.owner, record.shared, identity, or_shared
        ):
            return None
        return record.snapshot

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's tasks, newest first, read after this call began."""
        return self._lists.get(owner)


def _own_client(shared: redis.Redis, size: int) -> redis.Redis:
    """A client of its own, of `size` connections, set up as `shared`'s are."""
    pool = shared.connection_pool
    own = redis.BlockingConnectionPool(
        connection_class=pool.connection_class,
        max_connections=size,
        timeout=getattr(pool, "timeout", 5),
        **pool.connection_kwargs,
    )
    return redis.Redis(connection_pool=own)
