"""What every front door (the Socket.IO events, the HTTP API, the CLI) does:
check a payload, then start, cancel or read a task on behalf of its owner."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from . import logs
from .errors import ProtocolError, not_found
from .messages import SENT_BY_START
from .snapshot import CANCELLED_BEFORE_START, queued_snapshot
from .state import state
from .store import LimitReached, Store

log = logging.getLogger(__name__)

MAX_TASK_ID = 64

CANCEL_MESSAGES = {
    "cancelled": f"{CANCELLED_BEFORE_START}.",
    "requested": (
        "Cancel requested: the task stops at its next progress report, or is "
        "terminated on its worker if it has not stopped {grace:g} s from now."
    ),
    "finished": "The task had already finished; nothing changed.",
}


def store() -> Store:
    return state().store


def checked_payload(payload: Any, allowed: set[str]) -> dict[str, Any]:
    """The payload as a dict with no field outside `allowed`."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ProtocolError("invalid", "payload must be an object")
    for name in payload:
        if name not in allowed:
            raise ProtocolError("invalid", f"unknown field {str(name)[:40]!r}")
    return payload


def checked_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID:
        raise ProtocolError("invalid", "task_id must be a non-empty string")
    return task_id


def new_id() -> str:
    """A random id, 144 bits in URL-safe base64, that never begins with `-`
    (a command line would take it for an option)."""
    while True:
        new = secrets.token_urlsafe(18)
        if not new.startswith("-"):
            return new


def task_id_of(payload: Any) -> str:
    return checked_task_id(checked_payload(payload, {"task_id"}).get("task_id"))


@dataclass(frozen=True)
class Message:
    """One Celery task to send: its name, arguments, and the kind its bar shows."""

    task: str
    kwargs: dict[str, Any]
    args: tuple[Any, ...] = ()
    kind: str = ""


def start_task(
    payload: Any,
    owner: str,
    subscribe: Callable[[str], None] | None = None,
    unsubscribe: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Validate a client's `start` payload, then `launch` its kind."""
    payload = checked_payload(payload, {"kind", "params"})
    kinds = state().kinds
    kind, params = kinds.resolve(payload.get("kind"), payload.get("params"))
    part_params = kinds.parts(kind, params)
    if part_params:
        part_kind = kinds[str(kind.parts_of)]
        parts = [Message(part_kind.task_name, p, kind=part_kind.name) for p in part_params]
        return launch(
            owner, kind.name, parts, group=True, subscribe=subscribe, unsubscribe=unsubscribe
        )
    message = Message(kind.task_name, params, kind=kind.name)
    return launch(owner, kind.name, [message], subscribe=subscribe, unsubscribe=unsubscribe)


def launch(
    owner: str,
    kind: str,
    messages: list[Message],
    *,
    group: bool = False,
    shared: bool = False,
    subscribe: Callable[[str], None] | None = None,
    unsubscribe: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Record a task (or a group of `messages`, one bar) as queued for
    `owner`, then send it; the queued SNAPSHOT.

    `subscribe` runs before anything is sent, so no push can be missed; on
    failure nothing is left behind.
    """
    if current_app.extensions.get("celery") is not state().celery:
        # The app's Celery app was replaced after init_app: its workers would
        # run tracked tasks without a reporter, and the bar would never move.
        raise RuntimeError(
            "app.extensions['celery'] is not the Celery app progressbar was set up "
            "with: create your Celery app before init_app, or pass it as init_app(app, celery=...)"
        )
    task_id = new_id()
    queued = queued_snapshot(task_id, kind, time.time())
    ids = [new_id() for _ in messages] if group else [task_id]
    try:
        if group:
            parts = {part_id: m.kind for part_id, m in zip(ids, messages, strict=True)}
            snapshot = store().create_group(task_id, owner, queued, parts, shared)
        else:
            snapshot = store().create(task_id, owner, queued, shared)
    except LimitReached:
        limit = state().settings.max_active_tasks
        raise ProtocolError(
            "limit", f"you already have {limit} unfinished tasks; wait or cancel one"
        ) from None
    if subscribe:
        subscribe(task_id)
    try:
        for message_id, m in zip(ids, messages, strict=True):
            state().celery.send_task(
                m.task,
                args=m.args,
                kwargs=m.kwargs,
                task_id=message_id,
                headers={SENT_BY_START: 1},
            )
    except Exception:
        if unsubscribe:
            unsubscribe(task_id)
        # Parts already sent find no record and are not run.
        store().discard(task_id, owner, *(ids if group else []))
        raise
    try:
        store().sent(*ids)
    except RedisError:
        # The broker has the messages: a worker's claim clears the mark too.
        log.warning("could not mark sent", exc_info=True, extra=logs.task_extra(task_id))
    return snapshot


def cancel_task(task_id: str, owner: str) -> dict[str, Any]:
    """Cancel the owner's task: the answer's `task`, `outcome` and `message`.
    Whatever it changes reaches every open bar of the task as a push. Only
    its owner may cancel a shared task."""
    if store().get_owned(checked_task_id(task_id), owner) is None:
        raise not_found()
    outcome = store().cancel(task_id)
    if outcome is None:
        raise not_found()
    result, snapshot = outcome
    message = CANCEL_MESSAGES[result].format(grace=state().settings.cancel_grace)
    return {"task": snapshot, "outcome": result, "message": message}


def get_task(task_id: str, identity: str) -> dict[str, Any]:
    """The SNAPSHOT of a task `identity` may watch: its own, or a shared one.
    Another identity's task is not found, as a missing one."""
    snapshot = store().get_owned(checked_task_id(task_id), identity, or_shared=True)
    if snapshot is None:
        raise not_found()
    return snapshot
