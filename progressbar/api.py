"""The HTTP JSON API: the same tasks, identities and errors as the Socket.IO protocol.

For clients without Socket.IO and for scripts. Reads only, for now.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from .errors import ProtocolError, not_found
from .identity import current_identity
from .store import Store

bp = Blueprint("api", __name__, url_prefix="/api")

STATUS = {
    "invalid": 400,
    "unknown_kind": 400,
    "not_found": 404,
    "limit": 429,
    "unavailable": 503,
    "internal": 500,
}


def _store() -> Store:
    return current_app.extensions["progress_store"]


@bp.errorhandler(ProtocolError)
def protocol_error(exc: ProtocolError) -> tuple[Response, int]:
    return jsonify(exc.answer()), STATUS[exc.code]


@bp.errorhandler(RedisError)
def redis_error(exc: RedisError) -> tuple[Response, int]:
    return protocol_error(ProtocolError("unavailable", "the task service is unreachable"))


@bp.get("/tasks")
def list_tasks() -> dict[str, Any]:
    """This identity's tasks, newest first."""
    return {"ok": True, "tasks": _store().list(current_identity())}


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> dict[str, Any]:
    """One task's SNAPSHOT; another identity's task is not found, as a missing one."""
    snapshot = _store().get_owned(task_id, current_identity())
    if snapshot is None:
        raise not_found()
    return {"ok": True, "task": snapshot}
