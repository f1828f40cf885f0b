"""The web process's end of the Socket.IO message queue on Redis, made to
recover fast.

Every push arrives here from the store's scripts (`messages`), on the shared
channel. python-socketio's listener retries a lost Redis with a backoff growing
to 60 s, and whatever was published meanwhile is gone (pub/sub delivers at most
once). Here the retry is capped at one second, and after every reconnect the
store re-publishes the snapshot of each task this process has watchers of, so
every open bar shows the truth again within about a second of Redis returning.
A watched task whose record Redis came back without is pushed `lost` (unless
this process saw it end: an ended task stays as it ended).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import socketio
from flask_socketio import SocketIO

from ..messages import EVENT, NAMESPACE
from ..settings import Settings
from ..settings import redis_url as normal_redis_url
from ..snapshot import TERMINAL_STATES
from ..store import Store

log = logging.getLogger(__name__)

MAX_RETRY_SLEEP = 1.0
# Ended tasks remembered beyond this many are pruned to the rooms still watched.
MAX_ENDED = 10_000


class ResilientRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """A RedisManager whose listener reconnects within a second and then calls
    `on_reconnect` (in a background task)."""

    def __init__(
        self, *args: Any, on_reconnect: Callable[[], object] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_reconnect = on_reconnect
        # Watched tasks this process saw end (a push, or a subscribe's answer).
        self.ended: set[str] = set()

    def note_state(self, task_id: str, state: Any) -> None:
        """Remember that `task_id` has ended, if `state` is terminal."""
        if state not in TERMINAL_STATES:
            return
        if len(self.ended) >= MAX_ENDED:
            self.ended &= set(self.local_rooms(NAMESPACE))
        self.ended.add(task_id)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if message.get("event") == EVENT and isinstance(data, list) and data:
            pushed = data[0]
            if isinstance(pushed, dict) and isinstance(message.get("room"), str):
                self.note_state(message["room"], pushed.get("state"))
        super()._handle_emit(message)

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
    rooms = manager.local_rooms(NAMESPACE)
    manager.ended &= set(rooms)
    try:
        pushed = store.republish(rooms, unfinished=set(rooms) - manager.ended)
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
    if normal_redis_url(manager.redis_url) != redis_url:
        raise RuntimeError(
            f"your SocketIO's message queue ({manager.redis_url}) is not progressbar's "
            f"Redis ({redis_url}): pushes would never reach its clients"
        )
    return str(manager.channel)
