"""What a client may send, on either front door: at most `MAX_BYTES` of
JSON that Python can read (nested too deeply, it cannot), answered `invalid`
otherwise; and the Socket.IO packet classes that hold a Socket.IO server to
the same rules (the extension's own also writes strict JSON).
"""

from __future__ import annotations

from typing import Any

from engineio import json as engineio_json
from socketio import packet

from ..errors import ProtocolError
from ..strict_json import dumps

# Bytes of one HTTP body or one Socket.IO message.
MAX_BYTES = 64 * 1024

# The event a Socket.IO event packet becomes when its payload cannot be read
# (not JSON, or nested too deeply) or names no event: the namespace answers
# it `invalid` through the packet's ack.
UNREADABLE = "\x00unreadable"
UNREADABLE_MESSAGE = "unreadable event: send JSON [event name, payload], not nested too deeply"
# Names only the server itself gives an event: one a client sends is nobody's
# connect or disconnect, and reaches no handler (the namespace answers it
# `invalid`, as any unknown event).
RESERVED = frozenset({"connect", "disconnect"})
RESERVED_MARK = "\x00client:"


def parse(body: bytes | str) -> Any:
    """A client's JSON document; ProtocolError `invalid` if it cannot be read."""
    try:
        return engineio_json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise ProtocolError("invalid", "the body is not valid JSON, or nested too deeply") from None


class Packet(packet.Packet):  # type: ignore[misc]
    """A Socket.IO packet whose event, when it cannot be read, becomes the
    event UNREADABLE with its ack id, instead of an error that no ack ever
    answers; a client's event named as one of the server's own (RESERVED)
    is marked, so that no connect or disconnect handler takes it. Its JSON
    is python-socketio's (or what the app set)."""

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, RecursionError):
            if self.packet_type != packet.EVENT:
                raise
            self.data, attachments = [UNREADABLE], 0
        named = isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        if self.packet_type == packet.EVENT and not named:
            self.data = [UNREADABLE]
        elif self.packet_type in (packet.EVENT, packet.BINARY_EVENT) and named:
            if self.data[0] in RESERVED:
                self.data = [RESERVED_MARK + self.data[0], *self.data[1:]]
        return attachments


class _StrictJSON:
    """Reads as python-engineio's json does (which bounds the length of
    integers); writes strict JSON."""

    loads = staticmethod(engineio_json.loads)
    dumps = staticmethod(dumps)


class StrictPacket(Packet):
    """The packets of the extension's own Socket.IO server (its `serializer`):
    unreadable events answered, and strict JSON out."""

    json = _StrictJSON


def answer_unreadable_events(server: Any) -> None:
    """Have an app's own Socket.IO server (python-socketio's) read events as
    `Packet` does, if it uses python-socketio's own packets: its other
    namespaces then drop an unreadable event instead of failing on it."""
    if getattr(server, "packet_class", None) is packet.Packet:
        server.packet_class = Packet
