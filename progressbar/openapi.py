"""The OpenAPI description of the HTTP JSON API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from .errors import CODES
from .reporter import queued_snapshot
from .state import state

NUMBER_OR_NULL = {"type": "number", "nullable": True}

SNAPSHOT = {
    "type": "object",
    # Every field of queued_snapshot() is always there, and seq.
    "required": [*queued_snapshot("", "", 0), "seq"],
    "properties": {
        "task_id": {"type": "string"},
        "kind": {"type": "string"},
        "state": {
            "type": "string",
            "enum": ["queued", "running", "succeeded", "failed", "cancelled", "lost"],
        },
        "current": {"type": "number"},
        "total": NUMBER_OR_NULL,
        "percent": {"type": "number", "nullable": True, "minimum": 0, "maximum": 100},
        "message": {"type": "string"},
        "rate": NUMBER_OR_NULL,
        "eta": NUMBER_OR_NULL,
        "elapsed": {"type": "number"},
        "seq": {"type": "integer", "minimum": 1},
        "created_at": {"type": "number"},
        "updated_at": {"type": "number"},
        "result": {"description": "the task's JSON result, when succeeded"},
        "error": {"type": "string", "description": "a short message, when failed or lost"},
        "cancel_requested": {"type": "boolean"},
    },
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
        403: "cross-site request",
        404: "no such task",
        415: "not JSON",
        429: "too many unfinished tasks",
        503: "Redis or broker down",
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
    kinds = sorted(state().kinds.names())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "progressbar",
            "version": "1",
            "description": "Start Celery tasks and follow their progress. Identity is the "
            "session cookie set by any response; state-changing requests must be JSON and "
            "same-origin.",
        },
        "paths": {
            "/api/tasks": {
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
                        **_errors(400, 403, 415, 429, 503),
                    },
                },
                "get": {
                    "summary": "This identity's tasks, newest first",
                    "responses": {
                        "200": _json(_ok(tasks={"type": "array", "items": TASK}), "the tasks"),
                        **_errors(503),
                    },
                },
            },
            "/api/tasks/{task_id}": {
                "get": {
                    "summary": "One task",
                    "parameters": [TASK_ID],
                    "responses": {
                        "200": _json(_ok(task=TASK), "the task"),
                        **_errors(400, 404, 503),
                    },
                },
            },
            "/api/tasks/{task_id}/cancel": {
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
                        **_errors(400, 403, 404, 415, 503),
                    },
                },
            },
        },
        "components": {"schemas": {"Snapshot": SNAPSHOT, "Error": ERROR}},
    }
