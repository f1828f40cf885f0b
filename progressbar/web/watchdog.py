"""Runs in each web process: tasks whose heartbeats stopped are ended lost
(the store's script pushes that to their bars)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from .. import logs
from ..store import Store

log = logging.getLogger(__name__)


class Watchdog:
    """Scans the heartbeat deadlines every `interval` seconds.

    Several web processes may run one each: the store's LOSE script ends a
    task only once, so nobody reports it twice. After Redis was unreachable
    (and at start) it waits one `timeout` before judging, so that workers,
    whose heartbeats failed during the outage too, can renew them.
    """

    def __init__(
        self,
        store: Store,
        timeout: float,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.interval = interval
        self.clock = clock
        self.reason = f"Its worker stopped responding (no sign of life for {timeout:g} s)."
        self._quiet_until = clock() + timeout

    def scan(self) -> list[dict[str, Any]]:
        """End every task past its deadline as lost; the snapshots it ended."""
        reported = []
        for task_id in self.store.expired():
            snapshot = self.store.lose(task_id, self.reason, only_if_expired=True)
            if snapshot is not None:
                log.warning("lost: no heartbeat", extra=logs.task_extra(task_id))
                reported.append(snapshot)
        return reported

    def tick(self) -> list[dict[str, Any]]:
        """One look: the snapshots it ended (none while it keeps quiet)."""
        try:
            if self.clock() >= self._quiet_until:
                return self.scan()
            self.store.redis.ping()
        except RedisError:
            log.warning(
                "watchdog: Redis unreachable; judging again %g s after it returns", self.timeout
            )
            self._quiet_until = self.clock() + self.timeout + self.interval
        return []

    def run(self, sleep: Callable[[float], None]) -> None:
        while True:
            sleep(self.interval)
            self.tick()
