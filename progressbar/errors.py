"""Errors that become a structured `{"ok": false, "error": ...}` answer, and
the one policy that turns any exception into such an answer."""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError
from redis.exceptions import OutOfMemoryError, RedisError

CODES = frozenset(
    {
        "invalid",
        "unknown_kind",
        "not_found",
        "limit",
        "unavailable",
        "internal",
        "unauthorized",
        # The service as a whole takes no more work right now (too many
        # unfinished tasks, or Redis near its memory limit); try again later.
        "busy",
    }
)

# Errors of Redis or the broker: answered `unavailable`.
UNAVAILABLE: tuple[type[BaseException], ...] = (RedisError, OperationalError, OSError)


class ProtocolError(Exception):
    """A request that cannot be served; `code` is one of CODES. `retry_after`:
    seconds after which the same request may succeed, when known (HTTP sends
    it as Retry-After)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def answer(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code, "message": self.message}}


class TaskError(Exception):
    """Raise from a task to fail it with this message shown to its owner.

    Any other exception fails the task too, but its owner sees only the
    exception's type: messages of unexpected errors may hold internals.
    """


class TaskCancelled(Exception):
    """Raised in the task by its reporter once its owner asked to cancel it."""


def not_found() -> ProtocolError:
    return ProtocolError("not_found", "no such task")


def protocol_error(exc: BaseException, log: logging.Logger, where: str) -> ProtocolError:
    """What to answer for `exc`, raised while serving `where`: its own answer,
    `unavailable` when Redis or the broker failed, else `internal` (logged
    with its traceback; the caller learns nothing of it)."""
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, OutOfMemoryError):
        log.warning("%s: Redis is at its maxmemory", where)
        return ProtocolError(
            "unavailable", "the task service is out of memory for new tasks, try again later"
        )
    if isinstance(exc, UNAVAILABLE):
        log.warning("%s: backend unreachable", where, exc_info=exc)
        return ProtocolError("unavailable", "the task service is unreachable, try again")
    log.error("%s failed", where, exc_info=exc)
    return ProtocolError("internal", "unexpected server error")
