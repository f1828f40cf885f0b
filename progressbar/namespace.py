"""The Socket.IO /progress namespace: validate, authorize, act, acknowledge."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask_socketio import ConnectionRefusedError, Namespace, join_room, leave_room

from . import service
from .errors import ProtocolError, not_found
from .identity import current_identity
from .publisher import NAMESPACE
from .service import UNAVAILABLE, fields, task_id_of
from .state import state
from .store import Store
from .watchdog import Watchdog

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
        except ProtocolError as exc:
            return exc.answer()
        except UNAVAILABLE:
            log.warning("%s: backend unreachable", handler.__name__, exc_info=True)
            return ProtocolError(
                "unavailable", "the task service is unreachable, try again"
            ).answer()
        except Exception:
            log.exception("%s failed", handler.__name__)
            return ProtocolError("internal", "unexpected server error").answer()

    return wrapper


class ProgressNamespace(Namespace):
    """Start and follow tasks; every event is answered through its ack."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self._watchdog: Watchdog | None = None
        self._watchdog_lock = threading.Lock()

    @property
    def store(self) -> Store:
        return state().store

    def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect") or hasattr(self, f"on_{event}"):
            return super().trigger_event(event, *args)
        return ProtocolError("invalid", f"unknown event {event[:40]!r}").answer()

    def on_connect(self, auth: Any = None) -> None:
        try:
            current_identity()
        except ProtocolError as exc:
            # The app's identity loader knows nobody: refused, with the reason.
            raise ConnectionRefusedError(exc.message, exc.answer()["error"]) from None
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        # Web processes only (the worker builds the app but serves nobody);
        # started with the first connection, once per process.
        with self._watchdog_lock:
            if self._watchdog is not None:
                return
            self._watchdog = Watchdog(
                self.store, self._emit, timeout=state().settings.lost_timeout
            )
        self.socketio.start_background_task(self._watchdog.run, self.socketio.sleep)

    def _emit(self, snapshot: dict[str, Any]) -> None:
        self.socketio.emit("progress", snapshot, namespace=NAMESPACE, to=snapshot["task_id"])

    @answered
    def on_start(self, payload: Any) -> Answer:
        snapshot = service.start_task(payload, current_identity(), join_room, leave_room)
        return {"task": snapshot}

    @answered
    def on_subscribe(self, payload: Any) -> Answer:
        task_id = task_id_of(payload)
        # Ownership first: joining even for a moment would leak a push.
        snapshot = self.store.get_owned(task_id, current_identity())
        if snapshot is None:
            raise not_found()
        join_room(task_id)
        # Read again after joining, so nothing falls between the read and the join.
        return {"task": self.store.get(task_id) or snapshot}

    @answered
    def on_unsubscribe(self, payload: Any) -> Answer:
        task_id = task_id_of(payload)
        if self.store.get_owned(task_id, current_identity()) is None:
            raise not_found()
        leave_room(task_id)
        return {}

    @answered
    def on_cancel(self, payload: Any) -> Answer:
        return service.cancel_task(task_id_of(payload), current_identity(), self._emit)

    @answered
    def on_list(self, payload: Any) -> Answer:
        fields(payload, set())
        return {"tasks": self.store.list(current_identity())}
