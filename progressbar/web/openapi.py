"""The OpenAPI description of the HTTP JSON API, served at {prefix}/openapi.json."""

from __future__ import annotations

from typing import Any

from ..errors import CODES
from ..snapshot import FIELDS, OPTIONAL_FIELDS
from ..state import state
from .payloads import MAX_BYTES

SNAPSHOT = {
    "type": "object",
    "required": list(FIELDS),
    "properties": {**FIELDS, **OPTIONAL_FIELDS},
}

ERROR = {
    "type": "object",
    "required": ["ok", "error"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(CODES)},
                "message": {"type": "string"},
            },
        },
    },
}


def _ok(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", *properties],
        "properties": {"ok": {"type": "boolean", "enum": [True]}, **properties},
    }


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "invalid input",
        401: "the app's identity loader knows nobody: sign in",
        403: "cross-site request",
        404: "no such task",
        413: f"a body over {MAX_BYTES // 1024} KB, refused unread",
        415: "not JSON",
        429: "a limit of this identity or client address: unfinished tasks, starts or new "
        "identities (Retry-After, when known)",
        503: "Redis or broker down (`unavailable`), or the service full (`busy`, Retry-After)",
    }
    return {str(s): _json({"$ref": "#/components/schemas/Error"}, reasons[s]) for s in statuses}


TASK = {"$ref": "#/components/schemas/Snapshot"}
TASK_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}


def openapi_document() -> dict[str, Any]:
    # The kinds a client may start: hidden ones only with START_HIDDEN_KINDS.
    every = state().settings.start_hidden_kinds
    kinds = sorted(k.name for k in state().kinds if every or not k.hidden)
    prefix = state().settings.api_url_prefix
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "progressbar",
            "version": "1",
            "description": "Start Celery tasks and follow their progress. Tasks belong to "
            "the caller's identity: by default a random id in the session cookie (set by the "
            "app's pages when it has a SECRET_KEY), or the app's signed-in user. "
            "State-changing requests must be JSON and same-origin.",
        },
        "paths": {
            f"{prefix}/tasks": {
                "post": {
                    "summary": "Start a task",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["kind"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "kind": {"type": "string", "enum": kinds},
                                        "params": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            _ok(task=TASK),
                            "queued; follow it at Location",
                            headers={"Location": {"schema": {"type": "string"}}},
                        ),
                        **_errors(400, 401, 403, 413, 415, 429, 503),
                    },
                },
                "get": {
                    "summary": "This identity's tasks, newest first",
                    "responses": {
                        "200": _json(_ok(tasks={"type": "array", "items": TASK}), "the tasks"),
                        **_errors(401, 429, 503),
                    },
                },
            },
            prefix + "/tasks/{task_id}": {
                "get": {
                    "summary": "One task",
                    "parameters": [TASK_ID],
                    "responses": {
                        "200": _json(_ok(task=TASK), "the task"),
                        **_errors(400, 401, 404, 429, 503),
                    },
                },
            },
            prefix + "/tasks/{task_id}/cancel": {
                "post": {
                    "summary": "Cancel a task",
                    "parameters": [TASK_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"type": "object", "additionalProperties": False}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            _ok(
                                task=TASK,
                                outcome={
                                    "type": "string",
                                    "enum": ["cancelled", "requested", "finished"],
                                },
                                message={"type": "string"},
                            ),
                            "what the cancel did",
                        ),
                        **_errors(400, 401, 403, 404, 413, 415, 429, 503),
                    },
                },
            },
        },
        "components": {"schemas": {"Snapshot": SNAPSHOT, "Error": ERROR}},
    }
