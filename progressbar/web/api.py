"""The HTTP JSON API: the same operations, identities, validation and error codes
as the Socket.IO protocol, for clients without Socket.IO and for scripts.

State-changing requests must be JSON (`Content-Type: application/json`, which a
cross-site form cannot send without a CORS preflight we never grant) and must
not come from a foreign `Origin`; the identity cookie is SameSite=Lax besides.
A body is read only up to `payloads.MAX_BYTES`, as a Socket.IO message, and
every answer is strict JSON.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response

from .. import service
from ..errors import ProtocolError, protocol_error
from ..state import state
from ..strict_json import dumps
from .address import client_address
from .identity import current_identity
from .openapi import openapi_document
from .origins import origin_allowed
from .payloads import MAX_BYTES, parse

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
    "busy": 503,
}


def answer(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`body` as strict JSON (the host app's JSON settings are its own)."""
    return Response(dumps(body), status, headers, mimetype="application/json")


def error(
    code: str, message: str, status: int | None = None, retry_after: float | None = None
) -> Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return answer(ProtocolError(code, message).answer(), status or STATUS[code], headers)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    code = "not_found" if exc.code == 404 else "invalid"
    message = exc.description or exc.name
    if isinstance(exc, RequestEntityTooLarge):
        message = f"the body is larger than {MAX_BYTES // 1024} KB"
    response = error(code, message, exc.code)
    allowed = getattr(exc, "valid_methods", None)
    if allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


@bp.errorhandler(Exception)
def refused(exc: Exception) -> Response:
    # ProtocolErrors answer themselves; others are `unavailable` or `internal`.
    refusal = protocol_error(exc, log, f"api {request.endpoint}")
    return error(refusal.code, refusal.message, retry_after=refusal.retry_after)


@bp.before_request
def bound_the_body() -> None:
    # Flask reads no more than this of this request (413 beyond it, before
    # reading, when Content-Length says so); the host's MAX_CONTENT_LENGTH
    # holds for its own routes.
    request.max_content_length = MAX_BYTES


@bp.before_request
def guard_state_changes() -> Response | None:
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
    body = request.get_data()
    return parse(body) if body else None


@bp.post("/tasks")
def start_task() -> Response:
    """Start a task: 202, its SNAPSHOT, and where to follow it."""
    snapshot = service.start_task(_json_body(), current_identity(), address=client_address())
    location = url_for("progressbar_api.get_task", task_id=snapshot["task_id"])
    return answer({"ok": True, "task": snapshot}, 202, {"Location": location})


@bp.get("/tasks")
def list_tasks() -> Response:
    """This identity's tasks, newest first."""
    return answer({"ok": True, "tasks": service.list_tasks(current_identity())})


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> Response:
    """One task's SNAPSHOT; another identity's task is not found, as a missing one."""
    return answer({"ok": True, "task": service.get_task(task_id, current_identity())})


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id: str) -> Response:
    """Cancel a task: its SNAPSHOT, the outcome and a message, as the `cancel` event."""
    service.checked_payload(_json_body(), set())
    task_id = service.checked_task_id(task_id)
    return answer({"ok": True, **service.cancel_task(task_id, current_identity())})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.0 description of this API."""
    return answer(openapi_document())
