"""What every front door (the Socket.IO events, the HTTP API, the CLI) does:
check a payload, then start, cancel or read a task on behalf of its owner."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from .errors import ProtocolError, not_found
from .messages import SENT_BY_START
from .snapshot import CANCELLED_BEFORE_START, queued_snapshot
from .state import state
from .store import LimitReached, Store

MAX_TASK_ID = 64

CANCEL_MESSAGES = {
    "cancelled": f"{CANCELLED_BEFORE_START}.",
    "requested": "Cancel requested: the task stops at its next progress report.",
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


def task_id_of(payload: Any) -> str:
    return checked_task_id(checked_payload(payload, {"task_id"}).get("task_id"))


def start_task(
    payload: Any,
    owner: str,
    subscribe: Callable[[str], None] | None = None,
    unsubscribe: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Validate a `start` payload, record the task as queued and send it.

    `subscribe` runs before the task is sent, so no push can be missed;
    on failure nothing is left behind. Returns the queued SNAPSHOT.
    """
    payload = checked_payload(payload, {"kind", "params"})
    kinds = state().kinds
    kind, params = kinds.resolve(payload.get("kind"), payload.get("params"))
    task_id = secrets.token_urlsafe(18)
    queued = queued_snapshot(task_id, kind.name, time.time())
    part_params = kinds.parts(kind, params)
    parts = {secrets.token_urlsafe(18): str(kind.parts_of) for _ in part_params}
    try:
        if parts:
            snapshot = store().create_group(task_id, owner, queued, parts)
        else:
            snapshot = store().create(task_id, owner, queued)
    except LimitReached:
        limit = state().settings.max_active_tasks
        raise ProtocolError(
            "limit", f"you already have {limit} unfinished tasks; wait or cancel one"
        ) from None
    if subscribe:
        subscribe(task_id)
    if parts:
        part_task = kinds[str(kind.parts_of)].task_name
        messages = [(part_task, p, part_id) for part_id, p in zip(parts, part_params, strict=True)]
    else:
        messages = [(kind.task_name, params, task_id)]
    try:
        for name, kwargs, message_id in messages:
            state().celery.send_task(
                name, kwargs=kwargs, task_id=message_id, headers={SENT_BY_START: 1}
            )
    except Exception:
        if unsubscribe:
            unsubscribe(task_id)
        # Parts already sent find no record and are not run.
        store().discard(task_id, owner, *parts)
        raise
    return snapshot


def cancel_task(task_id: str, owner: str) -> dict[str, Any]:
    """Cancel the owner's task: the answer's `task`, `outcome` and `message`.
    Whatever it changes reaches every open bar of the task as a push."""
    get_task(task_id, owner)
    outcome = store().cancel(task_id)
    if outcome is None:
        raise not_found()
    result, snapshot = outcome
    return {"task": snapshot, "outcome": result, "message": CANCEL_MESSAGES[result]}


def get_task(task_id: str, owner: str) -> dict[str, Any]:
    """The owner's task's SNAPSHOT; another identity's task is not found."""
    snapshot = store().get_owned(checked_task_id(task_id), owner)
    if snapshot is None:
        raise not_found()
    return snapshot
