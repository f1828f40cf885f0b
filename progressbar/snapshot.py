"""The SNAPSHOT: the one shape in which a task's state is stored, pushed and
answered. Its fields, its states and the two places a snapshot is built in
Python live here; the Lua scripts, the OpenAPI schema and the tests derive
theirs from this module.
"""

from __future__ import annotations

from typing import Any

from .strict_json import finite_number

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "lost")
# After one of these a task never changes again.
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "lost"})
ACTIVE_STATES = frozenset(STATES) - TERMINAL_STATES

_NUMBER_OR_NULL = {"type": "number", "nullable": True}

# Every field, as an OpenAPI 3.0 schema. FIELDS: in every snapshot.
FIELDS: dict[str, dict[str, Any]] = {
    "task_id": {"type": "string"},
    "kind": {"type": "string"},
    "state": {"type": "string", "enum": list(STATES)},
    "current": {"type": "number", "description": "units done"},
    "total": {**_NUMBER_OR_NULL, "description": "units in all; null when unknown"},
    "percent": {**_NUMBER_OR_NULL, "minimum": 0, "maximum": 100},
    "message": {"type": "string", "description": "what the task says it is doing"},
    "rate": {**_NUMBER_OR_NULL, "description": "units per second, smoothed"},
    "eta": {**_NUMBER_OR_NULL, "description": "seconds left, once it means something"},
    "elapsed": {
        "type": "number",
        "description": "seconds since it started running (a group's: since it was created)",
    },
    "seq": {"type": "integer", "minimum": 1, "description": "grows with every stored state"},
    "created_at": {"type": "number", "description": "epoch seconds"},
    "updated_at": {"type": "number", "description": "epoch seconds"},
}
# Fields present only in some snapshots.
OPTIONAL_FIELDS: dict[str, dict[str, Any]] = {
    "result": {"description": "the task's JSON result, when succeeded"},
    "error": {"type": "string", "description": "a short message, when failed or lost"},
    "cancel_requested": {
        "type": "boolean",
        "enum": [True],
        "description": "its owner asked to cancel it and it has not stopped yet",
    },
    "children": {
        "type": "array",
        "description": "a group's parts, each a task of its own",
        "items": {
            "type": "object",
            "required": ["task_id", "state", "percent"],
            "properties": {
                "task_id": {"type": "string"},
                "state": {"type": "string", "enum": list(STATES)},
                "percent": {"type": "number", "minimum": 0, "maximum": 100},
            },
        },
    },
}

# The message of a task cancelled before any worker took it on.
CANCELLED_BEFORE_START = "Cancelled before it started"
# The message of a queued task.
WAITING_FOR_A_WORKER = "Waiting for a worker"

# The seq of the `lost` state pushed for a task whose record Redis no longer
# has: above any seq a record reaches (the largest integer every JSON client
# reads exactly), so every client takes it as newer; nothing follows it.
GONE_SEQ = 2**53 - 1
RECORD_GONE = "Its record was lost: Redis restarted without it."


def percent_of(current: float, total: float | None) -> float | None:
    """0–100 with two decimals, or None without a total."""
    if not total:
        return None
    return round(min(100.0, max(0.0, current * 100.0 / total)), 2)


def snapshot(
    task_id: str,
    kind: str,
    state: str,
    *,
    current: float = 0,
    total: float | None = None,
    message: str = "",
    rate: float | None = None,
    eta: float | None = None,
    elapsed: float = 0,
    created_at: float,
    updated_at: float,
) -> dict[str, Any]:
    """A SNAPSHOT without its seq, which the store gives it. Its numbers are
    finite: a `total`, `rate` or `eta` that is not (NaN, ±infinity) is
    unknown (None), a `current` that is not counts as 0. The message is text."""
    current = finite_number(current) or 0
    total = finite_number(total)
    rate = finite_number(rate)
    eta = finite_number(eta)
    return {
        "task_id": task_id,
        "kind": kind,
        "state": state,
        "current": current,
        "total": total,
        "percent": percent_of(current, total),
        "message": message if type(message) is str else str(message),
        "rate": None if rate is None else round(rate, 4),
        "eta": None if eta is None else round(eta, 2),
        "elapsed": round(elapsed, 3),
        "created_at": created_at,
        "updated_at": round(updated_at, 3),
    }


def queued_snapshot(task_id: str, kind: str, now: float) -> dict[str, Any]:
    """The SNAPSHOT of a task accepted but not yet picked up by a worker."""
    now = round(now, 3)
    return snapshot(
        task_id, kind, "queued", message=WAITING_FOR_A_WORKER, created_at=now, updated_at=now
    )


def gone_snapshot(task_id: str, now: float) -> dict[str, Any]:
    """The final SNAPSHOT of a task whose record is gone: `lost`, with GONE_SEQ."""
    now = round(now, 3)
    gone = snapshot(task_id, "", "lost", created_at=now, updated_at=now)
    return {**gone, "seq": GONE_SEQ, "error": RECORD_GONE}
