"""The HTTP JSON API: the same operations, identities, validation and error codes
as the Socket.IO protocol, for clients without Socket.IO and for scripts.

State-changing requests must be JSON (`Content-Type: application/json`, which a
cross-site form cannot send without a CORS preflight we never grant) and must
not come from a foreign `Origin`; the identity cookie is SameSite=Lax besides.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .. import service
from ..errors import ProtocolError, protocol_error
from ..state import state
from .identity import current_identity
from .openapi import openapi_document
from .origins import origin_allowed

log = logging.getLogger(__name__)

# Registered under the API_URL_PREFIX setting (/api by default); its name is
# prefixed so that it cannot clash with a host's own `api` blueprint.
bp = Blueprint("progressbar_api", __name__)

STATUS = {
    "invalid": 400,
    "unknown_kind": 400,
    "not_found": 404,
    "limit": 429,
    "unavailable": 503,
    "internal": 500,
    "unauthorized": 401,
}


def error(code: str, message: str, status: int | None = None) -> tuple[Response, int]:
    return jsonify(ProtocolError(code, message).answer()), status or STATUS[code]


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[Response, int]:
    code = "not_found" if exc.code == 404 else "invalid"
    response, status = error(code, exc.description or exc.name, exc.code)
    allowed = getattr(exc, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response, status


@bp.errorhandler(Exception)
def refused(exc: Exception) -> tuple[Response, int]:
    # ProtocolErrors answer themselves; others are `unavailable` or `internal`.
    answer = protocol_error(exc, log, f"api {request.endpoint}")
    return error(answer.code, answer.message)


@bp.before_request
def guard_state_changes() -> tuple[Response, int] | None:
    if request.method != "POST":
        return None
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(
        origin, request.environ, state().settings.allowed_origins
    ):
        return error("invalid", "cross-site request refused", 403)
    if not request.is_json:
        return error("invalid", "send JSON (Content-Type: application/json)", 415)
    return None


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        raise ProtocolError("invalid", "the body is not valid JSON")
    return body


@bp.post("/tasks")
def start_task() -> tuple[Response, int, dict[str, str]]:
    """Start a task: 202, its SNAPSHOT, and where to follow it."""
    snapshot = service.start_task(_json_body(), current_identity())
    location = url_for("progressbar_api.get_task", task_id=snapshot["task_id"])
    return jsonify({"ok": True, "task": snapshot}), 202, {"Location": location}


@bp.get("/tasks")
def list_tasks() -> dict[str, Any]:
    """This identity's tasks, newest first."""
    return {"ok": True, "tasks": service.store().list(current_identity())}


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> dict[str, Any]:
    """One task's SNAPSHOT; another identity's task is not found, as a missing one."""
    return {"ok": True, "task": service.get_task(task_id, current_identity())}


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id: str) -> dict[str, Any]:
    """Cancel a task: its SNAPSHOT, the outcome and a message, as the `cancel` event."""
    service.checked_payload(_json_body(), set())
    task_id = service.checked_task_id(task_id)
    return {"ok": True, **service.cancel_task(task_id, current_identity())}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.0 description of this API."""
    return openapi_document()
