"""The Celery app, bound to the Flask app, whose tasks always report their end."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

from . import liveness, logs
from .errors import TaskError
from .publisher import external_publisher
from .reporter import Progress, TaskCancelled
from .service import HEADER
from .settings import Settings

log = logging.getLogger(__name__)


def error_message(exc: BaseException) -> str:
    """A short message for the task's owner; never a traceback."""
    if isinstance(exc, TaskError) and str(exc):
        return str(exc).splitlines()[0][:200]
    return f"The task failed unexpectedly ({type(exc).__name__})."


def celery_init_app(
    app: Flask, settings: Settings, extra_config: dict[str, Any] | None = None
) -> Celery:
    """Create the Celery app from the settings; tasks run in an app context."""

    class ProgressTask(Task):
        """Runs the task with a Progress reporter and pushes its terminal state."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                if not self._sent_by_start():
                    # Called directly, or sent by other code than ours: it runs
                    # plainly, without a word to Redis, and its
                    # `progress(self)` reports to nobody.
                    return self.run(*args, **kwargs)
                claim = external_publisher(app).store.claim(self.request.id)
                if claim != "claimed":
                    # Cancelled while queued, judged lost, its record gone
                    # (expired, or its start failed), or another delivery of
                    # the same message has it: never run it twice.
                    log.info("not run: %s", claim, extra=logs.task(self.request.id))
                    return None
                progress = self._progress()
                self.request.progress = progress
                # The body's `progress(self, total=...)` makes the first push.
                progress.start(push=False)
                try:
                    result = self.run(*args, **kwargs)
                except TaskCancelled:
                    progress.finish("cancelled", error=None)
                    return None
                except (SystemExit, KeyboardInterrupt):
                    # The pool process was told to stop (a hard shutdown or a
                    # terminate): not the task's own failure.
                    progress.finish("lost", error="Its worker stopped before it finished.")
                    raise
                except BaseException as exc:
                    progress.finish("failed", error=error_message(exc))
                    raise
                progress.finish("succeeded", result=result)
                return result

        def _sent_by_start(self) -> bool:
            request = self.request
            headers = getattr(request, "headers", None) or {}
            return bool(getattr(request, HEADER, None) or headers.get(HEADER))

        def _progress(self) -> Progress:
            publisher = external_publisher(app)
            queued = publisher.store.get(self.request.id) or {}
            return Progress(
                self.request.id,
                str(queued.get("kind") or self.name),
                publisher,
                heartbeat=publisher.heartbeat,
                created_at=queued.get("created_at"),
                interval=settings.progress_interval,
            )

    celery_app = Celery(app.name, task_cls=ProgressTask)
    url = settings.redis_url
    celery_app.conf.update(
        broker_url=url,
        result_backend=url,
        task_ignore_result=True,  # results travel in the snapshot
        worker_concurrency=settings.worker_concurrency,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            # A message whose worker died before taking it on comes back after
            # this long (Redis has no acks: kombu keeps it aside meanwhile);
            # a copy delivered twice runs once (the store's CLAIM).
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, int(settings.visibility_timeout / 5)),
            "unacked_restore_throttle": 1,
        },
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    extra = dict(extra_config or {})
    # Added to ours, not instead: the timeouts above keep a Redis outage short.
    transport = extra.pop("broker_transport_options", {})
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        **transport,
    }
    celery_app.conf.update(extra)

    @worker_process_init.connect(weak=False)
    def warm_up(**_: Any) -> None:
        # Connect each pool process before its first task, so the first push
        # of a task does not pay for setting up the publisher (~40 ms).
        external_publisher(app).warm_up()

    liveness.connect(app, settings.heartbeat_interval)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def progress(task: Task, total: float | None = None, message: str | None = None) -> Progress:
    """The reporter of the running task, for `with progress(self, total=n) as p:`."""
    reporter: Progress | None = getattr(task.request, "progress", None)
    if reporter is None:  # not started through progressbar: report to nobody
        reporter = Progress(
            task.request.id or "direct",
            task.name,
            lambda _, snapshot: {**snapshot, "seq": 0},
            autoflush=False,
        )
    if total is not None:
        reporter.total = total
    if message is not None:
        reporter.message = message
    if reporter.last_snapshot is None:
        reporter.flush()  # the first running state, with its total
    elif total is not None or message is not None:
        reporter.update(reporter.current)
    return reporter
