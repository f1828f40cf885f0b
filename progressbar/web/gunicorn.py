"""A gunicorn configuration for a web process of many open bars:
`gunicorn -c python:progressbar.web.gunicorn "yourapp:create_app()"`.

One gevent worker (Socket.IO keeps each connection's state in its process:
scale out with more such processes behind a load balancer), room for 10,000
connections and for a restart's crowd of reconnects (`backlog`, `keepalive`),
the watchdog of the app running from the worker's start, its Socket.IO
connections let go as soon as it is told to stop (`worker_stop`), and what
the app built before serving, and what survives each full pass of the garbage
collector, kept out of the next one (`collector`): full passes stall every
connection at once.
Settings given on the command line win over these.
"""

from __future__ import annotations

from typing import Any

worker_class = "gevent"
workers = 1
worker_connections = 10_000
# Connections waiting to be accepted: after a restart every open page
# reconnects within seconds, and past gunicorn's 2,048 the kernel drops their
# SYNs (each client then waits out TCP's retransmission, 1, 3, 7 s...). The
# kernel caps it at net.core.somaxconn (4,096 by default).
backlog = worker_connections
# Seconds a connection may wait for its next request, and under gunicorn's
# async workers for its first one too: past it the connection is closed
# without an answer. gunicorn's 2 s closed most of a restart's reconnects
# while the worker was busy with the others (10,000 bars: 82 s to all come
# back, against 20 s at 5 s). As `python app.py`'s KEEPALIVE_IDLE_S.
keepalive = 5


def post_worker_init(worker: Any) -> None:
    # The app is loaded and the worker patched: each app's watchdog starts
    # here, in the process that serves (not in the master, which forks).
    from ..state import state
    from .collector import keep_full_collections_short
    from .gevent_parking import hold_places_in_gunicorn
    from .redis_readiness import check_without_hub
    from .watchdog import registered, start_all
    from .worker_stop import close_connections_on_stop

    # Before the worker makes its pools of connections: an open websocket
    # keeps its place there once its request has ended (`gevent_parking`).
    hold_places_in_gunicorn(worker)
    check_without_hub("gevent")
    start_all()
    # Before the first request: a restart's reconnecting pages would all come
    # at once, and a Redis connection opened amid them could time out.
    for app in registered():
        state(app).reads.open_connections()
    keep_full_collections_short()
    # Told to stop, the worker lets its bars' connections go rather than wait
    # out graceful_timeout for them: they reconnect at once.
    close_connections_on_stop(worker, registered)
