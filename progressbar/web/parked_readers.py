"""What reading a parked websocket is, whatever the server underneath
(`parked_websockets` under eventlet, `gevent_parking` under gunicorn's gevent
worker): a few kept readers taking turns, each message handed to Engine.IO
(a Socket.IO event straight to python-socketio), the upgrade from polling,
and the end of a connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from engineio import exceptions, packet
from engineio.socket import Socket

from . import direct_writes
from .event_tasks import EventTasks, not_to_survive

log = logging.getLogger(__name__)

R = TypeVar("R", bound="ParkedReader")

# Green threads reading parked websockets' messages: a burst of messages (a
# thousand pages subscribing at once) is read a few at a time, each reader
# letting the loop look for other work between two, so a push that comes
# meanwhile waits behind a few, not behind the whole burst. Started at the
# first message and kept: one started for each message would cost more than
# most messages' reading.
READERS = 4

# How a Socket.IO event packet begins (python-socketio's EVENT).
EVENT_PACKET = "2"


def is_queued_event(parking: Any, server: Any, pkt: packet.Packet) -> bool:
    """Whether `pkt` is a Socket.IO event which python-socketio, once it has
    decoded it, queues for the tasks that handle events: nothing in its way
    waits, so it is handed on by the reader itself. What the server does is
    found once, and kept on `parking` (its `events_queued`)."""
    if pkt.packet_type != packet.MESSAGE or not isinstance(pkt.data, str):
        return False
    if not pkt.data.startswith(EVENT_PACKET):
        return False  # a connect, a disconnect, an ack: Engine.IO's way
    if parking.events_queued is None:
        handler = server.handlers.get("message")
        socketio = getattr(handler, "__self__", None)
        tasks = getattr(socketio, "start_background_task", None)
        parking.events_queued = isinstance(tasks, EventTasks) and bool(
            getattr(socketio, "async_handlers", False)
        )
    return bool(parking.events_queued)


class KeptReaders:
    """`READERS` green threads reading the parked websockets put here, in the
    order they had something to say; started, in `eio`'s async mode, with
    the first."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        self.ready: Any = None

    def put(self, reader: ParkedReader) -> None:
        if self.ready is None:
            self.ready = self.eio.create_queue()
            for _ in range(READERS):
                self.eio.start_background_task(self._read_forever)
        self.ready.put(reader)

    def _read_forever(self) -> None:
        while True:
            reader = self.ready.get()
            try:
                reader.read_parked()
            except BaseException as exc:  # a Timeout too: the reader goes on
                if not_to_survive(exc):
                    raise
                log.exception("%s: reading failed", reader.socket.sid)
            if self.ready.qsize():
                # More waiting: the loop's turn first (pushes, other sockets).
                # Otherwise `get` gives it the turn anyway.
                self.eio.sleep(0)


class ParkedReader:
    """Reads one parked websocket's messages and hands them to its Engine.IO
    socket; what each server's reader shares."""

    __slots__ = ("socket", "ws", "writer", "parking", "ended")

    def __init__(self, socket: Socket, ws: Any, writer: Any, parking: Any) -> None:
        self.socket = socket
        self.ws = ws
        self.writer = writer
        self.parking = parking
        self.ended = False

    def read_parked(self) -> None:
        raise NotImplementedError

    def hand_on(self, data: Any) -> bool:
        """Have Engine.IO receive message `data`; False once the connection is over."""
        socket, server = self.socket, self.socket.server
        try:
            pkt = packet.Packet(encoded_packet=data)
            if self.parking is not None and is_queued_event(self.parking, server, pkt):
                # Engine.IO would start a green thread to hand it on, and
                # python-socketio only decodes it and queues it: done here.
                server._trigger_event("message", socket.sid, pkt.data, run_async=False)
            else:
                socket.receive(pkt)
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            server.logger.info("Receive error -- socket is closed")
            self.close()
            return False
        except Exception:
            server.logger.exception("Unknown receive error")
            self.close()
            return False
        return not self.ended

    def close(self) -> None:
        """The connection is over: what waits is written, then it is closed.
        A client slow to take what waits is waited for by a green thread of
        its own, never by one of the readers others count on."""
        self.end()
        self.socket.queue.put(None)
        if self.writer.writing:
            self.socket.server.start_background_task(self._close_once_written)
        else:
            self._close_once_written()

    def _close_once_written(self) -> None:
        socket, server = self.socket, self.socket.server
        self.writer.join()
        socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        # As Engine.IO does once its own websocket handler returns.
        if socket.closed and server.sockets.get(socket.sid) is socket:
            del server.sockets[socket.sid]
        self.closed()

    def closed(self) -> None:
        """The Engine.IO socket is closed: anything of the connection's own to let go."""

    def end(self) -> None:
        """Stop reading: nothing more will come, or nobody wants it."""
        raise NotImplementedError


def connect(
    socket: Socket,
    ws: Any,
    sock: Any,
    can_write: Callable[[int], bool],
    reader_of: Callable[[direct_writes.Writer], R],
) -> R | None:
    """Engine.IO's websocket handler up to reading: connect, or upgrade from
    polling; then the socket's packets go to a writer of `ws` (on `sock`),
    and its reader (`reader_of(writer)`) is returned. None if there is
    nothing to read: a failed upgrade, or closed as what waited was written
    (a session closed during its upgrade, a client gone)."""
    server = socket.server
    sock.settimeout(server.ping_interval + server.ping_timeout)
    if socket.connected and not upgrade(socket, ws):
        return None
    socket.connected = socket.upgraded = True
    fd = sock.fileno()
    writer = direct_writes.attach(socket, ws, lambda: can_write(fd), server.start_background_task)
    server.logger.info("%s: Upgrade to websocket successful", socket.sid)
    reader = reader_of(writer)
    if writer.closed or socket.closed:
        reader.close()
        return None
    return reader


def upgrade(socket: Socket, ws: Any) -> bool:
    """A polling connection moving to this websocket: Engine.IO's probe, then
    its upgrade packet (the client's half of it is in engine.io's protocol)."""
    socket.upgrading = True
    try:
        probe = packet.Packet(encoded_packet=next_message(socket, ws))
        if probe.packet_type != packet.PING or probe.data != "probe":
            socket.server.logger.info("%s: Failed websocket upgrade, no PING packet", socket.sid)
            return False
        ws.send(packet.Packet(packet.PONG, data="probe").encode())
        socket.queue.put(packet.Packet(packet.NOOP))  # ends the client's last poll
        upgrade = packet.Packet(encoded_packet=next_message(socket, ws))
        if upgrade.packet_type != packet.UPGRADE:
            socket.upgraded = False
            socket.server.logger.info(
                "%s: Failed websocket upgrade, expected UPGRADE packet", socket.sid
            )
            return False
        return True
    finally:
        socket.upgrading = False


def next_message(socket: Socket, ws: Any) -> Any:
    """The next message of `ws`, waiting for it; refused past Engine.IO's size limit."""
    data = ws.wait()
    if data and len(data) > socket.server.max_http_buffer_size:
        raise ValueError("packet is too large")
    return data
