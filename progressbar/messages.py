"""What crosses between processes besides task records: the mark on a task
message sent by `start`, and the push of a snapshot on the Socket.IO channel.

A push is python-socketio's own message-queue message (an `emit` of `EVENT` to
the task's room in `NAMESPACE`), so a web process's Socket.IO server delivers
it as if it had emitted it. The store's scripts publish it from Lua, in the
same round trip as the write; this module is the one place that knows its
format, which is python-socketio 5.x's (hence the `<6` pin).

A push goes on its task's own channel (`task_channel`), which only the web
processes with a watcher of the task listen to, so a process never hears the
pushes of rooms it does not host. Under an app's own Socket.IO server, whose
manager listens to the shared channel alone, pushes go on the shared channel.
"""

from __future__ import annotations

import json
from typing import Any

# The Socket.IO namespace of the protocol, and the event of every push.
NAMESPACE = "/progress"
EVENT = "progress"

# A Celery message header set by `start`: a worker then knows the task has
# (or had) a record, and does not run it if the record is gone.
SENT_BY_START = "progressbar"

# No web process has this host id, so every one of them delivers the push.
_HOST_ID = "progressbar-store"
_SNAPSHOT, _ROOM = "\x00snapshot\x00", "\x00room\x00"


def push_message(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The queue message that makes every web process emit `snapshot` to its room."""
    return {
        "method": "emit",
        "event": EVENT,
        "data": [snapshot],
        "binary": False,
        "namespace": NAMESPACE,
        "room": snapshot["task_id"],
        "skip_sid": None,
        "callback": None,
        "host_id": _HOST_ID,
    }


def task_channel(channel: str, task_id: str) -> str:
    """The channel of `task_id`'s pushes, beside the shared `channel`."""
    return f"{channel}:{task_id}"


def push_template() -> tuple[str, str, str]:
    """The push as text in three pieces, for Lua to join around a stored
    snapshot's JSON and its task id: head .. snapshot .. middle .. id .. tail."""
    text = json.dumps(push_message({"task_id": _ROOM}), separators=(",", ":"))
    text = text.replace(json.dumps({"task_id": _ROOM}, separators=(",", ":")), _SNAPSHOT)
    head, rest = text.split(_SNAPSHOT)
    middle, tail = rest.split(json.dumps(_ROOM).strip('"'))
    return head, middle, tail


_HEAD, _MIDDLE, _TAIL = (piece.encode() for piece in push_template())


def push_parts(raw: bytes) -> tuple[bytes, str] | None:
    """A store push's snapshot (its JSON text) and room, read from its raw
    text without decoding it; None if `raw` is not a store push."""
    if not (raw.startswith(_HEAD) and raw.endswith(_TAIL)):
        return None
    end = len(raw) - len(_TAIL)
    # The last occurrence: the snapshot before it may hold the same text.
    at = raw.rfind(_MIDDLE, len(_HEAD), end)
    if at < 0:
        return None
    return raw[len(_HEAD) : at], raw[at + len(_MIDDLE) : end].decode("utf-8", "replace")


def decode_push(raw: str | bytes) -> dict[str, Any] | None:
    """The snapshot a message on the channel carries, or None if it is not a push."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if (message.get("method"), message.get("event"), message.get("namespace")) != (
        "emit",
        EVENT,
        NAMESPACE,
    ):
        return None
    data = message.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    return data[0]
