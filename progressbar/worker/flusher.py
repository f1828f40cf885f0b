"""The reporter's background thread: it pushes a state held back by
coalescing the moment its window closes, and sends a heartbeat while nothing
was pushed for a while."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import logs

if TYPE_CHECKING:
    from .reporter import Progress

log = logging.getLogger(__name__)


class Flusher:
    """Wakes on `request()`; stops for good on `stop()`."""

    def __init__(self, progress: Progress, heartbeat: Callable[[str], bool] | None) -> None:
        self.progress = progress
        # Proof of life between pushes; True when the owner asked to cancel.
        self.heartbeat = heartbeat
        self._last_beat = float("-inf")
        # True from a request until the flusher looks at the state again, so
        # a stream of held-back updates wakes it only once per window.
        self.pending = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Push the state once its window closes."""
        self.pending = True
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"progress-{self.progress.task_id}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        progress = self.progress
        while True:
            woken = self._wake.wait(progress.heartbeat_interval)
            if self._stop.is_set():
                return
            if woken:
                self._wake.clear()
                # Hold the state back until its coalescing window closes.
                delay = progress.last_push + progress.interval - progress.clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                # Reset before looking: a later update then wakes us again.
                self.pending = False
                if progress.dirty:
                    progress.flush()
            elif self._heartbeat_due():
                self.beat()

    def _heartbeat_due(self) -> bool:
        progress = self.progress
        quiet_since = max(progress.last_push, self._last_beat)
        return (
            self.heartbeat is not None
            and progress.clock() - quiet_since >= progress.heartbeat_interval
        )

    def beat(self) -> None:
        """Proof of life between pushes; it also learns of a cancel."""
        assert self.heartbeat is not None
        progress = self.progress
        try:
            if self.heartbeat(progress.task_id):
                progress.cancel_requested = True
        except Exception:
            log.warning("heartbeat failed", exc_info=True, extra=logs.task_extra(progress.task_id))
        self._last_beat = progress.clock()
