"""Open websockets under gunicorn's gevent worker read when they have
something to say, not by two green threads each.

There, a websocket is served by simple-websocket: a green thread of its own
reads the socket, and the request's green thread waits on it for messages,
for as long as the connection lasts. Each holds its saved C stack and its
frame stack; with the request's parser and buffers, that is most of what an
open bar costs the process.

Here, as `parked_websockets` does under eventlet, once a websocket is open
and its Engine.IO socket connected, the request ends and the connection
stays: the socket is watched by gevent's loop, and when the client sends
something one of a few kept readers feeds it to the websocket's protocol
(simple-websocket's own handling, over wsproto: pings, closes, compression)
and hands each whole message to Engine.IO. The client sees the same protocol.

What it takes:
- the extension's gunicorn configuration (`progressbar.web.gunicorn`), whose
  pool of connections (`HoldingPool`) lets a parked websocket keep the place
  of the request that opened it, so `worker_connections` still bounds the
  connections served at once; under any other server, or over TLS, a
  websocket is served as before;
- the request's descriptor, taken from the request's socket (gunicorn
  closes that socket as the request ends, which then leaves the descriptor
  open).
"""

from __future__ import annotations

import logging
import socket as socket_module
import sys
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from engineio.socket import Socket
from wsproto.events import CloseConnection, Message, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from . import direct_writes
from .parked_readers import KeptReaders, ParkedReader, connect

log = logging.getLogger(__name__)

# Bytes read from a socket at once: a whole burst of small messages.
RECEIVE_BYTES = 65_536

# The pools that let parked websockets keep their place (one per listening socket).
_POOLS: weakref.WeakSet[Any] = weakref.WeakSet()


def holding_pool_class() -> type:
    """gevent's pool of connections, in which a parked websocket keeps the
    place of the request that opened it until it closes."""
    from gevent.pool import Pool

    class HoldingPool(Pool):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Requests ending whose connection stays, parked.
            self.holding: set[Any] = set()
            # Set once the worker is told to stop (`stop_holding_places`).
            self.stopping = False
            _POOLS.add(self)

        def hold(self, greenlet: Any) -> None:
            """`greenlet`'s place is not given back as it ends: its parked
            websocket gives it back once closed (`let_go`)."""
            self.holding.add(greenlet)

        def let_go(self) -> None:
            self._semaphore.release()

        def _discard(self, greenlet: Any) -> None:
            if greenlet in self.holding:
                self.holding.discard(greenlet)
                super(Pool, self)._discard(greenlet)  # Group's: the place stays taken
            else:
                super()._discard(greenlet)

        def free_count(self) -> int:
            if self.stopping:
                # Parked websockets end with the worker: gunicorn waits
                # only for the requests still running.
                return int(super().free_count())
            # Places free, parked websockets counted as taken (the size
            # less the requests running would count them as free).
            return int(self._semaphore.counter) if self.size is not None else 1

    return HoldingPool


def hold_places_in_gunicorn(worker: Any) -> None:
    """Have gunicorn's gevent `worker`, about to serve, make its pools of
    connections `HoldingPool`s: called from the worker (post_worker_init).
    Any other worker class is left as it is."""
    ggevent: Any = sys.modules.get("gunicorn.workers.ggevent")
    if ggevent is None or not isinstance(worker, ggevent.GeventWorker):
        return
    if not getattr(ggevent.Pool, "holding_places", False):
        ggevent.Pool = holding_pool_class()
        ggevent.Pool.holding_places = True


def stop_holding_places() -> None:
    """The worker is stopping: its parked websockets no longer count as
    connections it serves, which gunicorn waits for (up to graceful_timeout)
    before it ends. They end with the worker, their clients reconnect."""
    for pool in list(_POOLS):
        pool.stopping = True


def is_parked(socket: Socket) -> bool:
    """Whether Engine.IO `socket` is a websocket parked here."""
    return isinstance(getattr(socket.queue, "ws", None), ParkedWebSocket)


def _pool_of(greenlet: Any) -> Any:
    return next((pool for pool in list(_POOLS) if greenlet in pool.greenlets), None)


class Frames(bytes):
    """Websocket frames made already (a pong, a close's answer), put to a
    connection's writer beside its packets, and written as they are."""

    def encode(self) -> bytes:
        return self


class _Outbox:
    """Stands in for a socket while simple-websocket answers what came:
    keeps what it sends, for the connection's writer."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.parts.append(data)


class _NoThread:
    """simple-websocket's reader thread, never started: the socket is read
    here, when it has something."""

    name = "(_thread)"

    def __init__(self, target: Any = None) -> None:
        pass

    def start(self) -> None:
        pass


class GeventParking:
    """The websockets parked on one Engine.IO server under gevent."""

    def __init__(self, eio: Any, can_write: Callable[[int], bool], websocket_app: Any) -> None:
        self.can_write = can_write
        # Engine.IO's gevent websocket application class, for what is not parked.
        self.websocket_app = websocket_app
        self.readers = KeptReaders(eio)
        # Whether the server's Socket.IO events are queued for a few tasks
        # (`event_tasks`), found at the first message.
        self.events_queued: bool | None = None

    def app(self, handler: Any, server: Any) -> Any:
        """Engine.IO's websocket application for `handler`, called as its class is."""
        socket = getattr(handler, "__self__", None)
        own = isinstance(socket, Socket) and (
            getattr(handler, "__func__", None) is Socket._websocket_handler
        )
        fallback = self.websocket_app(handler, server)
        if not own:
            return fallback
        return partial(self._serve_request, socket, fallback)

    def _serve_request(
        self, socket: Socket, fallback: Any, environ: dict[str, Any], start_response: Any
    ) -> Any:
        import gevent

        sock = environ.get("gunicorn.socket")
        pool = _pool_of(gevent.getcurrent())
        if pool is None or not _plain(sock):
            return fallback(environ, start_response)
        ws = ParkedWebSocket(environ, sock, socket.server.max_http_buffer_size)
        try:
            self.serve(socket, ws, pool)
        except BaseException:
            ws.close_socket()  # its own descriptor, which nobody else closes
            raise
        # As simple-websocket does under gunicorn: the request ends without
        # a response of its own (the connection stays, on its own descriptor).
        raise StopIteration()

    def serve(self, socket: Socket, ws: ParkedWebSocket, pool: Any) -> None:
        """Engine.IO's websocket handler: connect or upgrade, then park."""
        import gevent

        reader = connect(
            socket,
            ws,
            ws.ws.sock,
            self.can_write,
            lambda writer: GeventReader(self, socket, ws, writer),
        )
        if reader is None:
            ws.close_socket()  # no longer the request's: closed here
            return
        reader.park(pool)
        pool.hold(gevent.getcurrent())
        if ws.ws.input_buffer:
            # Messages that came with the upgrade's last: read now, not once
            # the client sends again.
            self.readers.put(reader)


class ParkedWebSocket:
    """Engine.IO's view of a websocket (as its simple-websocket wrapper
    offers it: `send`, `wait`, `close`, `ws`), read without a thread."""

    def __init__(self, environ: dict[str, Any], sock: Any, max_message_size: int) -> None:
        import gevent.event
        import gevent.selectors
        import gevent.socket
        import simple_websocket

        # The handshake, on the request's socket. Browsers offer
        # permessage-deflate, which simple-websocket accepts: declined, as
        # `python app.py` declines it (a compressor per watcher, about 90 KB,
        # and a compression of every push, to save a few hundred bytes).
        offer = {k: v for k, v in environ.items() if k != "HTTP_SEC_WEBSOCKET_EXTENSIONS"}
        self.ws = simple_websocket.Server(
            offer,
            max_message_size=max_message_size,
            thread_class=_NoThread,
            event_class=gevent.event.Event,
            selector_class=gevent.selectors.DefaultSelector,
        )
        # From here on the connection's descriptor is its own: taken from the
        # request's socket (whose close, as the request ends, then leaves it
        # open), the same number the loop already knows.
        self.ws.sock = gevent.socket.socket(fileno=sock.detach())
        # gevent's loop watching the socket while it is parked.
        self.watcher: Any = None

    def send(self, message: Any) -> None:
        """Write a message (or frames made already) whole, waiting for room."""
        ws = self.ws
        if isinstance(message, Frames):
            data: bytes = message
        elif not ws.connected:
            raise OSError("the websocket is closed")
        elif isinstance(message, bytes):
            data = ws.ws.send(Message(data=message))
        else:
            data = ws.ws.send(TextMessage(data=str(message)))
        # Straight to the socket (its writer asked whether it has room); the
        # rest, if it took part, the waiting way.
        try:
            sent = ws.sock._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            ws.sock.sendall(memoryview(data)[sent:])

    def wait(self) -> Any:
        """The next message, waiting for it (while upgrading)."""
        ws = self.ws
        while ws.connected and not ws.input_buffer:
            data = ws.sock.recv(RECEIVE_BYTES)
            if not data:
                ws.connected = False
                break
            answer = self.take(data)
            if answer:
                ws.sock.sendall(answer)
        return ws.input_buffer.pop(0) if ws.input_buffer else None

    def take(self, data: bytes) -> bytes:
        """Feed what came to the protocol: messages join `ws.input_buffer`,
        a close ends the connection. What the protocol answers (a pong, a
        close's answer) is returned, to be written by whoever may wait."""
        ws = self.ws
        ws.ws.receive_data(data)
        sock, outbox = ws.sock, _Outbox()
        ws.sock = outbox  # what simple-websocket sends, collected
        try:
            going_on = ws._handle_events()
        finally:
            ws.sock = sock
        ws.connected = going_on and ws.connected
        return b"".join(outbox.parts)

    def close(self) -> None:
        """Say goodbye if the socket has room for it now (it is closed
        anyway), and close."""
        ws = self.ws
        if ws.connected:
            ws.connected = False
            try:
                goodbye = ws.ws.send(CloseConnection(CloseReason.NORMAL_CLOSURE))
                ws.sock._sock.send(goodbye, socket_module.MSG_DONTWAIT)
            except (OSError, LocalProtocolError):
                pass
        self.close_socket()

    def close_socket(self) -> None:
        self.ws.connected = False
        self.stop_watching()
        try:
            self.ws.sock.close()
        except OSError:
            pass

    def watch(self, callback: Callable[[], None]) -> None:
        import gevent

        if self.watcher is None:
            self.watcher = gevent.get_hub().loop.io(self.ws.sock.fileno(), 1)
        self.watcher.start(callback)

    def stop_watching(self) -> None:
        """Before its descriptor is closed: the loop must not watch it then."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()


class GeventReader(ParkedReader):
    """Reads one parked websocket's messages (under gevent) and hands them to
    its Engine.IO socket."""

    __slots__ = ("pool",)

    def __init__(
        self, parking: GeventParking, socket: Socket, ws: ParkedWebSocket, writer: Any
    ) -> None:
        super().__init__(socket, ws, writer, parking)
        self.pool: Any = None

    def park(self, pool: Any) -> None:
        self.pool = pool
        # Closed by the server (a ping unanswered, a disconnect): nothing more to read.
        self.writer.on_close = self.end
        self.ws.watch(self.readable)

    def readable(self) -> None:
        """Called by gevent's loop: something came, or the end."""
        watcher = self.ws.watcher
        if self.ended or watcher is None:
            return
        watcher.stop()
        self.parking.readers.put(self)

    def read_parked(self) -> None:
        if self.ended:
            return
        if self.read_what_came() and not self.ended:
            if self.writer.writing:
                # The client is not taking what it is sent (pongs to its
                # pings among it): nothing more is read from it until it has.
                self.socket.server.start_background_task(self._listen_once_written)
            else:
                self.ws.watch(self.readable)

    def _listen_once_written(self) -> None:
        self.writer.join()
        if not self.ended:
            self.ws.watch(self.readable)

    def read_what_came(self) -> bool:
        """Read what the socket holds, have Engine.IO receive each whole
        message; False once the connection is over."""
        ws, socket, server = self.ws, self.socket, self.socket.server
        data: bytes | None
        try:
            data = ws.ws.sock._sock.recv(RECEIVE_BYTES)  # never waits
        except BlockingIOError:
            data = None  # nothing new: what the protocol holds already, if anything
        except OSError:
            data = b""
        if data:
            try:
                answer = ws.take(data)
            except Exception as exc:
                server.logger.info('%s: Unexpected error "%s", closing connection', socket.sid, exc)
                data = b""
            else:
                if answer:
                    # Written by the connection's writer: a client that reads
                    # nothing never holds up a reader others count on.
                    self.writer.put(Frames(answer))
        while ws.ws.input_buffer:
            if not self.hand_on(ws.ws.input_buffer.pop(0)):
                return False
        if data == b"" or not ws.ws.connected:  # closed by the client
            self.close()
            return False
        return not self.ended

    def closed(self) -> None:
        self.ws.close_socket()

    def end(self) -> None:
        """Stop reading: nothing more will come, or nobody wants it."""
        if self.ended:
            return
        self.ended = True
        self.writer.on_close = None
        self.ws.stop_watching()
        if self.pool is not None:
            self.pool.let_go()  # its place among the connections is free again
        if self.writer.closed:
            self.ws.close_socket()


def _plain(sock: Any) -> bool:
    """A TCP socket without TLS: what the loop sees readable is the frames'."""
    import ssl

    if sock is None or isinstance(sock, ssl.SSLSocket) or hasattr(sock, "pending"):
        return False
    return hasattr(sock, "_sock") and hasattr(sock, "dup")


def park_websockets(eio: Any) -> GeventParking | None:
    """Have `eio` (an engineio.Server under gevent) park its open websockets
    where gunicorn's worker holds their places (`hold_places_in_gunicorn`)."""
    if eio.async_mode != "gevent":
        return None
    can_write = direct_writes.write_probe(eio.async_mode)
    if can_write is None:
        return None
    parking = GeventParking(eio, can_write, eio._async["websocket"])
    eio._async = {**eio._async, "websocket": parking.app}
    return parking

