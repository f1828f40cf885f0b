"""The web process's end of the Socket.IO message queue on Redis, made to
recover fast.

Every push arrives here from the store's scripts (`messages`), on the shared
channel. python-socketio's listener retries a lost Redis with a backoff growing
to 60 s, and whatever was published meanwhile is gone (pub/sub delivers at most
once). Here the retry is capped at one second, and after every reconnect the
store re-publishes the snapshot of each task this process has watchers of, so
every open bar shows the truth again within about a second of Redis returning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import socketio
from flask_socketio import SocketIO

from ..messages import NAMESPACE
from ..settings import Settings
from ..store import Store

log = logging.getLogger(__name__)

MAX_RETRY_SLEEP = 1.0


class ResilientRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """A RedisManager whose listener reconnects within a second and then calls
    `on_reconnect` (in a background task)."""

    def __init__(
        self, *args: Any, on_reconnect: Callable[[], object] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_reconnect = on_reconnect

    # Replaces python-socketio's own loop (pinned version 5.x) for its backoff.
    def _redis_listen_with_retries(self) -> Iterator[Any]:  # pragma: no cover - live tests
        retry_sleep = 0.1
        failed = False
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                if failed:
                    log.warning("message queue: resubscribed to Redis")
                    if self.on_reconnect is not None:
                        self.server.start_background_task(self.on_reconnect)
                failed = False
                retry_sleep = 0.1
                yield from self.pubsub.listen()
            except Exception as exc:
                if not failed:
                    log.error("message queue: lost Redis (%s); retrying", exc)
                failed = True
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, MAX_RETRY_SLEEP)

    def local_rooms(self, namespace: str) -> list[str]:
        """The rooms with members connected to this process, sid rooms aside."""
        rooms = self.rooms.get(namespace, {})
        return [
            room
            for room, members in list(rooms.items())
            if room is not None and members and room not in members
        ]


def resync(manager: ResilientRedisManager, store: Store) -> int:
    """Have the store push again every task watched here; how many it pushed."""
    try:
        pushed = store.republish(manager.local_rooms(NAMESPACE))
    except Exception:
        log.warning("resync: Redis unreachable again", exc_info=True)
        return 0
    log.warning("message queue: resynced %d task rooms", pushed)
    return pushed


def queue_manager(settings: Settings, store: Store) -> ResilientRedisManager:
    """The Socket.IO message queue on Redis, with a pool sized like the store's."""
    manager = ResilientRedisManager(
        settings.redis_url,
        channel=settings.socketio_channel,
        redis_options={"max_connections": settings.redis_max_connections},
    )
    manager.on_reconnect = lambda: resync(manager, store)
    return manager


def hosted_channel(host_socketio: SocketIO, redis_url: str) -> str:
    """The pub/sub channel of an app's own Socket.IO server, which must carry
    the store's pushes: refused at start-up when it cannot."""
    server = getattr(host_socketio, "server", None)
    if server is None:
        raise RuntimeError("bind your SocketIO to the app (socketio.init_app) before progressbar")
    manager = server.manager
    if not isinstance(manager, socketio.RedisManager):
        raise RuntimeError(
            "progressbar pushes through Redis: give your SocketIO "
            f"message_queue={redis_url!r} (it has no Redis message queue)"
        )
    if manager.redis_url != redis_url:
        raise RuntimeError(
            f"your SocketIO's message queue ({manager.redis_url}) is not progressbar's "
            f"Redis ({redis_url}): pushes would never reach its clients"
        )
    return str(manager.channel)
