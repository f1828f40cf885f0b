"""The Socket.IO /progress namespace: one handler per event; each checks the
payload, acts for the caller's identity and answers through the event's ack.

Pushes do not start here: the store's scripts publish every change of a task,
and Socket.IO delivers it to the task's room (the task id), which `start` and
`subscribe` join.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask_socketio import ConnectionRefusedError, Namespace, join_room, leave_room

from .. import service
from ..errors import ProtocolError, protocol_error
from ..service import checked_payload, task_id_of
from . import watchdog
from .address import client_address
from .identity import current_identity
from .payloads import UNREADABLE, UNREADABLE_MESSAGE

log = logging.getLogger(__name__)

Answer = dict[str, Any]


def answered(handler: Callable[[Any, Any], Answer]) -> Callable[..., Answer]:
    """Turn a handler's return or error into the event's acknowledgement."""

    @functools.wraps(handler)
    def wrapper(self: ProgressNamespace, *args: Any) -> Answer:
        try:
            if len(args) > 1:
                raise ProtocolError("invalid", "send one payload object")
            return {"ok": True, **handler(self, args[0] if args else None)}
        except Exception as exc:
            return protocol_error(exc, log, handler.__name__).answer()

    return wrapper


# Events handled at once, at most; the others wait their turn, in order.
HANDLED_AT_ONCE = 16


class ProgressNamespace(Namespace):
    """Start and follow tasks; every event is answered through its ack."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        # Each event is a green thread (a thread under `flask run`). A burst
        # of them (a thousand pages subscribing at once, tasks ending and
        # starting together) would otherwise all be runnable at once, and a
        # push arriving meanwhile would wait behind every one of them: with a
        # few at a time it waits behind those few. Made at the first event,
        # once the server's green threads (if any) have patched `threading`.
        self._handling: threading.Semaphore | None = None

    def trigger_event(self, event: str, *args: Any) -> Any:
        # An unknown event is answered `invalid` rather than dropped, so a
        # client waiting on its ack is not left hanging; so is a message
        # whose payload could not be read.
        if event == UNREADABLE:
            return ProtocolError("invalid", UNREADABLE_MESSAGE).answer()
        if event in ("connect", "disconnect") or hasattr(self, f"on_{event}"):
            if self._handling is None:
                self._handling = threading.Semaphore(HANDLED_AT_ONCE)
            with self._handling:
                return super().trigger_event(event, *args)
        return ProtocolError("invalid", f"unknown event {event[:40]!r}").answer()

    def on_connect(self, auth: Any = None) -> None:
        try:
            current_identity()
        except ProtocolError as exc:
            # The app's identity loader knows nobody: refused, with the reason.
            raise ConnectionRefusedError(exc.message, exc.answer()["error"]) from None
        # Under a server that did not start the watchdog, the first request does.
        watchdog.start_current()

    @answered
    def on_start(self, payload: Any) -> Answer:
        """{kind, params} -> {task}: queued, and this connection watches it."""
        snapshot = service.start_task(
            payload, current_identity(), join_room, leave_room, address=client_address()
        )
        # What a watcher joining next is answered with, until the first push.
        started = getattr(self.socketio.server.manager, "started", None)
        if started is not None:
            started(snapshot)
        return {"task": snapshot}

    @answered
    def on_subscribe(self, payload: Any) -> Answer:
        """{task_id} -> {task}: its current state; its pushes follow."""
        task_id = task_id_of(payload)
        identity = current_identity()
        # Ownership first: joining even for a moment would leak a push.
        service.check_watcher(task_id, identity)
        join_room(task_id)
        manager = self.socketio.server.manager
        # The latest push of the task this process heard, if its room was
        # heard here already (a start, another watcher): no read of the store.
        latest = getattr(manager, "latest", None)
        snapshot = latest(task_id) if latest is not None else None
        if snapshot is None:
            # Read after joining, so nothing falls between the read and the join.
            try:
                snapshot = service.get_task(task_id, identity)
            except ProtocolError:
                # Gone meanwhile (Redis came back without it): not found, not watched.
                leave_room(task_id)
                raise
        note_state = getattr(manager, "note_state", None)
        if note_state is not None:
            note_state(task_id, snapshot.get("state"))
        return {"task": snapshot}

    @answered
    def on_unsubscribe(self, payload: Any) -> Answer:
        """{task_id} -> {}: no more pushes of it on this connection."""
        task_id = task_id_of(payload)
        service.check_watcher(task_id, current_identity())
        leave_room(task_id)
        return {}

    @answered
    def on_cancel(self, payload: Any) -> Answer:
        """{task_id} -> {task, outcome, message}."""
        return service.cancel_task(task_id_of(payload), current_identity())

    @answered
    def on_list(self, payload: Any) -> Answer:
        """{} -> {tasks}: this identity's tasks, newest first."""
        checked_payload(payload, set())
        return {"tasks": service.list_tasks(current_identity())}
