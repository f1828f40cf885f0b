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
from .store import LimitReached, Record, Store

log = logging.getLogger(__name__)

MAX_TASK_ID = 64
# Seconds between a task's soft time limit (it is asked to stop) and its hard
# one (its pool process is killed).
HARD_LIMIT_GRACE = 10.0

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
    # Seconds it may run; None: its Celery task's own limits, else TASK_TIME_LIMIT.
    time_limit: float | None = None


def start_task(
    payload: Any,
    owner: str,
    subscribe: Callable[[str], None] | None = None,
    unsubscribe: Callable[[str], None] | None = None,
    *,
    address: str = "",
    trusted: bool = False,
) -> dict[str, Any]:
    """Validate a client's `start` payload, then `launch` its kind. A client
    (at `address`) starts no hidden kind, unless START_HIDDEN_KINDS; `trusted`
    callers (the CLI) may."""
    payload = checked_payload(payload, {"kind", "params"})
    kinds = state().kinds
    hidden = trusted or state().settings.start_hidden_kinds
    kind, params = kinds.resolve(payload.get("kind"), payload.get("params"), hidden=hidden)
    part_params = kinds.parts(kind, params)
    if part_params:
        part_kind = kinds[str(kind.parts_of)]
        parts = [
            Message(part_kind.task_name, p, kind=part_kind.name, time_limit=part_kind.time_limit)
            for p in part_params
        ]
        return launch(
            owner,
            kind.name,
            parts,
            group=True,
            subscribe=subscribe,
            unsubscribe=unsubscribe,
            address=address,
        )
    message = Message(kind.task_name, params, kind=kind.name, time_limit=kind.time_limit)
    return launch(
        owner, kind.name, [message], subscribe=subscribe, unsubscribe=unsubscribe, address=address
    )


def _refusal(reached: LimitReached, units: int) -> ProtocolError:
    """What a client is told when a new task would pass a limit on unfinished tasks."""
    settings = state().settings
    if reached.which == "total":
        return ProtocolError(
            "busy",
            f"the service is running as many tasks as it takes "
            f"({settings.max_active_tasks_total}); try again in a minute",
            60,
        )
    if reached.which == "address":
        limit = settings.max_active_tasks_per_address
        return ProtocolError(
            "limit", f"your address already has {limit} unfinished tasks; wait or cancel one"
        )
    limit = settings.max_active_tasks
    if units > limit:
        return ProtocolError(
            "limit", f"a group of {units} parts counts {units} tasks; you may have {limit}"
        )
    return ProtocolError(
        "limit",
        f"you already have {limit} unfinished tasks (a group counts its parts); "
        "wait or cancel one",
    )


def _time_limits(message: Message) -> dict[str, float]:
    """Celery's soft and hard time limits for `message`: its kind's, else
    TASK_TIME_LIMIT; none of ours when the Celery app or task sets its own."""
    celery = state().celery
    limit = message.time_limit
    if limit is None:
        task = celery.tasks.get(message.task)
        own = (
            getattr(task, "time_limit", None),
            getattr(task, "soft_time_limit", None),
            celery.conf.task_time_limit,
            celery.conf.task_soft_time_limit,
        )
        if any(own):
            return {}
        limit = state().settings.task_time_limit
    return {"soft_time_limit": limit, "time_limit": limit + HARD_LIMIT_GRACE}


# Types whose repr is what Celery's saferepr writes of them.
PLAIN = (int, float, str, bool, type(None))


class _Sent:
    """What `send_task` returns here: the id alone. Its usual AsyncResult
    costs a start more to make and to drop than the rest of the call."""

    __slots__ = ("id", "ignored")

    def __init__(self, task_id: str) -> None:
        self.id = task_id


def _send(message: Message, message_id: str) -> None:
    """Send `message` as a plain `send_task` would, but for a result nobody
    here waits on: told the result is ignored, `send_task` skips its
    backend's `on_task_call`, with which Celery's Redis backend subscribes
    this process to the task's result channel (and the AsyncResult, dropped
    at once, unsubscribes it): two pub/sub commands a start, their
    confirmations never read. The message's header is set back to a plain
    send's (None: the worker stores the result as the task's own
    `ignore_result` says), so `AsyncResult(task_id).get()` works as for any
    task."""
    celery = state().celery
    options: dict[str, Any] = {}
    # The arguments' text in the message (for monitors such as Flower): for
    # parameters as a kind's are (names, and numbers or texts), what
    # Celery's saferepr writes, made by repr at a fraction of its cost.
    if not message.args and all(
        isinstance(k, str) and type(v) in PLAIN for k, v in message.kwargs.items()
    ):
        kwargsrepr = repr(message.kwargs)
        if len(kwargsrepr) <= celery.amqp.kwargsrepr_maxsize:
            options.update(argsrepr="()", kwargsrepr=kwargsrepr)
    celery.send_task(
        message.task,
        args=message.args,
        kwargs=message.kwargs,
        task_id=message_id,
        ignore_result=True,
        headers={SENT_BY_START: 1, "ignore_result": None},
        # Inside a task of a worker, Celery adds the result to the task's
        # children, and wants the real one.
        result_cls=None if celery.current_worker_task else _Sent,
        **options,
        **_time_limits(message),
    )


def launch(
    owner: str,
    kind: str,
    messages: list[Message],
    *,
    group: bool = False,
    shared: bool = False,
    subscribe: Callable[[str], None] | None = None,
    unsubscribe: Callable[[str], None] | None = None,
    address: str = "",
) -> dict[str, Any]:
    """Record a task (or a group of `messages`, one bar) as queued for
    `owner`, then send it; the queued SNAPSHOT.

    Admission first: Redis must have room, and the client `address` ('' for
    server code: no rate limit) its allowance of starts, each message
    counting one; then the limits on unfinished tasks (the owner's, the
    address's, everyone's), checked as the record is created.
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
    admission = state().admission
    admission.check_memory()
    admission.start(address, len(messages))
    task_id = new_id()
    queued = queued_snapshot(task_id, kind, time.time())
    ids = [new_id() for _ in messages] if group else [task_id]
    try:
        if group:
            parts = {part_id: m.kind for part_id, m in zip(ids, messages, strict=True)}
            snapshot = store().create_group(task_id, owner, queued, parts, shared, address=address)
        else:
            snapshot = store().create(task_id, owner, queued, shared, address=address)
    except LimitReached as reached:
        raise _refusal(reached, len(messages)) from None
    state().reads.owners.note(task_id, Record(owner, shared, snapshot))
    if subscribe:
        subscribe(task_id)
    try:
        for message_id, m in zip(ids, messages, strict=True):
            _send(m, message_id)
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
    """The SNAPSHOT of a task `identity` may watch: its own, or a shared one,
    read after the call began. Another identity's task is not found, as a
    missing one."""
    snapshot = state().reads.visible(checked_task_id(task_id), identity)
    if snapshot is None:
        raise not_found()
    return snapshot


def check_watcher(task_id: str, identity: str) -> None:
    """not_found unless `identity` may watch the task: its own, or a shared one."""
    if not state().reads.may_watch(checked_task_id(task_id), identity):
        raise not_found()


def list_tasks(identity: str) -> list[dict[str, Any]]:
    """The identity's tasks, newest first."""
    return state().reads.list(identity)
