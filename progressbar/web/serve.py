"""Serving a web process as it should be served: what `ProgressBar.run` does
beyond Flask-SocketIO's own `run`."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from ..state import state
from . import collector, parked_websockets, redis_readiness, watchdog

HTTP_BUFFER_BYTES = 2048
# Seconds an HTTP connection may sit idle between requests before it is closed.
KEEPALIVE_IDLE_S = 5
WEBSOCKET_BUFFER_BYTES = 64


def run(
    socketio: SocketIO, app: Flask, host: str, port: int, max_connections: int, **options: Any
) -> None:
    """Serve `app` until the process ends, its watchdog running from the start.

    Under eventlet: small frames leave at once (TCP_NODELAY: Nagle's algorithm
    would hold a push for the client's delayed ACK, ~40 ms, whenever it
    follows another frame), up to `max_connections` connections are served
    (each holds a green thread; eventlet's own default, 1,024, would stop
    accepting watchers past it), and as many may wait to be accepted (see
    `_listen_backlog`). In every mode, what was built before
    serving is kept out of the garbage collector's full passes, which would
    otherwise stall every connection at once when many are open, and so is
    what survives each full pass (`collector`); and under a green server,
    redis-py's check of a pooled connection takes no turn of the hub
    (`redis_readiness`).
    """
    # Before any Redis connection is handed out: no hub turn for its check.
    redis_readiness.check_without_hub(socketio.async_mode)
    watchdog.start(app)
    state(app).reads.open_connections()
    listening: AbstractContextManager[None] = nullcontext()
    if socketio.async_mode == "eventlet":
        options.setdefault("protocol", _no_delay_protocol())
        # Room for `max_connections`, open websockets included, though they
        # wait parked rather than each in a green thread (`parked_websockets`).
        pool = options.setdefault(
            "custom_pool", parked_websockets.connection_pool(max_connections)
        )
        # A page's polling connection stays open after its upgrade to
        # websocket, for as long as the browser keeps idle connections
        # (minutes), and holds one of the `max_connections` green threads all
        # that time: idle, it is closed, or a restart's reconnects (each one a
        # websocket plus such a connection) would fill the pool and wait.
        options.setdefault("keepalive", KEEPALIVE_IDLE_S)
        listening = _listen_backlog(max_connections)
        # Open websockets wait on the hub, not each in its request's green
        # thread; the protocol below lets such a request end (`finish`).
        parked_websockets.park_websockets(socketio.server.eio, pool)
    collector.keep_full_collections_short()
    with listening:
        socketio.run(app, host=host, port=port, **options)


@contextmanager
def _listen_backlog(backlog: int) -> Iterator[None]:
    """Flask-SocketIO listens with eventlet's default backlog, 50 connections
    waiting to be accepted. After a restart every open page reconnects
    within a few seconds; past the backlog the kernel drops their SYNs, and
    each dropped client waits out TCP's retransmission (1, 3, 7, 15 s...).
    The kernel caps the backlog at net.core.somaxconn (4,096 by default)."""
    import eventlet

    listen = eventlet.listen

    def listen_with_backlog(addr: Any, family: int = socket.AF_INET, **kwargs: Any) -> Any:
        return listen(addr, family, **{"backlog": backlog, **kwargs})

    eventlet.listen = listen_with_backlog
    try:
        yield
    finally:
        eventlet.listen = listen


def _no_delay_protocol() -> type:
    # Imported here: only a web entry point that chose eventlet gets here.
    import eventlet.wsgi

    class NoDelayProtocol(eventlet.wsgi.HttpProtocol):  # type: ignore[misc,name-defined]
        # A connection keeps its read and write buffers as long as it is open,
        # a websocket too, though it reads and writes its socket directly once
        # upgraded: 2 KB each (a request's or a response's head fits) rather
        # than eventlet's 8 KB and 16 KB.
        rbufsize = wbufsize = HTTP_BUFFER_BYTES

        def setup(self) -> None:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()

        def get_environ(self) -> dict[str, Any]:
            if self.headers.get("Upgrade", "").lower() != "websocket":
                return super().get_environ()  # type: ignore[no-any-return]
            _shrink_buffers(self)
            environ: dict[str, Any] = super().get_environ()
            _shed_parsed_headers(self, environ)
            # Browsers offer permessage-deflate, and eventlet accepts it:
            # each watcher would then hold a compressor (about 90 KB once it
            # has sent a frame) and have every push compressed for it alone,
            # to save a few hundred bytes a push. Not offered, not accepted.
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            return environ

        def finish(self) -> None:
            # A request whose websocket was parked ends; its connection stays.
            if not parked_websockets.detach(self):
                super().finish()

    return NoDelayProtocol


def _shrink_buffers(protocol: Any) -> None:
    """A websocket's connection keeps a few bytes of buffer, not 2 KB each way.

    Once upgraded, eventlet's websocket reads and writes the socket itself;
    its client sends nothing before the answer to its request (RFC 6455,
    4.1), so the read buffer holds nothing of it. The buffers stay usable
    (an upgrade refused is answered through them), only small.
    """
    # The reader is made anew in place: eventlet's request handler holds it
    # in a local variable too, for as long as the request lasts.
    protocol.rfile.__init__(protocol.rfile.detach(), WEBSOCKET_BUFFER_BYTES)
    protocol.wfile = io.BufferedWriter(protocol.wfile.detach(), WEBSOCKET_BUFFER_BYTES)


def _shed_parsed_headers(protocol: Any, environ: dict[str, Any]) -> None:
    """Let go of the headers a websocket's request was parsed into.

    A websocket's request lasts as long as the connection, and Socket.IO
    keeps its environ for that long: the headers are there as `HTTP_` keys,
    which is what Flask reads. eventlet also keeps them as the parsed message
    and as a tuple in the environ, which nothing reads once the environ is
    made but its access log line, at the end, for X-Forwarded-For.
    """
    environ.pop("headers_raw", None)
    forwarded = protocol.headers.get("X-Forwarded-For")
    protocol.headers = {"X-Forwarded-For": forwarded} if forwarded else {}
