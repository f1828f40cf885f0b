"""The Lua scripts behind every change of a task record, each atomic in Redis.

Their source is in `lua/`, one file a script, each run behind `prelude.lua`.

Record of a task, hash `{prefix}:task:{id}`: owner, seq, state, snapshot (JSON,
with seq), cancel (set when its owner asked to cancel it), claimed (set by the
delivery that runs it). Beside it: `{prefix}:owner:{owner}` (sorted set of the
owner's task ids by creation), `{prefix}:unfinished` and
`{prefix}:unfinished:owner|address:{who}` (sorted sets of unfinished units, a
task or a group's part, by creation: the limits), `{prefix}:running:owner|address:{who}`
(units claimed, for the fair share), `{prefix}:live` (sorted set: task id ->
heartbeat deadline, Redis time), `{prefix}:workers` (worker name -> last sign
of life) and `{prefix}:slots` (worker name -> pool processes). A record
started by a client keeps its `address`. Sorted sets of unfinished task ids by
Redis time, for the watchdog: `{prefix}:unsent` (created, message not yet
marked sent), `{prefix}:cancelling` (cancel asked, not obeyed yet),
`{prefix}:waiting` and `{prefix}:stranded` (queued, not yet claimed; stranded
ones say no worker is alive). Keys are built inside the scripts from the
prefix: one Redis, no cluster.

A group (a batch of parts) is a record with `children` (comma-separated ids);
each part has `parent`, `percent` (the highest it reached) and `error`. Any
change of a part recomputes the group's snapshot in the same script.

Every script that changes a snapshot gives it the next seq and publishes it on
the Socket.IO channel (`messages.push_template`): it is the only way a push is
made. ARGV of every script: the key prefix, the channel ('' publishes nothing),
'1' to publish on each task's own channel ('' on the shared one), then the
script's own arguments, which the scripts read as `args`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from .messages import push_template
from .snapshot import TERMINAL_STATES

NAMES = (
    "create",
    "discard",
    "claim",
    "write",
    "retry",
    "heartbeat",
    "cancel",
    "lose",
    "expired",
    "republish",
    "worker_seen",
    "live_workers",
    "overdue",
    "end_cancelled",
    "waiting",
)


def _lua_string(text: str) -> str:
    assert "]==]" not in text
    return f"[==[{text}]==]"


@cache
def prelude() -> str:
    """The shared functions, with the terminal states and the push format filled in."""
    head, middle, tail = (_lua_string(piece) for piece in push_template())
    fills = {
        "TERMINAL": ", ".join(f"{state} = true" for state in sorted(TERMINAL_STATES)),
        "PUSH_HEAD": head,
        "PUSH_MIDDLE": middle,
        "PUSH_TAIL": tail,
    }
    text = (files(__package__) / "lua" / "prelude.lua").read_text()
    for name, value in fills.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def source(name: str) -> str:
    """The full text of script `name` (one of NAMES), prelude included."""
    return prelude() + (files(__package__) / "lua" / f"{name}.lua").read_text()
