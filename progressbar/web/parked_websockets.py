"""Open websockets read when they have something to say, not by a green thread each.

Under eventlet, a websocket is served by the request that opened it: its green
thread stays blocked reading the socket for as long as the connection lasts,
and with it the whole request (the C stack saved at the depth of a WSGI call,
about 6 KB, the Python frames of every layer, eventlet's request handler and
its buffers). For a page that mostly listens, that is most of what it costs.

Here, once a websocket is open and its Engine.IO socket connected, the request
ends but the connection stays: the socket is "parked" on eventlet's hub, and
when the client sends something it is read, handed to Engine.IO as its own
reader would, and the socket stays parked. The client sees the same protocol;
a parked connection costs its socket, its websocket and Engine.IO objects, and
a listener on the hub.

A whole small frame holding a Socket.IO event (nearly every message a page
sends) is read by the hub itself, as it finds it: python-socketio only decodes
it and queues it for the tasks that handle events, so nothing in its way
waits. The hub reads a bounded number of them a turn (`READ_BY_HUB`); the
rest, and every other message, is read by one of a few kept readers.

What it takes:
- `Parking.serve` is Engine.IO's websocket handler: the handshake is
  eventlet's, the upgrade from polling is Engine.IO's own sequence, writes
  go through a `direct_writes.Writer`.
- The request handler (`serve.py`'s protocol) leaves the socket open when
  its request parked it (`detach`).
- A parked websocket keeps its place in the server's pool of connections
  (`connection_pool`): the pool's size still bounds the connections served
  at once, parked or not.
- TLS sockets and old drafts' websockets, which may hold bytes out of the
  hub's sight, are read by their request's green thread as before (`parkable`).
"""

from __future__ import annotations

import io
import logging
import socket as socket_module
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

from engineio import packet
from engineio.socket import Socket

from . import direct_writes
from .parked_readers import KeptReaders, ParkedReader, connect, is_queued_event, next_message

log = logging.getLogger(__name__)

# Messages the hub reads itself in one turn (the socket events it found
# ready); past them, a turn's messages go to the readers. More a turn read a
# wave of events sooner but held its pushes and acks up longer (with 32, in
# `bench.churn`'s waves: push p99 about 20 ms and acks' about 240-310 ms,
# against about 10 ms and 170-190 ms with 4), and few turns find more.
READ_BY_HUB = 4

# Set in a request's environ once its websocket is parked, to the Parking:
# the request handler then leaves the connection open (`detach`).
PARKED = "progressbar.parked"


class Parking:
    """The websockets parked on one Engine.IO server, each holding its place
    in `pool` (the server's pool of connections) until it closes."""

    def __init__(
        self, eio: Any, pool: Any, can_write: Callable[[int], bool], websocket_app: Any
    ) -> None:
        self.pool = pool
        self.can_write = can_write
        # Engine.IO's eventlet websocket application class, which does the handshake.
        self.websocket_app = websocket_app
        # Read the websockets with a whole message waiting (which the hub
        # does not read itself), in the order they got one.
        self.readers = KeptReaders(eio)
        # Whether the server's Socket.IO events are queued for a few tasks
        # (`event_tasks`), found at the first message.
        self.events_queued: bool | None = None
        # Messages the hub may still read itself in this turn; the count is
        # given back as the turn ends (`_next_turn`).
        self.hub_may_read = READ_BY_HUB

    def hub_reads_one(self) -> bool:
        """Whether the hub, in its turn, may read one more message itself."""
        if self.hub_may_read == READ_BY_HUB:
            import eventlet.hubs

            # Runs once the hub has called every listener of this turn.
            eventlet.hubs.get_hub().schedule_call_global(0, self._next_turn)
        elif self.hub_may_read == 0:
            return False
        self.hub_may_read -= 1
        return True

    def _next_turn(self) -> None:
        self.hub_may_read = READ_BY_HUB

    def app(self, handler: Any, server: Any) -> Any:
        """Engine.IO's websocket application for `handler`, called as its class
        is: with Engine.IO's own handler, the socket is served here instead."""
        socket = getattr(handler, "__self__", None)
        if (
            isinstance(socket, Socket)
            and getattr(handler, "__func__", None) is Socket._websocket_handler
        ):
            handler = partial(self.serve, socket)
        return self.websocket_app(handler, server)

    def serve(self, socket: Socket, ws: Any) -> None:
        """Engine.IO's websocket handler: connect or upgrade, then read."""
        reader = connect(
            socket, ws, ws.socket, self.can_write, lambda writer: Reader(socket, ws, writer)
        )
        if reader is None:
            return
        if parkable(ws):
            reader.park(self, ws.environ)
            # eventlet sends a closing frame once the handler returns: not
            # to a connection that stays open.
            ws._send_closing_frame = _skip_once(ws)
            return
        while reader.read_one():
            pass


class Reader(ParkedReader):
    """Reads one websocket's messages (under eventlet) and hands them to its
    Engine.IO socket."""

    __slots__ = ("listener", "reading", "whole", "pending")

    def __init__(self, socket: Socket, ws: Any, writer: direct_writes.Writer) -> None:
        super().__init__(socket, ws, writer, None)
        self.listener: Any = None
        self.parking: Parking | None = None
        self.reading = False
        # The size of the whole frame waiting, read at once; 0: unknown.
        self.whole = 0
        # What the hub read but left to a reader: a message, the first part
        # of a frame of `whole` bytes (a bytearray), or the error reading it.
        self.pending: str | bytes | bytearray | Exception | None = None

    def park(self, parking: Parking, environ: dict[str, Any]) -> None:
        self.parking = parking
        environ[PARKED] = parking
        # Closed by the server (a ping unanswered, a disconnect): nothing
        # more to read.
        self.writer.on_close = self.end
        self.listen()

    def listen(self) -> None:
        import eventlet.hubs

        hub = eventlet.hubs.get_hub()
        self.listener = hub.add(
            hub.READ, self.ws.socket.fileno(), self.readable, self.gone, self.obsoleted
        )
        # The hub would keep the greenlet that registered the listener (this
        # request's, about to end) to throw a "closed" into it; it is told
        # through `gone` instead.
        self.listener.greenlet = hub.greenlet

    def readable(self, fd: int) -> None:
        """Called by the hub, in its own greenlet: something came, or the end."""
        import eventlet

        if self.reading or self.ended:
            return
        parking = self.parking
        whole = _whole_frame(self.ws.socket) if parking is not None else 0
        if whole and whole <= self.socket.server.max_http_buffer_size:
            # (A longer one is refused, which may wait to write the close.)
            # A small frame (what was peeked) may be read by the hub itself.
            small = whole <= PEEK
            if small and parking.hub_reads_one() and self.read_event_here(whole):  # type: ignore[union-attr]
                return  # read, and still listened to
            self.reading = True
            self.unlisten()
            self.whole = whole
            parking.readers.put(self)  # type: ignore[union-attr]
        else:
            self.reading = True
            self.unlisten()
            # Part of a frame, a control frame, or the end: read by a green
            # thread of its own, which may wait for the rest.
            eventlet.spawn_n(self.read_parked)

    def read_event_here(self, whole: int) -> bool:
        """Read the whole frame of `whole` bytes in the hub's own turn and,
        if it is an event python-socketio queues, hand it on: True. Anything
        else is kept in `pending` for a reader (False); nothing here waits."""
        try:
            data = _read_frame(self.ws, whole, wait=False)
        except Exception as exc:
            self.pending = exc  # for a reader to tell, and end the connection
            return False
        if isinstance(data, bytearray):
            self.pending = data  # part of the frame: a reader waits for the rest
            return False
        try:
            pkt = packet.Packet(encoded_packet=data)
        except Exception:
            pkt = None
        server = self.socket.server
        if pkt is None or not is_queued_event(self.parking, server, pkt):
            self.pending = data
            return False
        try:
            server._trigger_event("message", self.socket.sid, pkt.data, run_async=False)
        except Exception:
            import eventlet

            server.logger.exception("Unknown receive error")
            self.reading = True
            self.unlisten()
            eventlet.spawn_n(self.close)  # which may wait: not in the hub
        return True

    def read_parked(self) -> None:
        try:
            going_on = self.read_one()
        finally:
            self.reading = False
        if going_on and not self.ended:
            try:
                self.listen()
            except Exception:
                # Never left open and unread: its pongs would go unread too.
                log.exception("%s: could not wait for the next message", self.socket.sid)
                self.close()

    def read_one(self) -> bool:
        """Read a message (waiting for the rest of it, if only part came) and
        have Engine.IO receive it; False once the connection is over."""
        socket, server = self.socket, self.socket.server
        try:
            whole, self.whole = self.whole, 0
            pending, self.pending = self.pending, None
            if isinstance(pending, Exception):
                raise pending
            if isinstance(pending, bytearray):
                data = _read_frame(self.ws, whole, first=bytes(pending))
            elif pending is not None:
                data = pending
            elif whole:
                data = _read_frame(self.ws, whole)
            else:
                data = next_message(socket, self.ws)
        except Exception as exc:
            if not socket.closed:
                server.logger.info('%s: Unexpected error "%s", closing connection', socket.sid, exc)
            data = None
        if data is None:  # closed by the client
            self.close()
            return False
        return self.hand_on(data)

    def end(self) -> None:
        """Stop reading: nothing more will come, or nobody wants it."""
        if self.ended:
            return
        self.ended = True
        self.writer.on_close = None
        self.unlisten()
        if self.parking is not None:
            # Its place in the pool of connections is free again.
            self.parking.pool.sem.release()

    def obsoleted(self) -> None:
        """The hub dropped the listener itself: its socket's number was
        given to a new one, so this socket is closed."""
        self.listener = None
        self.end()

    def gone(self, _exc: BaseException) -> None:
        """The hub found the socket closed under its listener."""
        self.end()

    def unlisten(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            import eventlet.hubs

            eventlet.hubs.get_hub().remove(listener)


# Bytes looked at in the socket for a whole frame at once; a longer frame
# is measured against what the socket holds (FIONREAD).
PEEK = 4096


def _whole_frame(sock: Any) -> int:
    """The size of the whole unfragmented, masked text or binary frame the
    socket holds first, which can be read without waiting; 0 if there is
    none (part of a frame, a fragment, a control frame, nothing, or one
    `ws.wait()` must judge). Peeks, never reads."""
    import fcntl
    import termios

    try:
        head = sock.fd.recv(PEEK, socket_module.MSG_PEEK)
        if len(head) < 2:
            return 0
        first, second = head[0], head[1]
        if first & 0x70 or not first & 0x80 or first & 0x0F not in (1, 2):
            return 0  # extension bits, a fragment, or a control frame
        if not second & 0x80:
            return 0  # unmasked: eventlet's reader refuses it
        length, size = second & 0x7F, 6  # 2 of head, 4 of mask
        if length == 126:
            if len(head) < 4:
                return 0
            length, size = struct.unpack_from("!H", head, 2)[0], 8
        elif length == 127:
            if len(head) < 10:
                return 0
            length, size = struct.unpack_from("!Q", head, 2)[0], 14
        whole = size + length
        if whole <= len(head):
            return whole
        available = struct.unpack("i", fcntl.ioctl(sock.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return whole if available >= whole else 0
    except OSError:
        return 0


def _read_frame(
    ws: Any, size: int, *, wait: bool = True, first: bytes = b""
) -> str | bytes | bytearray:
    """The message of the whole frame of `size` bytes waiting on `ws`'s
    socket (as `_whole_frame` found it), read at once: the bytes are there.
    A text that is not UTF-8 raises ValueError, as in eventlet's reader.
    `first`: the frame's first bytes, read before. Should the socket hold
    less than `size`, the rest is waited for, as eventlet does; without
    `wait`, what was read is returned instead, as a bytearray."""
    raw = first + ws.socket.fd.recv(size - len(first)) if len(first) < size else first
    if len(raw) < size:  # not expected
        if not wait:
            return bytearray(raw)
        raw += ws._get_bytes(size - len(raw))
    length = raw[1] & 0x7F
    start = 2 if length < 126 else 4 if length == 126 else 10
    mask, payload = raw[start : start + 4], raw[start + 4 :]
    n = len(payload)
    if n:
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return payload.decode("utf-8") if raw[0] & 0x0F == 1 else payload


def parkable(ws: Any) -> bool:
    """Whether the hub sees all `ws` has to read: an RFC 6455 websocket
    reads exactly the bytes of each frame from its socket, leaving the rest
    in the kernel; an old draft's (Hixie) buffers what it read past a
    message, and a TLS socket may hold decrypted bytes of its own."""
    return direct_writes.plain_eventlet_websocket(ws)


def _skip_once(ws: Any) -> Callable[..., None]:
    def skip(*_args: Any, **_kwargs: Any) -> None:
        # Gone once skipped: a later close sends its closing frame.
        del ws._send_closing_frame

    return skip


def detach(protocol: Any) -> bool:
    """Called as eventlet's request handler finishes: if its request parked
    its websocket, let the handler go without closing the connection, and
    the connection keep the handler's place in the pool."""
    environ: dict[str, Any] = getattr(protocol, "environ", None) or {}
    parking = environ.pop(PARKED, None)
    if parking is None:
        return False
    from http.server import BaseHTTPRequestHandler

    import eventlet

    parking.pool.hold(eventlet.getcurrent())

    try:
        # Its buffered reader and writer of the socket, which stays open.
        BaseHTTPRequestHandler.finish(protocol)
    except OSError:
        pass
    # eventlet shuts the socket down and closes it when the request's green
    # thread ends; it is given a stand-in to close instead.
    protocol.conn_state[1] = protocol.connection = protocol.request = _Detached()
    # Socket.IO keeps the environ as long as the connection: without what
    # ties it to the finished request.
    environ.pop("eventlet.set_idle", None)
    environ.pop("eventlet.posthooks", None)
    environ["wsgi.input"] = environ["eventlet.input"] = io.BytesIO(b"")
    return True


class _Detached:
    """What eventlet closes at the end of a parked websocket's request."""

    def shutdown(self, *_args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def connection_pool(size: int) -> Any:
    """eventlet's pool of request green threads, of `size`, in which a
    parked websocket keeps the place of the request that opened it."""
    import eventlet

    class ConnectionPool(eventlet.GreenPool):  # type: ignore[misc]
        def __init__(self, size: int) -> None:
            super().__init__(size)
            # Requests ending whose connection stays, parked.
            self.holding: set[Any] = set()

        def hold(self, thread: Any) -> None:
            """`thread`'s place is not given back as it ends: its parked
            websocket gives it back once closed (`Reader.end`)."""
            self.holding.add(thread)

        def _spawn_done(self, coro: Any) -> None:
            if coro in self.holding:
                self.holding.discard(coro)
            else:
                self.sem.release()
            self.coroutines_running.discard(coro)
            # Nothing running (parked websockets are not): what `waitall`,
            # at the server's end, waits for; eventlet's own test, every
            # place free, would wait for the parked websockets too.
            if not self.coroutines_running:
                self.no_coros_running.send(None)

    return ConnectionPool(size)


def park_websockets(eio: Any, pool: Any) -> Parking | None:
    """Have `eio` (an engineio.Server under eventlet) park its open websockets,
    each keeping its place in `pool` (from `connection_pool`). Only for a
    server whose requests finish through `detach`."""
    if eio.async_mode != "eventlet" or not hasattr(pool, "hold"):
        return None
    can_write = direct_writes.write_probe(eio.async_mode)
    if can_write is None:
        return None
    parking = Parking(eio, pool, can_write, eio._async["websocket"])
    # The driver table is shared by every server of the process: this one
    # gets a copy of its own.
    eio._async = {**eio._async, "websocket": parking.app}
    return parking
