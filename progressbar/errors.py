"""Errors that become a structured `{"ok": false, "error": ...}` answer."""

from __future__ import annotations

from typing import Any

CODES = frozenset(
    {"invalid", "unknown_kind", "not_found", "limit", "unavailable", "internal", "unauthorized"}
)


class ProtocolError(Exception):
    """A request that cannot be served; `code` is one of CODES."""

    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    def answer(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code, "message": self.message}}


class TaskError(Exception):
    """Raise from a task to fail it with this message shown to its owner.

    Any other exception fails the task too, but its owner sees only the
    exception's type: messages of unexpected errors may hold internals.
    """


def not_found() -> ProtocolError:
    return ProtocolError("not_found", "no such task")
