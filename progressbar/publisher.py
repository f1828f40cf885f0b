"""Store a snapshot in Redis, then push it to the task's room through the queue."""

from __future__ import annotations

import os
from typing import Any, Protocol

import socketio
from flask import Flask
from flask_socketio import SocketIO

from .message_queue import ResilientRedisManager, resync
from .state import state
from .store import TERMINAL_STATES, Store

NAMESPACE = "/progress"


class Emitter(Protocol):
    def emit(self, event: str, data: Any, *, namespace: str, to: str) -> Any: ...


class Publisher:
    """The reporter's `publish`: the snapshot lands in Redis before anyone hears of it.

    With `publish_from_store` (a worker's), the store's script publishes the
    push itself, in the same round trip as the write.
    """

    def __init__(self, store: Store, emitter: Emitter, publish_from_store: bool = False) -> None:
        self.store = store
        self.emitter = emitter
        self.publish_from_store = publish_from_store

    def __call__(self, task_id: str, snapshot: dict[str, Any]) -> dict[str, Any] | None:
        stored = self.store.write(task_id, snapshot, publish=self.publish_from_store)
        if stored is None:
            return None
        seq, cancel = stored
        snapshot = {**snapshot, "seq": seq}
        if cancel and snapshot["state"] not in TERMINAL_STATES:
            snapshot["cancel_requested"] = True
        if not self.publish_from_store:
            self.emit(snapshot)
        return snapshot

    def emit(self, snapshot: dict[str, Any]) -> None:
        """Push a stored snapshot to every connection subscribed to its task."""
        self.emitter.emit("progress", snapshot, namespace=NAMESPACE, to=snapshot["task_id"])

    def heartbeat(self, task_id: str) -> bool:
        """Proof of life for a running task; True if its owner asked to cancel."""
        return task_id in self.store.heartbeat(task_id)

    def warm_up(self) -> None:
        """Open the connections now rather than on the first push."""
        self.store.warm_up()
        if not self.publish_from_store:  # else the store's script publishes
            self.emitter.emit("warm-up", None, namespace=NAMESPACE, to="warm-up")


def queue_manager(app: Flask, write_only: bool) -> socketio.RedisManager:
    """The Socket.IO message queue on Redis, with a pool sized like our own.

    A web process's listener reconnects fast and then resyncs its rooms.
    """
    settings = state(app).settings
    options: dict[str, Any] = {
        "channel": settings.socketio_channel,
        "write_only": write_only,
        "redis_options": {"max_connections": settings.redis_max_connections},
    }
    if write_only:
        return socketio.RedisManager(settings.redis_url, **options)
    store: Store = state(app).store
    manager = ResilientRedisManager(settings.redis_url, **options)
    manager.on_reconnect = lambda: resync(manager, NAMESPACE, store.get)
    return manager


def external_publisher(app: Flask) -> Publisher:
    """The publisher of a process that serves no clients (a Celery worker).

    Made once per process, after any fork, so no connection is shared.
    """
    key = f"progressbar.publisher.{os.getpid()}"
    publisher = app.extensions.get(key)
    if publisher is None:
        queue = queue_manager(app, write_only=True)
        emitter = SocketIO(
            message_queue=state(app).settings.redis_url,
            client_manager=queue,
            async_mode="threading",
        )
        publisher = app.extensions[key] = Publisher(
            state(app).store, emitter, publish_from_store=True
        )
    return publisher
