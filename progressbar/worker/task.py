"""The Celery task class of a tracked app: a task sent by `start` claims its
record, runs with a `Progress` reporter, and ends in a terminal state that its
bars are pushed, however its body ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded

from .. import logs
from ..errors import TaskCancelled, TaskError
from ..messages import SENT_BY_START
from .context import WorkerContext, context_of
from .reporter import Progress

log = logging.getLogger(__name__)

# Seconds before a task deferred by the fair share is tried again.
DEFER_SECONDS = 1.0
COULD_NOT_DEFER = "It could not be put back in the queue to wait for a free worker."


def _own_words(exc: BaseException | None) -> str:
    """The first line of a TaskError's message, meant for the owner; '' otherwise."""
    if isinstance(exc, TaskError) and str(exc):
        return str(exc).splitlines()[0][:200]
    return ""


def error_message(exc: BaseException) -> str:
    """A short message for the task's owner; never a traceback."""
    if words := _own_words(exc):
        return words
    if isinstance(exc, SoftTimeLimitExceeded):
        return "It ran past its time limit and was stopped."
    return f"The task failed unexpectedly ({type(exc).__name__})."


def retry_message(retry: Retry, attempt: int) -> tuple[str, float]:
    """What the bar says while a retry waits, and the wait in seconds."""
    when = retry.when
    if isinstance(when, datetime):
        now = datetime.now(when.tzinfo or UTC)
        wait = (when - now).total_seconds()
    else:
        wait = float(when or 0)
    reason = retry.exc if isinstance(retry.exc, BaseException) else None
    why = f" ({_own_words(reason) or type(reason).__name__})" if reason is not None else ""
    later = f"in {max(0.0, wait):.0f} s" if wait >= 1 else "now"
    return f"Attempt {attempt} did not finish{why}; trying again {later}.", wait


def track(celery_app: Celery, task: Any) -> None:
    """Make `task` (a task, its name or a shared_task proxy), of an app's own
    Celery app and task class, run as a tracked task: its class gets
    ProgressTask's protocol in front of its own, and no other task changes. A
    task already tracked is left as it is."""
    if isinstance(task, str):
        task = celery_app.tasks.get(task)
        if task is None:
            return  # registered later, by name: checked when started
    elif hasattr(task, "_get_current_object"):  # a shared_task proxy
        task = task._get_current_object()
    cls = type(task)
    if not issubclass(cls, ProgressTask):
        task.__class__ = type(
            cls.__name__,
            (ProgressTask, cls),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )


@cache
def _own_call(cls: type) -> Callable[..., Any] | None:
    """The `__call__` of the app's own task class behind ProgressTask (a
    FlaskTask entering its app context, say); None for Celery's plain one."""
    mro = cls.__mro__
    for base in mro[mro.index(ProgressTask) + 1 :]:
        if "__call__" in base.__dict__:
            return None if base is Task else base.__dict__["__call__"]  # type: ignore[no-any-return]
    return None


class ProgressTask(Task):
    """Runs in the app's context; with a reporter when `start` sent it."""

    def _body(self, *args: Any, **kwargs: Any) -> Any:
        call = _own_call(type(self))  # type: ignore[arg-type]
        return self.run(*args, **kwargs) if call is None else call(self, *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        context = context_of(self.app)
        if context is None:
            if self._sent_by_start():
                # A pool started in a way that lost the app's binding (spawn):
                # the task runs, but its bar cannot follow it.
                log.warning("sent by start, but no progressbar app here: not tracked")
            return self._body(*args, **kwargs)
        with context.flask_app.app_context():
            if not self._sent_by_start():
                # Called directly, or sent by other code than ours: it runs
                # plainly, without a word to Redis, and its `progress(self)`
                # reports to nobody.
                return self._body(*args, **kwargs)
            return self._run_tracked(context, args, kwargs)

    def _run_tracked(self, context: WorkerContext, args: Any, kwargs: Any) -> Any:
        attempt = self.request.retries or 0
        claim = context.store.claim(self.request.id, attempt)
        if claim == "deferred":
            self._defer(context)
        if claim != "claimed":
            # Cancelled while queued, judged lost, its record gone (expired,
            # or its start failed), or another delivery of the same message
            # has it: never run it twice.
            log.info("not run: %s", claim, extra=logs.task_extra(self.request.id))
            return None
        progress = self._reporter(context)
        self.request.progress = progress
        # The body's `progress(self, total=...)` makes the first push.
        progress.start(push=False)
        try:
            result = self._body(*args, **kwargs)
        except TaskCancelled:
            progress.finish("cancelled", error=None)
            return None
        except Retry as retry:
            # Celery has queued the next attempt: the bar shows where this
            # one got to, and why, while it waits.
            message, wait = retry_message(retry, attempt + 1)
            context.store.retrying(self.request.id, progress.hand_over(message), wait)
            raise
        except Reject as reject:
            if reject.requeue:
                waiting = progress.hand_over("Its worker put it back in the queue; it runs again.")
                context.store.retrying(self.request.id, waiting, 0, same_attempt=True)
            else:
                progress.finish("failed", error="Its worker rejected it.")
            raise
        except Ignore:
            progress.finish("cancelled", message="Its worker skipped it.")
            raise
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

    def _defer(self, context: WorkerContext) -> None:
        """Put this delivery back, unchanged (same id, attempt, headers and
        time limits), to be tried again in DEFER_SECONDS: its owner or client
        address already runs its share of the workers, and this slot is for
        someone else. It ends here as Ignore ends a task: no state stored."""
        log.debug("deferred: its owner runs its share", extra=logs.task_extra(self.request.id))
        try:
            self.signature_from_request().apply_async(countdown=DEFER_SECONDS)
        except Exception:
            # This delivery is acknowledged: without the copy nothing would
            # ever run it, and its bar would wait for a day.
            log.warning("could not defer", exc_info=True, extra=logs.task_extra(self.request.id))
            context.store.lose(self.request.id, COULD_NOT_DEFER, only_if_expired=False)
        raise Ignore()

    def _sent_by_start(self) -> bool:
        # Message protocol 2 makes a header an attribute of the request;
        # protocol 1 keeps it in `headers`.
        request = self.request
        headers = getattr(request, "headers", None) or {}
        return bool(getattr(request, SENT_BY_START, None) or headers.get(SENT_BY_START))

    def _reporter(self, context: WorkerContext) -> Progress:
        store = context.store
        queued = store.get(self.request.id) or {}
        return Progress(
            self.request.id,
            str(queued.get("kind") or self.name),
            store.write,
            heartbeat=lambda task_id: task_id in store.heartbeat(task_id),
            created_at=queued.get("created_at"),
            interval=context.settings.progress_interval,
        )
