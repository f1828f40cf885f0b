"""Proof of life from a worker's main process, and news of a dead pool process.

A pool process's reporter sends heartbeats for the task it runs; the main
process sends them for every task it holds (reserved or running), so a task
whose worker dies whole stops being armed, and the watchdog of a web process
reports it lost. When only a pool process dies, Celery's main process knows at
once (WorkerLostError): the task is reported lost right then.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from billiard.exceptions import WorkerLostError
from celery.exceptions import Terminated, TimeLimitExceeded
from celery.signals import task_failure, task_received, worker_ready
from flask import Flask

from . import logs
from .publisher import external_publisher

log = logging.getLogger(__name__)

REASONS: dict[type[BaseException], str] = {
    WorkerLostError: "The worker process running it died.",
    TimeLimitExceeded: "It ran past its time limit and was stopped.",
    Terminated: "It was terminated on the worker.",
}


def connect(app: Flask, interval: float) -> None:
    """Hook the worker's signals; they fire in the worker's main process only."""

    @task_received.connect(weak=False)
    def watch_reserved(request: Any = None, **_: Any) -> None:
        # From now on the task is watched: if this worker dies before running
        # it, it is reported lost instead of waiting as queued forever.
        try:
            external_publisher(app).store.heartbeat(request.id)
        except Exception:
            log.warning("could not arm its heartbeat", exc_info=True, extra=logs.task(request.id))

    @worker_ready.connect(weak=False)
    def start_heartbeats(sender: Any = None, **_: Any) -> None:
        name = getattr(sender, "hostname", None) or "worker"
        threading.Thread(
            target=beat_forever,
            args=(app, name, interval),
            name="progress-heartbeats",
            daemon=True,
        ).start()

    @task_failure.connect(weak=False)
    def report_lost(task_id: str | None = None, exception: Any = None, **_: Any) -> None:
        reason = next((r for t, r in REASONS.items() if isinstance(exception, t)), None)
        if reason is None or task_id is None:
            return  # an ordinary failure, already reported by the task itself
        publisher = external_publisher(app)
        snapshot = publisher.store.lose(task_id, reason, only_if_expired=False)
        if snapshot is not None:
            log.warning("lost: %s", reason, extra=logs.task(task_id))
            publisher.emit(snapshot)


def beat_forever(app: Flask, name: str, interval: float) -> None:
    """Every HEARTBEAT_INTERVAL: this worker is alive (for /healthz), and so is
    every task it holds."""
    from celery.worker import state

    store = external_publisher(app).store
    while True:
        held = [request.id for request in list(state.reserved_requests)]
        try:
            store.workers(interval, beat=name)
            store.heartbeat(*held)
        except Exception:
            log.warning("heartbeat of %d tasks failed", len(held), exc_info=True)
        time.sleep(interval)
