"""The task author's API: update or iterate; coalesced pushes, rate and ETA."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from . import logs

T = TypeVar("T")

# Receives a snapshot without seq; returns it with seq, or None when refused
# (the task was ended elsewhere: cancelled while queued, or judged lost).
Publish = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]
# Proof of life between pushes; True when the owner asked to cancel.
Heartbeat = Callable[[str], bool]


class TaskCancelled(Exception):
    """Raised in the task by the reporter once its owner asked to cancel it."""


log = logging.getLogger(__name__)


class EMA:
    """Exponential moving average, debiased for its first samples (as tqdm's)."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.alpha = smoothing
        self.value = 0.0
        self.calls = 0

    def add(self, x: float) -> None:
        self.value = self.alpha * x + (1 - self.alpha) * self.value
        self.calls += 1

    def get(self) -> float:
        if not self.calls:
            return 0.0
        return self.value / (1 - (1 - self.alpha) ** self.calls)


class Progress:
    """Reports one task's progress.

    `update()` is cheap: it records the values and pushes at most once per
    `interval`-long window. The first state and the terminal state are always
    pushed; a state held back by coalescing is pushed by a background flusher
    (`autoflush`) the moment its interval ends, or by the next update. The
    flusher also sends a heartbeat when nothing was pushed for
    `heartbeat_interval`.

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
        self._heartbeat = heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.cancel_requested = False
        self._sleep = sleep
        self._final_push_patience = final_push_patience
        self._clock = clock
        self._wall = wall_clock
        self._started = clock()
        self.created_at = created_at if created_at is not None else wall_clock()
        self._eta_min_samples = eta_min_samples
        self._eta_min_elapsed = eta_min_elapsed
        self._ema_dn = EMA(smoothing)
        self._ema_dt = EMA(smoothing)
        self._sample_n: float = 0
        self._sample_t = self._started
        # -inf: the first update is always pushed.
        self._last_push = float("-inf")
        self._last_beat = float("-inf")
        self._dirty = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Set by the first update held back in a window; the flusher then
        # pushes it the moment the window closes.
        self._wake = threading.Event()
        self._wake_pending = False
        self._flusher: threading.Thread | None = None
        self._autoflush = autoflush
        self.last_snapshot: dict[str, Any] | None = None

    # -- the task author's calls ------------------------------------------

    def update(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> None:
        """Set the progress; pushed now unless one was pushed < interval ago."""
        self.current = current
        if total is not None:
            self.total = total
        if message is not None:
            self.message = message
        if self._clock() - self._last_push >= self.interval:
            self.flush()
        else:
            self._dirty = True
            if not self._wake_pending:
                self._request_flush()
        if self.cancel_requested:
            raise TaskCancelled

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
        clock = self._clock
        interval = self.interval
        n = self.current
        for item in iterable:
            yield item
            n += 1
            self.current = n
            # Inlined update(): this loop is the hot path of most tasks.
            if clock() - self._last_push >= interval:
                self.flush()
                if self.cancel_requested:
                    raise TaskCancelled
            else:
                self._dirty = True
                if not self._wake_pending:
                    self._request_flush()

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # The terminal state carries the task's result, which only the task
        # runner knows. Here the latest state is pushed if its window allows;
        # otherwise the flusher, or the terminal state right after, carries it.
        if self._dirty and self._clock() - self._last_push >= self.interval:
            self.flush()

    # -- lifecycle --------------------------------------------------------

    def start(self, push: bool = True) -> None:
        """Start the background flusher; push the running state now, or within
        one interval when `push` is false (so the task can set its total first)."""
        if self.last_snapshot is None:
            if push:
                self.flush()
            else:
                # Pushed one interval from now, unless the task pushes first.
                self._dirty = True
                self._last_push = self._clock()
                self._request_flush()
        if self._autoflush and self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"progress-{self.task_id}", daemon=True
            )
            self._flusher.start()

    def finish(
        self, state: str, result: Any = None, error: str | None = None
    ) -> dict[str, Any] | None:
        """Push the terminal state; nothing is pushed after it.

        The terminal state must not be lost to a Redis outage: the push is
        retried, with backoff, for up to `final_push_patience` seconds.
        """
        self._stop.set()
        self._wake.set()
        with self._lock:
            if self.state != "running":
                return self.last_snapshot
            self.state = state
            extra: dict[str, Any] = {}
            if state == "succeeded":
                extra["result"] = result
            elif error is not None:
                extra["error"] = error
            deadline = self._clock() + self._final_push_patience
            pause = 0.05
            while True:
                try:
                    return self._push(self._clock(), extra, raise_errors=True)
                except Exception:
                    if self._clock() >= deadline:
                        log.error("could not store its final state", extra=logs.task(self.task_id))
                        return None
                    log.warning("final state not stored yet", extra=logs.task(self.task_id))
                    self._sleep(pause)
                    pause = min(pause * 2, 2.0)

    def flush(self) -> None:
        """Push the current state now."""
        with self._lock:
            if self.state == "running":
                self._push(self._clock(), {})

    # -- internals --------------------------------------------------------

    def _request_flush(self) -> None:
        self._wake_pending = True
        self._wake.set()

    def _flush_loop(self) -> None:
        while True:
            woken = self._wake.wait(self.heartbeat_interval)
            if self._stop.is_set():
                return
            if woken:
                self._wake.clear()
                # Hold the state back until its coalescing window closes.
                delay = self._last_push + self.interval - self._clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                # Reset before looking: a later update then wakes us again.
                self._wake_pending = False
                if self._dirty:
                    self.flush()
            elif (
                self._heartbeat is not None
                and self._clock() - max(self._last_push, self._last_beat) >= self.heartbeat_interval
            ):
                self._beat()

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

    def _beat(self) -> None:
        assert self._heartbeat is not None
        try:
            if self._heartbeat(self.task_id):
                self.cancel_requested = True
        except Exception:
            log.warning("heartbeat failed", exc_info=True, extra=logs.task(self.task_id))
        self._last_beat = self._clock()

    def _push(
        self, now: float, extra: dict[str, Any], raise_errors: bool = False
    ) -> dict[str, Any] | None:
        self._dirty = False
        self._last_push = self._window_start(now)
        snapshot = self.snapshot(now)
        snapshot.update(extra)
        try:
            published = self._publish(self.task_id, snapshot)
        except Exception:  # a push must never break the task itself
            if raise_errors:
                raise
            log.warning("progress push failed", exc_info=True, extra=logs.task(self.task_id))
            self._dirty = True
            return None
        if published is None:
            # Refused: the task was ended elsewhere (cancelled or lost). Stop it.
            self.cancel_requested = True
        else:
            self.last_snapshot = published
            if published.get("cancel_requested"):
                self.cancel_requested = True
        return published

    def _sample_rate(self, now: float) -> None:
        dn = self.current - self._sample_n
        dt = now - self._sample_t
        if dn and dt > 0:
            self._ema_dn.add(dn)
            self._ema_dt.add(dt)
            self._sample_n = self.current
            self._sample_t = now

    def rate(self) -> float | None:
        """Smoothed units per second, or None before the first sample."""
        dt = self._ema_dt.get()
        return self._ema_dn.get() / dt if dt > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds left, once there is a total and enough samples to mean something."""
        rate = self.rate()
        if (
            self.total is None
            or not rate
            or rate < 0
            or self._ema_dt.calls < self._eta_min_samples
            or now - self._started < self._eta_min_elapsed
        ):
            return None
        return max(0.0, (self.total - self.current) / rate)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The SNAPSHOT of this task as of `now`, without seq."""
        self._sample_rate(now)
        total = self.total
        percent = None
        if total:
            percent = round(min(100.0, max(0.0, self.current * 100.0 / total)), 2)
        rate = self.rate()
        eta = self.eta(now) if self.state == "running" else None
        return {
            "task_id": self.task_id,
            "kind": self.kind,
            "state": self.state,
            "current": self.current,
            "total": total,
            "percent": percent,
            "message": self.message,
            "rate": None if rate is None else round(rate, 4),
            "eta": None if eta is None else round(eta, 2),
            "elapsed": round(now - self._started, 3),
            "created_at": self.created_at,
            "updated_at": round(self._wall(), 3),
        }


def queued_snapshot(task_id: str, kind: str, now: float) -> dict[str, Any]:
    """The SNAPSHOT of a task accepted but not yet picked up by a worker."""
    return {
        "task_id": task_id,
        "kind": kind,
        "state": "queued",
        "current": 0,
        "total": None,
        "percent": None,
        "message": "Waiting for a worker",
        "rate": None,
        "eta": None,
        "elapsed": 0,
        "created_at": round(now, 3),
        "updated_at": round(now, 3),
    }
