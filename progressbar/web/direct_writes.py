"""Pushes written straight to their watchers' websockets, under eventlet.

python-engineio sends each packet through a queue per connection, read by a
writer green thread per connection that frames the packet and writes it. For
a push to a room of N watchers that is, N times: a queue put, a timer to wake
the writer, a switch to it and back, a timeout timer for its next wait, the
packet framed, and the write: at 10,000 deliveries a second, most of the web
process's time.

Here a push is framed once, and written from the green thread that received
it to each websocket whose writer is idle, nothing of its own waiting, with
one non-blocking send each. A connection with anything queued, or whose
writer is busy, gets the push through its queue as before, so the packets of
one connection keep their order (an answer, then the pushes after it). A send
that the socket takes only in part is finished by a green thread of its own,
which holds the websocket's send lock meanwhile, so nothing else is written
before the rest of the frame.

Only plain (not TLS), uncompressed websockets take this path: a compressed
connection's frames depend on what it was sent before. So the offer of
permessage-deflate that browsers make is declined: eventlet would otherwise
keep a zlib compressor for each connection (about 90 KB of memory each, once
it has sent a frame) and compress every push once per watcher, to save a few
hundred bytes a push.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from engineio import packet as eio_packet

log = logging.getLogger(__name__)


def text_frame(text: str) -> bytes:
    """An unmasked, final RFC 6455 text frame of `text`, as a server sends it."""
    data = text.encode()
    n = len(data)
    if n <= 125:
        head = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + data


class DirectWrites:
    """The websockets of one Engine.IO server (eventlet), and the writes to them."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        # Websocket of each Engine.IO session, while its handler runs.
        self.websockets: dict[str, Any] = {}
        # Sessions whose last frame is still being finished by a green thread.
        self.finishing: set[str] = set()

    def send(self, eio_sids: list[str], pkt: eio_packet.Packet) -> None:
        """Send one packet to each of these sessions: straight when it can."""
        frame = b""
        sockets = self.eio.sockets
        for sid in eio_sids:
            ws = self.websockets.get(sid)
            socket = sockets.get(sid)
            if ws is None or socket is None or not self._idle(sid, socket):
                self.eio.send_packet(sid, pkt)
                continue
            if not socket.check_ping_timeout():
                continue  # gone: it is being closed
            if not frame:
                frame = text_frame(pkt.encode())
            self._write(sid, ws, frame)

    def _idle(self, sid: str, socket: Any) -> bool:
        # Its writer waits on an empty queue: nothing queued, nothing being
        # written (a writer mid-write is not waiting), and no frame of ours
        # being finished.
        queue = socket.queue
        return (
            socket.upgraded
            and not socket.upgrading
            and not socket.closing
            and not socket.closed
            and queue.getting() > 0
            and not queue.qsize()
            and sid not in self.finishing
        )

    def _write(self, sid: str, ws: Any, frame: bytes) -> None:
        try:
            sent = ws.socket.fd.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the connection is gone: its reader sees it and closes it
        if sent < len(frame):
            # Nothing else may be written until the rest is: the writer takes
            # this lock for each of its frames.
            ws._sendlock.acquire()
            self.finishing.add(sid)
            self.eio.start_background_task(self._finish, sid, ws, frame[sent:])

    def _finish(self, sid: str, ws: Any, rest: bytes) -> None:
        try:
            ws.socket.sendall(rest)
        except OSError:
            pass  # the connection is gone: its reader sees it and closes it
        finally:
            self.finishing.discard(sid)
            ws._sendlock.release()

    def handler(self, handler: Any) -> Any:
        """Engine.IO's websocket handler (a bound method of its Socket),
        keeping the websocket known while it runs."""
        socket = getattr(handler, "__self__", None)
        if socket is None:
            return handler

        def handle(ws: Any) -> Any:
            if _plain(ws):
                self.websockets[socket.sid] = ws
            try:
                return handler(ws)
            finally:
                self.websockets.pop(socket.sid, None)

        return handle


def _plain(ws: Any) -> bool:
    """A websocket this module can write to: eventlet's, over a plain socket,
    uncompressed, with the send lock its own writes take."""
    from eventlet.greenio import GreenSocket
    from eventlet.semaphore import Semaphore

    return (
        type(getattr(ws, "socket", None)) is GreenSocket
        and not getattr(ws, "extensions", None)
        and not getattr(ws, "client", True)
        and isinstance(getattr(ws, "_sendlock", None), Semaphore)
    )


def install(eio: Any) -> DirectWrites | None:
    """Have `eio` (an engineio.Server) tell a DirectWrites its websockets; None
    unless it serves under eventlet with the driver this was written for."""
    drivers = getattr(eio, "_async", None)
    if getattr(eio, "async_mode", None) != "eventlet" or not isinstance(drivers, dict):
        return None
    base = drivers.get("websocket")
    if base is None or not callable(getattr(eio, "send_packet", None)):
        return None
    writes = DirectWrites(eio)

    class WebSocket(base):  # type: ignore[misc,valid-type]
        def __init__(self, handler: Any, server: Any) -> None:
            super().__init__(writes.handler(handler), server)

        if hasattr(base, "_negotiate_permessage_deflate"):
            # eventlet's choice among the client's offers; None: uncompressed.
            def _negotiate_permessage_deflate(self, extensions: Any) -> None:
                return None

    # A copy: the driver's table is shared by every server of the process.
    eio._async = {**drivers, "websocket": WebSocket}
    log.info("pushes are written straight to idle websockets")
    return writes
