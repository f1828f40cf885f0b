"""Who may add work: rate limits per client address (starts, new identities)
on the `limits` library's moving windows in Redis, and a guard on Redis's
memory. The caps on unfinished tasks live with the records (the store's
`create` script), where they are checked and taken in one step.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError, ResponseError

from .errors import ProtocolError
from .settings import Settings

log = logging.getLogger(__name__)

# Seconds a reading of Redis's memory is reused: one INFO a second per process.
MEMORY_READ_EVERY = 1.0
# Without MAX_REDIS_MEMORY, starts stop at this share of Redis's maxmemory,
# leaving room for the records of tasks already running to end.
MAXMEMORY_SHARE = 0.9


def _items(notation: str | None) -> list[RateLimitItem]:
    return parse_many(notation) if notation else []


def _per(item: RateLimitItem) -> str:
    seconds = item.get_expiry()
    return f"{item.amount} per {seconds} s" if seconds != 60 else f"{item.amount} a minute"


class Admission:
    """The rate limits of one app, kept in its Redis under `{prefix}:limits`."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        prefix: str = "progressbar",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool, key_prefix=f"{prefix}:limits"
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._redis = client
        self._starts = _items(settings.start_rate_limit)
        self._identities = _items(settings.new_identity_rate_limit)
        self._max_memory = settings.max_redis_memory
        self._clock = clock
        self._memory_lock = threading.Lock()
        self._memory_read_at = -math.inf
        self._memory_full = False

    def start(self, address: str, cost: int) -> None:
        """Take `cost` starts (a group's parts) from the address's allowance;
        ProtocolError('limit') if that would pass START_RATE_LIMIT."""
        if not address:
            return
        for item in self._starts:
            if cost > item.amount:
                raise ProtocolError(
                    "limit",
                    f"this would start {cost} tasks; one address may start {_per(item)}",
                )
        self._take(self._starts, "starts", address, cost, "tasks started from your address")

    def new_identity(self, address: str) -> None:
        """Count a new identity handed to `address`; ProtocolError('limit') if
        that would pass NEW_IDENTITY_RATE_LIMIT."""
        if not address:
            return
        try:
            self._take(
                self._identities,
                "identities",
                address,
                1,
                "new identities for your address (keep the cookie you were given)",
            )
        except RedisError:
            # An identity alone costs nothing, and every use of it needs
            # Redis: without Redis it is handed out uncounted.
            log.warning("new identity not counted: Redis unreachable")

    def _take(
        self, items: list[RateLimitItem], name: str, address: str, cost: int, what: str
    ) -> None:
        # With several windows, each is tested first, then taken: a refusal by
        # one takes nothing from the others. One window is tested by its `hit`.
        for item in items if len(items) > 1 else ():
            if not self._limiter.test(item, name, address, cost=cost):
                raise self._refusal(item, name, address, what)
        for item in items:
            if not self._limiter.hit(item, name, address, cost=cost):
                raise self._refusal(item, name, address, what)

    def _refusal(self, item: RateLimitItem, name: str, address: str, what: str) -> ProtocolError:
        reset, _ = self._limiter.get_window_stats(item, name, address)
        wait = max(1.0, math.ceil(reset - time.time()))
        return ProtocolError(
            "limit", f"too many {what}: {_per(item)}; try again in {wait:.0f} s", wait
        )

    def memory_limit(self, maxmemory: int) -> float:
        """Bytes of Redis memory past which starts answer `busy` (0: none):
        MAX_REDIS_MEMORY, or MAXMEMORY_SHARE of Redis's own `maxmemory`."""
        return self._max_memory or MAXMEMORY_SHARE * maxmemory

    def check_memory(self) -> None:
        """ProtocolError('busy') while Redis uses more memory than new work may
        take: MAX_REDIS_MEMORY, or 90% of Redis's own maxmemory."""
        now = self._clock()
        with self._memory_lock:
            stale = now - self._memory_read_at >= MEMORY_READ_EVERY
            if stale:
                self._memory_read_at = now
        if stale:
            try:
                info = self._redis.info("memory")
            except ResponseError:
                # INFO refused (a Redis ACL): memory unknown, no guard.
                info = {}
            used = int(info.get("used_memory", 0))
            limit = self.memory_limit(int(info.get("maxmemory", 0)))
            self._memory_full = bool(limit) and used > limit
        if self._memory_full:
            raise ProtocolError(
                "busy", "the task service is out of room right now; try again in a minute", 60
            )
