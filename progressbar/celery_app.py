"""The Celery app, bound to the Flask app, whose tasks always report their end."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

from . import liveness
from .errors import TaskError
from .publisher import external_publisher
from .reporter import Progress, TaskCancelled
from .settings import Settings
from .store import TERMINAL_STATES

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
                queued = self._record()
                if queued is None:
                    # Called directly, or sent by other code than ours: it runs
                    # plainly, and its `progress(self)` reports to nobody.
                    return self.run(*args, **kwargs)
                if queued.get("state") in TERMINAL_STATES:
                    return None  # cancelled while queued, or judged lost: never start
                progress = self._progress(queued)
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

        def _record(self) -> dict[str, Any] | None:
            if self.request.id is None:
                return None
            return external_publisher(app).store.get(self.request.id)

        def _progress(self, queued: dict[str, Any]) -> Progress:
            publisher = external_publisher(app)
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
        broker_transport_options={"socket_connect_timeout": 1, "socket_timeout": 5},
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    celery_app.conf.update(extra_config or {})

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
