"""The worker's signals: proof of life from its main process, news of a dead
pool process, and each pool process's warm-up.

A pool process's reporter sends heartbeats for the task it runs; the main
process sends them for every task it holds (reserved or running), so a task
whose worker dies whole stops being armed, and the watchdog of a web process
reports it lost. When only a pool process dies, Celery's main process knows at
once (WorkerLostError): the task is reported lost right then. After a broker
reconnect, the main process puts back in their queue the messages of tasks its
consumer forgot (`redelivery`).

Handlers are connected once per process, however many apps it builds; each
finds its app's context through the Celery app that sent the signal.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery import current_app
from celery.exceptions import Terminated, TimeLimitExceeded
from celery.signals import task_failure, task_received, worker_process_init, worker_ready

from .. import logs
from ..store import Store
from .context import context_of
from .redelivery import Held, put_back
from .task import ProgressTask

log = logging.getLogger(__name__)

# The tracked requests this process's consumer received.
HELD = Held()

REASONS: dict[type[BaseException], str] = {
    WorkerLostError: "The worker process running it died.",
    TimeLimitExceeded: "It ran past its time limit and was stopped.",
    Terminated: "It was terminated on the worker.",
}


def connect() -> None:
    """Hook the worker's signals; all but the warm-up fire in its main process."""
    for signal, handler in (
        (worker_process_init, warm_up),
        (task_received, watch_reserved),
        (worker_ready, start_heartbeats),
        (task_failure, report_lost),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"progressbar.{handler.__name__}")


def warm_up(**_: Any) -> None:
    # Connect each pool process before its first task, so the first push of
    # a task does not pay for the connection and the scripts' loading (~40 ms).
    context = context_of(current_app._get_current_object())
    if context is not None:
        context.store.warm_up()


def watch_reserved(sender: Any = None, request: Any = None, **_: Any) -> None:
    # From now on the task is watched. If this worker dies before running
    # it, it is disarmed, not lost: it stays queued, as its message is still
    # with the broker (handed out again after the visibility timeout).
    context = context_of(getattr(sender, "app", None))
    if context is None or not isinstance(getattr(request, "task", None), ProgressTask):
        return  # not a tracked task: nothing to watch
    HELD.received(request, getattr(sender, "restart_count", 0))
    try:
        context.store.heartbeat(request.id)
    except Exception:
        log.warning("could not arm its heartbeat", exc_info=True, extra=logs.task_extra(request.id))


def start_heartbeats(sender: Any = None, **_: Any) -> None:
    context = context_of(getattr(sender, "app", None))
    if context is None:
        return
    # The pool's size, for the fair share: `-c N` on the command line included.
    slots = getattr(getattr(sender, "pool", None), "num_processes", None)
    threading.Thread(
        target=beat_forever,
        args=(
            context.store,
            getattr(sender, "hostname", None) or "worker",
            context.settings.heartbeat_interval,
            slots if isinstance(slots, int) else context.settings.worker_concurrency,
            sender,
        ),
        name="progress-heartbeats",
        daemon=True,
    ).start()


def report_lost(
    sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any
) -> None:
    reason = next((r for t, r in REASONS.items() if isinstance(exception, t)), None)
    context = context_of(getattr(sender, "app", None))
    if reason is None or task_id is None or context is None:
        return  # an ordinary failure, reported by the task itself
    # Past its hard time limit the task did not die: it was stopped, and failed.
    failed = isinstance(exception, TimeLimitExceeded)
    if context.store.lose(task_id, reason, only_if_expired=False, failed=failed) is not None:
        ended = "failed" if failed else "lost"
        log.warning("%s: %s", ended, reason, extra=logs.task_extra(task_id))


def beat_forever(
    store: Store, name: str, interval: float, slots: int | None = None, consumer: Any = None
) -> None:
    """Every HEARTBEAT_INTERVAL: this worker is alive (for /healthz), and so is
    every tracked task it holds; messages its consumer forgot go back in their
    queue."""
    from celery.worker import state as worker_state

    while True:
        reserved = list(worker_state.reserved_requests)
        held = [r.id for r in reserved if isinstance(getattr(r, "task", None), ProgressTask)]
        try:
            store.worker_seen(name, slots)
            store.heartbeat(*held)
        except Exception:
            log.warning("heartbeat of %d tasks failed", len(held), exc_info=True)
        if consumer is not None:
            put_back_forgotten(consumer, set(reserved))
        time.sleep(interval)


def put_back_forgotten(consumer: Any, reserved: set[Any]) -> None:
    forgotten = HELD.forgotten(getattr(consumer, "restart_count", 0), reserved)
    if not forgotten:
        return
    try:
        put_back(consumer.app, forgotten)
    except Exception:
        log.warning("could not put back %d forgotten tasks yet", len(forgotten), exc_info=True)
        return
    HELD.drop(forgotten)
