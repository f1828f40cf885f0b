"""The web process's end of the Socket.IO message queue on Redis: it hears
only the pushes of the rooms it hosts, and recovers fast.

Every push arrives here from the store's scripts (`messages`), on its task's
own channel, which this process listens to while it has watchers of the task
(`task_channels`); the shared channel carries the rest (emits of the host's
own, other processes' room and callback messages). A store push is sent to
its room's connections here as it came, its snapshot's JSON undecoded; one
that still comes on the shared channel (from a publisher that does not use
task channels) for a room not hosted here is dropped, read no further than
its room.

python-socketio's listener retries a lost Redis with a backoff growing to
60 s, and whatever was published meanwhile is gone (pub/sub delivers at most
once). Here the retry is capped at one second, and after every reconnect,
once Redis has confirmed the subscriptions, the store re-publishes the
snapshot of each task this process has watchers of, so every open bar shows
the truth again within about a second of Redis returning. A watched task
whose record Redis came back without is pushed `lost` (unless this process
saw it end: an ended task stays as it ended).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import socketio
from engineio import packet as eio_packet
from flask_socketio import SocketIO
from socketio import packet as sio_packet

from ..messages import EVENT, NAMESPACE, push_parts
from ..settings import Settings
from ..settings import redis_url as normal_redis_url
from ..snapshot import TERMINAL_STATES
from ..store import Store
from ..strict_json import dumps, loads
from .direct_writes import Writer
from .task_channels import TaskChannels

log = logging.getLogger(__name__)

MAX_RETRY_SLEEP = 1.0
# Seconds a join waits for Redis to confirm this process hears the room.
JOIN_WAIT = 2.0
# Ended tasks remembered beyond this many are pruned to the rooms still watched.
MAX_ENDED = 10_000
# A push's Socket.IO packet is this, its snapshot's JSON as it came, and "]".
_EVENT_HEAD = sio_packet.Packet(sio_packet.EVENT, [EVENT, 0], NAMESPACE).encode()[:-2]
# Texts a snapshot holds if its state may be terminal, or if it is an old
# record with bare NaN or Infinity, which only a full decode makes null.
_TERMINAL = tuple(f'"{state}"'.encode() for state in TERMINAL_STATES)
_NOT_FINITE = (b"NaN", b"Infinity")


class ResilientRedisManager(socketio.RedisManager):  # type: ignore[misc]
    """A RedisManager that listens to the task channels of the rooms it hosts,
    and whose listener reconnects within a second and then calls
    `on_reconnect` (in a background task)."""

    def __init__(
        self, *args: Any, on_reconnect: Callable[[], object] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_reconnect = on_reconnect
        # Watched tasks this process saw end (a push, or a subscribe's answer).
        self.ended: set[str] = set()
        self.task_channels = TaskChannels(self.channel, threading.Event)
        self._listener: int | None = None
        self._resync_due = False
        # Held while a room is joined or left. Green threads never switch
        # inside those steps; real threads (`flask run`) may, and a join could
        # then land in a room just emptied and dropped (an end let go).
        self._rooms_lock: Any = contextlib.nullcontext()

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        # Events of the server's async mode, which green threads can wait on.
        self.task_channels = TaskChannels(self.channel, server.eio.create_event)
        if server.eio.async_mode == "threading":
            self._rooms_lock = threading.RLock()

    @staticmethod
    def _task_room(sid: str, namespace: str, room: Any) -> bool:
        return namespace == NAMESPACE and isinstance(room, str) and room != sid

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        with self._rooms_lock:
            super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
            if self._task_room(sid, namespace, room) and room not in self.task_channels.rooms:
                self.task_channels.add(room)

    def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        # The listener itself never waits: it is what reads the confirmation.
        if self._task_room(sid, namespace, room) and threading.get_ident() != self._listener:
            if not self.task_channels.wait(room, JOIN_WAIT):
                log.warning("message queue: joined %s before Redis confirmed it", room[:64])

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        with self._rooms_lock:
            super().basic_leave_room(sid, namespace, room)
            if (
                room in self.task_channels.rooms
                and namespace == NAMESPACE
                and room not in self.rooms.get(namespace, {})
            ):
                self.task_channels.remove(room)

    def note_state(self, task_id: str, state: Any) -> bool:
        """Remember that `task_id` has ended, if `state` is terminal; whether it is."""
        if state not in TERMINAL_STATES:
            return False
        if len(self.ended) >= MAX_ENDED:
            self.ended &= set(self.local_rooms(NAMESPACE))
        self.ended.add(task_id)
        return True

    def let_go(self, room: str) -> None:
        """A task's end was delivered to its room: let its watchers here go
        (the last one out stops this process hearing the task)."""
        with self._rooms_lock:
            let_go(self, room)

    def latest(self, task_id: str) -> dict[str, Any] | None:
        """The snapshot of the latest push of a task whose room is heard here, if any."""
        text = self.task_channels.latest(task_id)
        return loads(text) if text is not None else None

    def started(self, snapshot: dict[str, Any]) -> None:
        """A task was started here, its starter in its room: its first snapshot.
        Not kept if the task has ended meanwhile: its end was pushed, and a
        watcher joining the room again must not be answered "queued"."""
        if snapshot["task_id"] not in self.ended:
            self.task_channels.started(snapshot["task_id"], dumps(snapshot))

    def _handle_emit(self, message: dict[str, Any]) -> None:
        room = ended_room(message)
        if room is not None:
            self.note_state(room, message["data"][0]["state"])
        super()._handle_emit(message)
        if room is not None:
            self.let_go(room)

    # Replaces python-socketio's own loop (pinned version 5.x) for its backoff,
    # on a connection of its own: `_publish` may replace `self.pubsub`.
    def _redis_listen_with_retries(self) -> Iterator[Any]:  # pragma: no cover - live tests
        retry_sleep = 0.1
        failed = False
        self._listener = threading.get_ident()
        while True:
            try:
                self._redis_connect()
                # Subscribe confirmations kept: joins wait for theirs.
                pubsub = self.redis.pubsub()
                self._resync_due = failed and self.on_reconnect is not None
                self.task_channels.connected(pubsub)
                if failed:
                    log.warning("message queue: resubscribed to Redis")
                failed = False
                retry_sleep = 0.1
                yield from pubsub.listen()
            except Exception as exc:
                self.task_channels.lost()
                if not failed:
                    log.error("message queue: lost Redis (%s); retrying", exc)
                failed = True
                time.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, MAX_RETRY_SLEEP)

    def _listen(self) -> Iterator[bytes]:  # pragma: no cover - live tests
        for message in self._redis_listen_with_retries():
            kind, channel = message["type"], message["channel"]
            if kind == "subscribe":
                # Every room heard here is subscribed again: push them anew.
                if self.task_channels.confirmed(channel) and self._resync_due:
                    self._resync_due = False
                    self.server.start_background_task(self.on_reconnect)
            elif kind == "message":
                data = message["data"]
                parts = push_parts(data)
                if parts is None:
                    yield data  # anything but a store push: python-socketio's way
                elif parts[1] in self.task_channels.rooms and not self._deliver(*parts):
                    self.task_channels.unheard(parts[1])
                    yield data
                # else: a push for a room not hosted here (on the shared channel)

    def _deliver(self, snapshot: bytes, room: str) -> bool:
        """Send a store push to its room's connections here, its snapshot's
        JSON as it came (strict already: the store writes no other): no decode,
        no encode. False if it needs python-socketio's full path."""
        if any(constant in snapshot for constant in _NOT_FINITE):
            return False
        ended = False
        try:
            if any(state in snapshot for state in _TERMINAL):
                ended = self.note_state(room, loads(snapshot).get("state"))
            text = snapshot.decode()
        except (ValueError, AttributeError):
            return False
        # Kept before it is sent: a watcher joining meanwhile is answered
        # with it, if not sent it too.
        self.task_channels.heard(room, text)
        packet = eio_packet.Packet(eio_packet.MESSAGE, _EVENT_HEAD + text + "]")
        eio = self.server.eio
        # Straight to each websocket's writer, where Engine.IO's send would
        # only look the socket up again, check its last ping and log; any
        # other connection (polling, upgrading, closing, silent past the
        # ping timeout), and every one while Engine.IO logs, its own way.
        sockets = {} if eio.logger.isEnabledFor(logging.INFO) else eio.sockets
        answered_since = time.time() - eio.ping_timeout
        for eio_sid in list(self.rooms.get(NAMESPACE, {}).get(room, {}).values()):
            socket = sockets.get(eio_sid)
            if (
                socket is not None
                and type(socket.queue) is Writer
                and not socket.closed
                and (not socket.last_ping or socket.last_ping >= answered_since)
            ):
                socket.queue.put(packet)
            else:
                self.server._send_eio_packet(eio_sid, packet)
        if ended:
            self.let_go(room)
        return True

    def local_rooms(self, namespace: str) -> list[str]:
        """The rooms with members connected to this process, sid rooms aside."""
        rooms = self.rooms.get(namespace, {})
        return [
            room
            for room, members in list(rooms.items())
            if room is not None and members and room not in members
        ]


def ended_room(message: Any) -> str | None:
    """The room of `message` (an emit on the message queue), if it is a push
    of a task that has ended."""
    if not isinstance(message, dict):
        return None
    data, room = message.get("data"), message.get("room")
    if (
        message.get("event") == EVENT
        and message.get("namespace") == NAMESPACE
        and isinstance(room, str)
        and isinstance(data, list)
        and data
        and isinstance(data[0], dict)
        and data[0].get("state") in TERMINAL_STATES
    ):
        return room
    return None


def let_go(manager: socketio.BaseManager, room: str) -> None:
    """Every watcher of a task's room on this process leaves it, once the
    task's end was sent to them: nothing is pushed after an end, so they
    need not unsubscribe (an `unsubscribe` is still answered)."""
    members = manager.rooms.get(NAMESPACE, {}).get(room)
    for sid in list(members or ()):
        if sid != room:
            manager.basic_leave_room(sid, NAMESPACE, room)


def let_go_after_ends(manager: socketio.RedisManager) -> None:
    """Have an app's own message queue let the watchers of a task go once
    its end is delivered, as the extension's own does."""
    if isinstance(manager, ResilientRedisManager) or hasattr(manager, "_progressbar_lets_go"):
        return
    handle_emit = manager._handle_emit

    def _handle_emit(message: dict[str, Any]) -> None:
        handle_emit(message)
        room = ended_room(message)
        if room is not None:
            let_go(manager, room)

    manager._handle_emit = _handle_emit
    manager._progressbar_lets_go = True


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
