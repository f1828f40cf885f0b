"""The task author's API: `progress(self)` and the `Progress` reporter it gives."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from .. import logs
from ..errors import TaskCancelled
from ..snapshot import snapshot
from ..strict_json import Unencodable, finite_number
from .flusher import Flusher
from .rate import Rate

T = TypeVar("T")

# Receives a snapshot without seq; returns it with seq, or None when refused
# (the task was ended elsewhere: cancelled while queued, or judged lost).
Publish = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]
# Proof of life between pushes; True when the owner asked to cancel.
Heartbeat = Callable[[str], bool]


log = logging.getLogger(__name__)

# The message of a task that succeeded with a result that has no JSON text.
UNSHOWN_RESULT = "Done; its result cannot be shown (it is not JSON)."


class Progress:
    """Reports one task's progress.

    `update()` is cheap: it records the values and pushes at most once per
    `interval`-long window. The first state and the terminal state are always
    pushed; a state held back by coalescing is pushed by a background flusher
    (`autoflush`) the moment its interval ends, or by the next update. The
    flusher also beats when nothing was pushed for `heartbeat_interval`.

    When the owner cancels, the next `update()`, `advance()`, `check()` or
    step of `iter()` raises TaskCancelled: the task stops cooperatively.
    """

    def __init__(
        self,
        task_id: str,
        kind: str,
        publish: Publish,
        *,
        heartbeat: Heartbeat | None = None,
        total: float | None = None,
        interval: float = 0.1,
        heartbeat_interval: float = 0.5,
        smoothing: float = 0.3,
        eta_min_samples: int = 2,
        eta_min_elapsed: float = 1.0,
        created_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        autoflush: bool = True,
        final_push_patience: float = 300.0,
    ) -> None:
        self.task_id = task_id
        self.kind = kind
        self.current: float = 0
        self.total = total
        self.message = ""
        self.state = "running"
        self.interval = interval
        self._publish = publish
        self.heartbeat_interval = heartbeat_interval
        self.cancel_requested = False
        self._sleep = sleep
        self._final_push_patience = final_push_patience
        self.clock = clock
        self._wall = wall_clock
        self._started = clock()
        self.created_at = created_at if created_at is not None else wall_clock()
        self._rate = Rate(self._started, smoothing, eta_min_samples, eta_min_elapsed)
        # -inf: the first update is always pushed.
        self._last_push = float("-inf")
        # A state held back by coalescing, not pushed yet.
        self.dirty = False
        self._lock = threading.Lock()
        self._flusher = Flusher(self, heartbeat)
        self._autoflush = autoflush
        self.last_snapshot: dict[str, Any] | None = None
        self._warned = False
        self._shown_current: float = 0

    def update(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Set the progress; pushed now unless one was pushed < interval ago.

        A `current` that is not a finite number (NaN, ±infinity) is ignored:
        the bar keeps its last one (checked when a snapshot is made, not
        here: this runs on every step). Such a `total` makes the total
        unknown."""
        self.current = current
        if total is not None:
            self.total = finite_number(total)
            if self.total is None:
                self._not_a_number("total", total)
        if message is not None:
            self.message = message
        if self.clock() - self._last_push >= self.interval:
            self.flush()
        else:
            self.dirty = True
            if not self._flusher.pending:
                self._flusher.request()
        if self.cancel_requested:
            raise TaskCancelled

    def _not_a_number(self, name: str, value: object) -> None:
        if not self._warned:  # once per task: an update may come a million times
            self._warned = True
            log.warning(
                "progress %s=%r is not a finite number: not shown",
                name,
                value,
                extra=logs.task_extra(self.task_id),
            )

    def check(self) -> None:
        """Raise TaskCancelled if the owner asked to cancel; call it in long steps."""
        if self.cancel_requested:
            raise TaskCancelled

    def advance(self, n: float = 1, message: str | None = None) -> None:
        """Add `n` to the current progress."""
        self.update(self.current + n, message=message)

    def iter(self, iterable: Iterable[T], total: float | None = None) -> Iterator[T]:
        """Yield from `iterable`, counting each item once it has been handled."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        if total is not None:
            self.total = total
        self.flush()
        clock = self.clock
        interval = self.interval
        flusher = self._flusher
        n = self.current
        for item in iterable:
            yield item
            n += 1
            self.current = n
            # Inlined update(): this loop is the hot path of most tasks.
            if clock() - self._last_push >= interval:
                self.flush()
            else:
                self.dirty = True
                if not flusher.pending:
                    flusher.request()
            if self.cancel_requested:
                raise TaskCancelled

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # The terminal state is the runner's (it has the result); this one waits its window.
        if self.dirty and self.clock() - self._last_push >= self.interval:
            self.flush()

    def start(self, push: bool = True) -> None:
        """Start the background flusher; push the running state now, or within
        one interval when `push` is false (so the task can set its total first)."""
        if self.last_snapshot is None:
            if push:
                self.flush()
            else:
                # Pushed one interval from now, unless the task pushes first.
                self.dirty = True
                self._last_push = self.clock()
                self._flusher.request()
        if self._autoflush:
            self._flusher.start()

    def hand_over(self, message: str) -> dict[str, Any]:
        """Push nothing more: another attempt of the task reports from now on.
        Returns what the bar shows meanwhile: this attempt's progress, `message`."""
        self._flusher.stop()
        with self._lock:  # after a push under way, if any
            snapshot = {**self.snapshot(self.clock()), "message": message, "eta": None}
            self.state = "handed over"
        return snapshot

    def finish(
        self, state: str, result: Any = None, error: str | None = None, message: str | None = None
    ) -> dict[str, Any] | None:
        """Push the terminal state; nothing is pushed after it.

        The terminal state must not be lost to a Redis outage: the push is
        retried, with backoff, for up to `final_push_patience` seconds.
        """
        self._flusher.stop()
        with self._lock:
            if self.state != "running":
                return self.last_snapshot
            self.state = state
            if message is not None:
                self.message = message
            extra: dict[str, Any] = {"result": result} if state == "succeeded" else {}
            if error is not None and state != "succeeded":
                extra["error"] = error
            deadline = self.clock() + self._final_push_patience
            pause = 0.05
            while True:
                try:
                    return self._push(self.clock(), extra, raise_errors=True)
                except Exception as exc:
                    if isinstance(exc, Unencodable) and extra.get("result") is not None:
                        # Its result has no JSON text: the bar ends all the same.
                        log.warning("result not JSON", extra=logs.task_extra(self.task_id))
                        extra["result"] = None
                        self.message = UNSHOWN_RESULT
                        continue
                    about = logs.task_extra(self.task_id)
                    if self.clock() >= deadline:
                        log.error("could not store its final state", extra=about)
                        return None
                    log.warning("final state not stored yet", extra=about)
                    self._sleep(pause)
                    pause = min(pause * 2, 2.0)

    def flush(self) -> None:
        """Push the current state now."""
        with self._lock:
            if self.state == "running":
                self._push(self.clock(), {})

    @property
    def last_push(self) -> float:
        """When the window of the last push opened (monotonic clock)."""
        return self._last_push

    def rate(self) -> float | None:
        """Smoothed units per second, or None before the first sample."""
        return self._rate.per_second()

    def eta(self, now: float) -> float | None:
        """Seconds left, once there is a total and enough samples to mean something."""
        return self._rate.eta(self.current, self.total, now)

    def _window_start(self, now: float) -> float:
        """Where the window of a push at `now` starts.

        Windows follow each other on a fixed grid while updates keep coming
        (a push up to a tenth of an interval late still starts its window on
        the grid), so small lateness never accumulates: a steady stream of one
        update per interval passes without being held back. After a pause a
        new grid starts at the push.
        """
        on_grid = self._last_push + self.interval
        return on_grid if 0 <= now - on_grid < self.interval / 10 else now

    def _push(
        self, now: float, extra: dict[str, Any], raise_errors: bool = False
    ) -> dict[str, Any] | None:
        self.dirty = False
        self._last_push = self._window_start(now)
        snapshot = self.snapshot(now)
        snapshot.update(extra)
        try:
            published = self._publish(self.task_id, snapshot)
        except SoftTimeLimitExceeded:
            # Celery's soft time limit, raised by a signal wherever the task
            # happens to be, in a push too: it is the task's, not the push's.
            raise
        except Exception:  # a push must never break the task itself
            if raise_errors:
                raise
            log.warning("progress push failed", exc_info=True, extra=logs.task_extra(self.task_id))
            self.dirty = True
            return None
        if published is None:
            # Refused: the task was ended elsewhere (cancelled or lost). Stop it.
            self.cancel_requested = True
        else:
            self.last_snapshot = published
            if published.get("cancel_requested"):
                self.cancel_requested = True
        return published

    def snapshot(self, now: float) -> dict[str, Any]:
        """The SNAPSHOT of this task as of `now`, without seq."""
        shown = finite_number(self.current)
        if shown is None:
            self._not_a_number("current", self.current)
            self.current = self._shown_current
        else:
            self._shown_current = self.current = shown
        self._rate.sample(self.current, now)
        running = self.state == "running"
        return snapshot(
            self.task_id,
            self.kind,
            self.state,
            current=self.current,
            total=self.total,
            message=self.message,
            rate=self.rate(),
            eta=self.eta(now) if running else None,
            elapsed=now - self._started,
            created_at=self.created_at,
            updated_at=self._wall(),
        )


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
        reporter.total = finite_number(total)
    if message is not None:
        reporter.message = message
    if reporter.last_snapshot is None:
        reporter.flush()  # the first running state, with its total
    elif total is not None or message is not None:
        reporter.update(reporter.current)
    return reporter
