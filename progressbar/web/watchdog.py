"""Runs in each web process, from its start, whoever serves it: ends the
tasks nobody else would end, and keeps queued bars honest about the workers.

- A task whose heartbeats stopped (its worker died) ends `lost`.
- A task whose message never reached the broker (its web process died
  between its record and the send) ends `lost`.
- A task still running CANCEL_GRACE seconds after its owner's cancel ends
  `cancelled`, and its worker is told to terminate it.
- Queued bars say when no worker is alive to take them, and that they wait
  for one again once a worker is.

Each verdict is one of the store's scripts: it pushes the new state to the
task's bars, and is made once however many web processes judge.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import logs
from ..snapshot import WAITING_FOR_A_WORKER
from ..state import state
from ..store import Store

log = logging.getLogger(__name__)

NEVER_SENT = "It never reached a worker: its start was interrupted before it was queued."
NO_WORKER = "No worker is running: it starts when one does."


class Watchdog:
    """Judges every `interval` seconds.

    After Redis was unreachable (and at start) it waits one `timeout` before
    judging, so that workers, whose heartbeats failed during the outage too,
    can renew them. `terminate(task_id)` has the task's worker kill it.
    """

    def __init__(
        self,
        store: Store,
        timeout: float,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        send_timeout: float = 30.0,
        cancel_grace: float = 10.0,
        worker_max_age: float = 3.0,
        terminate: Callable[[str], object] = lambda task_id: None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.interval = interval
        self.clock = clock
        self.send_timeout = send_timeout
        self.cancel_grace = cancel_grace
        self.worker_max_age = worker_max_age
        self.terminate = terminate
        self.reason = f"Its worker stopped responding (no sign of life for {timeout:g} s)."
        self.forced = (
            f"Cancelled: it had not stopped {cancel_grace:g} s after the request, "
            "so it was terminated on its worker."
        )
        self._quiet_until = clock() + timeout

    def scan(self) -> list[dict[str, Any]]:
        """Every verdict due now; the snapshots it ended."""
        store = self.store
        reported = self._judge(
            store.expired(),
            lambda task_id: store.lose(task_id, self.reason, only_if_expired=True),
            "lost: no heartbeat",
        )
        reported += self._judge(
            store.overdue("unsent", self.send_timeout),
            lambda task_id: store.lose_unsent(task_id, NEVER_SENT, self.send_timeout),
            "lost: never sent",
        )
        cancelled = self._judge(
            store.overdue("cancelling", self.cancel_grace),
            lambda task_id: store.end_cancelled(task_id, self.cancel_grace, self.forced),
            "cancelled: terminating it",
        )
        for snapshot in cancelled:
            self._terminate(snapshot["task_id"])
        store.note_waiting(self.worker_max_age, NO_WORKER, WAITING_FOR_A_WORKER)
        return reported + cancelled

    def _judge(
        self,
        task_ids: list[str],
        verdict: Callable[[str], dict[str, Any] | None],
        what: str,
    ) -> list[dict[str, Any]]:
        """Apply `verdict` to each task; the snapshots it ended."""
        ended = []
        for task_id in task_ids:
            about = logs.task_extra(task_id)
            try:
                snapshot = verdict(task_id)
            except ResponseError:
                # Its script refused this record alone: the others are still judged.
                log.exception("watchdog: could not judge it", extra=about)
                continue
            if snapshot is not None:
                log.warning(what, extra=about)
                ended.append(snapshot)
        return ended

    def _terminate(self, task_id: str) -> None:
        try:
            self.terminate(task_id)
        except Exception:
            # Its bar has ended; the worker's next write is refused, which
            # stops it if it ever reports again.
            about = logs.task_extra(task_id)
            log.warning("could not have it terminated", exc_info=True, extra=about)

    def tick(self) -> list[dict[str, Any]]:
        """One look: the snapshots it ended (none while it keeps quiet)."""
        try:
            if self.clock() >= self._quiet_until:
                return self.scan()
            self.store.redis.ping()
        except (RedisConnectionError, RedisTimeoutError):
            log.warning(
                "watchdog: Redis unreachable; judging again %g s after it returns", self.timeout
            )
            self._quiet_until = self.clock() + self.timeout + self.interval
        return []

    def run(self, sleep: Callable[[float], None]) -> None:
        """Tick forever: nothing a tick meets stops the watchdog."""
        sleep(self.interval)
        log.info("watchdog: running, every %g s", self.interval)
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("watchdog: tick failed")
            sleep(self.interval)


# -- one watchdog per app in every web process ---------------------------------

_lock = threading.Lock()
# The apps set up in this process, and the process each one's watchdog runs
# in (a forked child inherits the map, not the watchdog).
_apps: weakref.WeakSet[Flask] = weakref.WeakSet()
_running: weakref.WeakKeyDictionary[Flask, int] = weakref.WeakKeyDictionary()


def register(app: Flask) -> None:
    """`app` is set up in this process; under `flask run` it serves from now."""
    _apps.add(app)
    if serving_under_flask_run():
        start(app)


def start(app: Flask) -> bool:
    """Run `app`'s watchdog in this process, once; True if it starts now."""
    pid = os.getpid()
    if _running.get(app) == pid:
        return False
    with _lock:
        if _running.get(app) == pid:
            return False
        found = state(app)
        settings = found.settings
        control = found.celery.control
        dog = Watchdog(
            found.store,
            settings.lost_timeout,
            send_timeout=settings.send_timeout,
            cancel_grace=settings.cancel_grace,
            # Seen within three heartbeats, as /healthz judges: one late beat
            # is not a dead worker.
            worker_max_age=3 * settings.heartbeat_interval,
            # The worker's pool is prefork: terminate kills the process running it.
            terminate=lambda task_id: control.revoke(task_id, terminate=True),
        )
        found.socketio.start_background_task(dog.run, found.socketio.sleep)
        _running[app] = pid
    return True


def start_current() -> None:
    """Run the current app's watchdog, if not yet: under a server that did
    not start it, the first request or Socket.IO connection does. Not in
    testing mode: a host's test client serves nobody, and its app factories
    would each leave a watchdog behind."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.testing:
        start(app)


def start_all() -> None:
    """Run the watchdog of every app set up in this process (a server's hook)."""
    for app in registered():
        start(app)


def registered() -> list[Flask]:
    """The apps set up in this process."""
    return list(_apps)


def serving_under_flask_run() -> bool:
    """True while `flask run` builds the app in the process that serves it
    (with the reloader, its child; not the parent that only watches files)."""
    import click
    from flask.cli import get_debug_flag, run_command
    from werkzeug.serving import is_running_from_reloader

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command is not run_command:
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()
