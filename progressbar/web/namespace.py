"""The Socket.IO /progress namespace: one handler per event; each checks the
payload, acts for the caller's identity and answers through the event's ack.

Who the caller is (identity and address) is settled once, when the
connection connects: the app's identity loader runs there, in the request
context Flask-SocketIO makes of the handshake, and a connection it knows
nobody for is refused. Events then run with the app's context only: building
a Flask request context for each (a Request, a URL adapter, the URL matched,
the session swapped) cost more than most events' own work.

Pushes do not start here: the store's scripts publish every change of a task,
and Socket.IO delivers it to the task's room (the task id), which `start` and
`subscribe` join.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, Namespace

from .. import service
from ..errors import ProtocolError, protocol_error
from ..service import checked_payload, task_id_of
from ..snapshot import TERMINAL_STATES
from . import watchdog
from .address import client_address
from .identity import current_identity
from .payloads import RESERVED_MARK, UNREADABLE, UNREADABLE_MESSAGE

log = logging.getLogger(__name__)

Answer = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Caller:
    """A connection of the namespace, as its `connect` found it."""

    sid: str
    identity: str
    address: str
    app: Flask


Handler = Callable[[Any, Caller, Any], Answer]


def answered(handler: Handler) -> Callable[..., Answer]:
    """An event handler, called with the connection's `Caller` and the
    payload, in the app's context; its return or error becomes the event's
    acknowledgement."""

    @functools.wraps(handler)
    def wrapper(self: ProgressNamespace, sid: str, *args: Any) -> Answer:
        caller = self.callers.get(sid)
        if caller is None:
            # Gone meanwhile: nobody is there to read the answer.
            return ProtocolError("unauthorized", "not connected").answer()
        with caller.app.app_context():
            try:
                if len(args) > 1:
                    raise ProtocolError("invalid", "send one payload object")
                return {"ok": True, **handler(self, caller, args[0] if args else None)}
            except Exception as exc:
                return protocol_error(exc, log, handler.__name__).answer()

    wrapper.answers_event = True  # type: ignore[attr-defined]
    return wrapper


# Events handled at once, at most; the others wait their turn, in order.
HANDLED_AT_ONCE = 16


class ProgressNamespace(Namespace):
    """Start and follow tasks; every event is answered through its ack."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        # The connections of this namespace in this process, by sid.
        self.callers: dict[str, Caller] = {}
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
        if event in ("connect", "disconnect") and self._from_server(event, *args):
            # Flask-SocketIO's way, in a request context of the handshake.
            with self._turn():
                return super().trigger_event(event, *args)
        handler = getattr(self, f"on_{event}", None)
        if getattr(handler, "answers_event", False):
            with self._turn():
                return handler(*args)  # type: ignore[misc]
        name = event.removeprefix(RESERVED_MARK)
        return ProtocolError("invalid", f"unknown event {name[:40]!r}").answer()

    def _from_server(self, event: str, sid: Any = None, *_args: Any) -> bool:
        """Whether a connect or disconnect is the server's, not an event a
        client named so (which the packet class marks, but an app's own
        server may read packets otherwise)."""
        if event == "connect":
            return sid not in self.callers
        leaving = getattr(self.socketio.server.manager, "pending_disconnect", {})
        return sid in leaving.get(self.namespace, ())

    def _turn(self) -> threading.Semaphore:
        if self._handling is None:
            self._handling = threading.Semaphore(HANDLED_AT_ONCE)
        return self._handling

    def on_connect(self, auth: Any = None) -> None:
        try:
            identity = current_identity()
        except ProtocolError as exc:
            # The app's identity loader knows nobody: refused, with the reason.
            raise ConnectionRefusedError(exc.message, exc.answer()["error"]) from None
        # Under a server that did not start the watchdog, the first request does.
        watchdog.start_current()
        sid: str = request.sid  # type: ignore[attr-defined]
        if not self._still_open(sid):
            # Gone while the loader ran: python-socketio would not call
            # on_disconnect for it, and its caller would stay forever.
            raise ConnectionRefusedError("gone")
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        self.callers[sid] = Caller(sid, identity, client_address(), app)

    def _still_open(self, sid: str) -> bool:
        server = self.socketio.server
        eio_sid = server.manager.eio_sid_from_sid(sid, self.namespace)
        eio_socket = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        return eio_socket is not None and not eio_socket.closed

    def on_disconnect(self, reason: Any = None) -> None:
        self.callers.pop(request.sid, None)  # type: ignore[attr-defined]

    def _join(self, caller: Caller, room: str) -> None:
        self.socketio.server.enter_room(caller.sid, room, namespace=self.namespace)

    def _leave(self, caller: Caller, room: str) -> None:
        self.socketio.server.leave_room(caller.sid, room, namespace=self.namespace)

    @answered
    def on_start(self, caller: Caller, payload: Any) -> Answer:
        """{kind, params} -> {task}: queued, and this connection watches it."""
        snapshot = service.start_task(
            payload,
            caller.identity,
            functools.partial(self._join, caller),
            functools.partial(self._leave, caller),
            address=caller.address,
        )
        # What a watcher joining next is answered with, until the first push.
        started = getattr(self.socketio.server.manager, "started", None)
        if started is not None:
            started(snapshot)
        return {"task": snapshot}

    @answered
    def on_subscribe(self, caller: Caller, payload: Any) -> Answer:
        """{task_id} -> {task}: its current state; its pushes follow."""
        task_id = task_id_of(payload)
        # Ownership first: joining even for a moment would leak a push.
        service.check_watcher(task_id, caller.identity)
        manager = self.socketio.server.manager
        if task_id in getattr(manager, "ended", ()):
            # Seen ending here: an end never changes, and nothing follows it.
            return {"task": service.get_task(task_id, caller.identity)}
        self._join(caller, task_id)
        # The latest push of the task this process heard, if its room was
        # heard here already (a start, another watcher): no read of the store.
        latest = getattr(manager, "latest", None)
        snapshot = latest(task_id) if latest is not None else None
        if snapshot is None:
            # Read after joining, so nothing falls between the read and the join.
            try:
                snapshot = service.get_task(task_id, caller.identity)
            except Exception:
                # Gone meanwhile (Redis came back without it: not found), or
                # Redis unreachable: not watched, and nothing left joined.
                self._leave(caller, task_id)
                raise
        note_state = getattr(manager, "note_state", None)
        if note_state is not None:
            note_state(task_id, snapshot.get("state"))
        if snapshot.get("state") in TERMINAL_STATES:
            # Nothing is pushed after an end: not kept in the room (as the
            # watchers of an end pushed are let go), nothing to unsubscribe.
            self._leave(caller, task_id)
        return {"task": snapshot}

    @answered
    def on_unsubscribe(self, caller: Caller, payload: Any) -> Answer:
        """{task_id} -> {}: no more pushes of it on this connection (an
        ended task's watchers were let go already)."""
        task_id = task_id_of(payload)
        service.check_watcher(task_id, caller.identity)
        self._leave(caller, task_id)
        return {}

    @answered
    def on_cancel(self, caller: Caller, payload: Any) -> Answer:
        """{task_id} -> {task, outcome, message}."""
        return service.cancel_task(task_id_of(payload), caller.identity)

    @answered
    def on_list(self, caller: Caller, payload: Any) -> Answer:
        """{} -> {tasks}: this identity's tasks, newest first."""
        checked_payload(payload, set())
        return {"tasks": service.list_tasks(caller.identity)}
