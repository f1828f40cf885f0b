"""Store a snapshot in Redis, then push it to the task's room through the queue."""

from __future__ import annotations

import os
from typing import Any, Protocol

import socketio
from flask import Flask
from flask_socketio import SocketIO

from .store import Store

NAMESPACE = "/progress"


class Emitter(Protocol):
    def emit(self, event: str, data: Any, *, namespace: str, to: str) -> Any: ...


class Publisher:
    """The reporter's `publish`: the snapshot lands in Redis before anyone hears of it."""

    def __init__(self, store: Store, emitter: Emitter) -> None:
        self.store = store
        self.emitter = emitter

    def __call__(self, task_id: str, snapshot: dict[str, Any]) -> dict[str, Any] | None:
        seq = self.store.write(task_id, snapshot)
        if seq is None:
            return None
        snapshot = {**snapshot, "seq": seq}
        self.emitter.emit("progress", snapshot, namespace=NAMESPACE, to=task_id)
        return snapshot

    def warm_up(self) -> None:
        """Open the connections now rather than on the first push."""
        self.store.warm_up()
        self.emitter.emit("warm-up", None, namespace=NAMESPACE, to="warm-up")


def queue_manager(app: Flask, write_only: bool) -> socketio.RedisManager:
    """The Socket.IO message queue on Redis, with a pool sized like our own."""
    return socketio.RedisManager(
        app.config["REDIS_URL"],
        channel=app.config["SOCKETIO_CHANNEL"],
        write_only=write_only,
        redis_options={"max_connections": app.config["REDIS_MAX_CONNECTIONS"]},
    )


def external_publisher(app: Flask) -> Publisher:
    """The publisher of a process that serves no clients (a Celery worker).

    Made once per process, after any fork, so no connection is shared.
    """
    key = f"progressbar.publisher.{os.getpid()}"
    publisher = app.extensions.get(key)
    if publisher is None:
        emitter = SocketIO(
            message_queue=app.config["REDIS_URL"],
            client_manager=queue_manager(app, write_only=True),
            async_mode="threading",
        )
        publisher = app.extensions[key] = Publisher(app.extensions["progress_store"], emitter)
    return publisher
