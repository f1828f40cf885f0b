"""A gunicorn worker told to stop lets its Socket.IO connections go at once.

gunicorn stops a worker gracefully: it stops accepting, then waits, up to
`graceful_timeout` (30 s by default), for every connection it serves to end.
An open bar never ends on its own: with any bar open, the worker waited the
whole timeout, every bar frozen, and was then stopped with its connections.
Here, once the worker is told to stop, every Engine.IO connection of its apps
is closed (an Engine.IO close, which the page's client answers by connecting
again, to whichever process serves then), and the worker ends as soon as the
requests still running are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ..state import state

log = logging.getLogger(__name__)

# How often the worker's state is looked at, in seconds.
CHECK_EVERY_S = 0.25


def close_connections_on_stop(worker: Any, apps: Callable[[], Iterable[Flask]]) -> None:
    """In gunicorn's gevent `worker`, serving, start a green thread that
    closes the Socket.IO connections of every app `apps()` gives once the
    worker is told to stop."""
    import gevent

    def wait_for_stop() -> None:
        while worker.alive:
            gevent.sleep(CHECK_EVERY_S)
        for app in apps():
            eio = state(app).socketio.server.eio
            log.info("worker stopping: closing %d Socket.IO connections", len(eio.sockets))
            eio.disconnect()

    gevent.spawn(wait_for_stop)
