"""A gunicorn worker told to stop lets its Socket.IO connections go at once.

gunicorn stops a worker gracefully: it stops accepting, then waits, up to
`graceful_timeout` (30 s by default), for every connection it serves to end.
An open bar never ends on its own: with any bar open, the worker waited the
whole timeout, every bar frozen, and was then stopped with its connections.
Here, once the worker is told to stop, its parked websockets (`gevent_parking`)
are no longer waited for: they end with the worker, at once and all together,
as they would under `python app.py`; every other Engine.IO connection (long
polling, a websocket served unparked) is closed (Engine.IO's close), so that
its request ends. The page's client answers either by connecting again, to
whichever process serves then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ..state import state
from .gevent_parking import is_parked, stop_holding_places

log = logging.getLogger(__name__)

# How often the worker's state is looked at, in seconds.
CHECK_EVERY_S = 0.25


def close_connections_on_stop(worker: Any, apps: Callable[[], Iterable[Flask]]) -> None:
    """In gunicorn's gevent `worker`, serving, start a green thread that lets
    the Socket.IO connections of every app `apps()` gives go once the worker
    is told to stop."""
    import gevent

    def wait_for_stop() -> None:
        while worker.alive:
            gevent.sleep(CHECK_EVERY_S)
        stop_holding_places()
        for app in apps():
            eio = state(app).socketio.server.eio
            others = [sid for sid, socket in list(eio.sockets.items()) if not is_parked(socket)]
            log.info(
                "worker stopping: %d parked websockets end with it, %d connections closed",
                len(eio.sockets) - len(others),
                len(others),
            )
            for sid in others:
                eio.disconnect(sid)

    gevent.spawn(wait_for_stop)
