"""A websocket's packets written by whoever sends them, not by a writer task of
its own.

python-engineio (4.x) gives every websocket a queue and a task that waits on
it and writes what is put there: under eventlet or gevent a green thread each
(its stack, frames, timers), the largest part of an idle connection's memory
after the connection itself. Here, once a websocket is open, its queue is
replaced by a `Writer`: the green thread that sends a packet (the message
queue's listener delivering to a room, the reader answering a ping) writes it
at once, if the socket can take it now. If it cannot (a slow or gone client
whose buffers are full), a task is started for that connection alone, which
writes what waits, in order, and ends when nothing does: so a sender never
waits for a client, and a connection holds a writer task only while it has
something it could not yet write. That task waits as engineio's own writer
would have (under eventlet, up to the socket's timeout, ping interval plus
ping timeout, after which the connection is closed).
"""

from __future__ import annotations

import _socket
import logging
import select
import socket
import ssl
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from engineio.socket import Socket

from . import unpatched

log = logging.getLogger(__name__)

# What engineio 4.x starts for each websocket: the nested `writer` of
# `Socket._websocket_handler`, whose closure holds the socket and its websocket.
WRITER_QUALNAME = f"{Socket._websocket_handler.__qualname__}.<locals>.writer"
WRITER_FREEVARS = ("self", "ws")


class Writer:
    """Stands in for an open websocket's queue: what engineio puts there is written.

    `put(None)` is engineio's "no more": the websocket is closed once what
    waits is written. One task writes at a time (`writing`), so frames from
    several senders never interleave and leave in the order they were put;
    the check and the claim of `writing` have no switch between them, which
    holds for green threads (eventlet, gevent), the modes this is used in.
    """

    def __init__(
        self, ws: Any, writable: Callable[[], bool], spawn: Callable[[Callable[[], None]], Any]
    ) -> None:
        self.ws = ws
        self.writable = writable
        self.spawn = spawn
        # For eventlet's websockets: frames tried on the socket straight away.
        self.frames = NoWaitFrames.of(ws)
        # Made when a packet waits, dropped when none does: most of the
        # time a connection has nothing waiting, and an empty deque is 600 bytes.
        self.waiting: deque[Any] | None = None
        self.writing = False
        self.ending = False
        self.closed = False
        self.task: Any = None
        # Called once the websocket is closed, if set.
        self.on_close: Callable[[], None] | None = None

    def put(self, pkt: Any) -> None:
        if self.closed or self.ending:
            return
        if pkt is None:
            self.ending = True
        else:
            if self.waiting is None:
                self.waiting = deque()
            self.waiting.append(pkt)
        if not self.writing:
            self.writing = True
            self._write(inline=True)

    def join(self) -> None:
        """Wait until what was put is written (or the connection is closed)."""
        task = self.task
        if task is not None and self.writing:
            task.join()

    def task_done(self) -> None:
        """What a queue offers; nothing is counted here."""

    def qsize(self) -> int:
        return len(self.waiting or ())

    def _write(self, inline: bool) -> None:
        handed_on = False
        try:
            frames = self.frames
            if frames is not None and frames.rest is not None:
                frames.finish()
            while self.waiting and not self.closed:
                if inline:
                    if frames is not None:
                        written = frames.send_now(self.waiting[0])
                        if written is not None:
                            self.waiting.popleft()
                        if written:
                            continue
                    elif self.writable():
                        self.ws.send(self.waiting.popleft().encode())
                        continue
                    # The client is not taking what it was sent: a task of
                    # its own waits for it, the sender goes on.
                    self.task = self.spawn(self._write_later)
                    handed_on = True
                    return
                self.ws.send(self.waiting.popleft().encode())
        except Exception:
            # As engineio's writer: a connection that can't be written to is closed.
            log.debug("write failed, closing the websocket", exc_info=True)
            self._close()
        except BaseException:
            # The sender was stopped mid-write (killed, timed out): a frame
            # may be half written, and nobody would write the rest.
            self._close()
            raise
        finally:
            if not handed_on:
                self.writing = False
                if not self.waiting:
                    self.waiting = None
        if self.ending:
            self._close()

    def _write_later(self) -> None:
        self._write(inline=False)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.waiting = None
        try:
            if not _socket_closed(self.ws):
                self.ws.close()
        except Exception:
            log.debug("closing the websocket failed", exc_info=True)
        finally:
            if self.on_close is not None:
                self.on_close()


# Where a packet keeps its frame, once framed for a websocket.
FRAME = "_progressbar_frame"


class NoWaitFrames:
    """Frames of an eventlet RFC 6455 websocket on a plain socket, written to
    the socket as far as it takes them now: one system call a packet, where
    asking first whether it has room would make two."""

    __slots__ = ("ws", "fd", "lock", "rest", "shared")

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.fd = ws.socket.fd
        # A server's uncompressed frame of a packet is the same on every
        # websocket: one push to a room is framed once, for all its watchers.
        self.shared = not ws.client and not ws.extensions.get("permessage-deflate")
        # eventlet's own, which its other frames (a pong, the closing frame) take.
        self.lock = ws._sendlock
        # What the socket did not take of the last frame; the lock is held
        # until `finish` writes it.
        self.rest: memoryview | None = None

    @classmethod
    def of(cls, ws: Any) -> NoWaitFrames | None:
        return cls(ws) if plain_eventlet_websocket(ws) else None

    def send_now(self, pkt: Any) -> bool | None:
        """Write the frame of Engine.IO packet `pkt`: True if the socket took
        it all; False if it took part or none (the rest is kept for `finish`);
        None if another frame is being written, and this one was not begun."""
        # Packed first, as eventlet's own send does: nothing raises while
        # the lock is held but the send, which lets it go.
        frame = getattr(pkt, FRAME, None) if self.shared else None
        if frame is None:
            frame = self.ws._pack_message(pkt.encode(), masked=self.ws.client)
            if self.shared:
                setattr(pkt, FRAME, frame)
        if not self.lock.acquire(blocking=False):
            return None
        try:
            sent = self.fd.send(frame, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except BaseException:
            self.lock.release()
            raise
        if sent == len(frame):
            self.lock.release()
            return True
        self.rest = memoryview(frame)[sent:]
        return False

    def finish(self) -> None:
        """Write the rest of a frame the socket did not take at once, waiting for it."""
        rest, self.rest = self.rest, None
        try:
            if rest is not None:
                self.ws.socket.sendall(rest)
        finally:
            self.lock.release()


def plain_eventlet_websocket(ws: Any) -> bool:
    """Whether `ws` is an eventlet RFC 6455 websocket over the operating
    system's own socket, without TLS: its frames are exactly the bytes that
    socket carries, each read and written whole."""
    # Looked up, not imported: under gevent, eventlet is never loaded.
    eventlet_websocket = sys.modules.get("eventlet.websocket")
    if eventlet_websocket is None or not isinstance(ws, eventlet_websocket.RFC6455WebSocket):
        return False
    if hasattr(ws.socket, "pending"):
        return False  # TLS: the bytes on its socket are not the frames'
    # The operating system's socket under eventlet's green one (under
    # monkey patching `socket.socket` is the green one).
    fd = getattr(ws.socket, "fd", None)
    return isinstance(fd, _socket.socket) and not isinstance(fd, ssl.SSLSocket)


def write_directly(eio: Any) -> None:
    """Have `eio` (an engineio.Server under eventlet or gevent) write each
    websocket's packets from the task that sends them.

    Only engineio's per-websocket writer is taken over; if the library starts
    it otherwise than as that nested `writer`, or its websocket has no socket
    to ask whether it can be written to, it runs as before.
    """
    can_write = write_probe(eio.async_mode)
    if can_write is not None:
        take_over_writers(eio, can_write)


def write_probe(async_mode: str) -> Callable[[int], bool] | None:
    """`can_write(fd)` for `async_mode`: whether a socket has room now,
    never waiting; None in modes it does not apply to."""
    poll = unpatched.poll(async_mode)
    if poll is None:
        return None
    probe = poll()
    return lambda fd: _can_write(probe, fd)


def take_over_writers(eio: Any, can_write: Callable[[int], bool]) -> None:
    """Start a `Writer` wherever `eio` would start engineio's writer task;
    `can_write(fd)` says, without waiting, whether a socket has room."""
    start = eio.start_background_task

    def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
        found = _writer_closure(target) if not args and not kwargs else None
        if found is not None:
            socket, ws = found
            fd = _fileno(ws)
            if fd is not None:
                return attach(socket, ws, lambda: can_write(fd), start)
        return start(target, *args, **kwargs)

    eio.start_background_task = start_background_task


def attach(socket: Socket, ws: Any, writable: Callable[[], bool], spawn: Any) -> Writer:
    """Replace `socket`'s queue by a `Writer` of `ws`, and write what the queue
    held (its OPEN packet, or what a polling client had not fetched) first.

    A client upgrading from polling sends its UPGRADE packet once its last
    poll has returned, so no poll is still taking packets from that queue.
    """
    backlog = socket.queue
    empty = socket.server.get_queue_empty_exception()
    writer = Writer(ws, writable, spawn)
    socket.queue = writer
    while True:
        try:
            pkt = backlog.get(block=False)
        except empty:
            break
        writer.put(pkt)
    return writer


def _writer_closure(target: Any) -> tuple[Socket, Any] | None:
    code = getattr(target, "__code__", None)
    if getattr(target, "__qualname__", None) != WRITER_QUALNAME or code is None:
        return None
    if code.co_freevars != WRITER_FREEVARS:
        return None
    socket, ws = (cell.cell_contents for cell in target.__closure__)
    return (socket, ws) if isinstance(socket, Socket) else None


def _fileno(ws: Any) -> int | None:
    # eventlet's websocket has `socket`; engineio's simple-websocket wrapper
    # (gevent) has `ws.sock`.
    for sock in (getattr(ws, "socket", None), getattr(getattr(ws, "ws", None), "sock", None)):
        if sock is not None and hasattr(sock, "fileno"):
            return int(sock.fileno())
    return None


def _socket_closed(ws: Any) -> bool:
    """Whether eventlet's websocket already closed its socket (on a protocol
    error from the client): closing it again only logs a failed shutdown."""
    socket = getattr(ws, "socket", None)
    try:
        return socket is not None and socket.fileno() == -1
    except Exception:
        return False


def _can_write(probe: Any, fd: int) -> bool:
    """Whether `fd` has room to be written to now (it never waits). One poll
    object serves every check: with no switch inside one, they can't overlap."""
    probe.register(fd, select.POLLOUT)
    try:
        return bool(probe.poll(0))
    finally:
        probe.unregister(fd)
