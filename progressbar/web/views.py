"""The extension's HTTP routes: the health check (HEALTH_URL, /healthz by
default) and the browser client's modules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, send_from_directory
from redis.exceptions import RedisError, ResponseError
from werkzeug.wrappers import Response

from ..errors import ProtocolError
from ..state import state
from .api import error
from .identity import session_identity

bp = Blueprint("progressbar", __name__)

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
# socket.io-client's browser build: copied into the package when a wheel is
# built; read from node_modules in a source checkout (`npm ci`).
VENDOR = {
    "socket.io.esm.min.js": "socket.io-client/dist",
    "socket.io.esm.min.js.map": "socket.io-client/dist",
}
NODE_MODULES = PACKAGE.parent / "node_modules"


@bp.get("/progressbar/identity")
def identity() -> Response | tuple[Response, int]:
    """Give this browser its default identity, if it has none: the browser
    client asks before it connects, so the connection carries the cookie."""
    if state().extension.uses_session_identity and current_app.secret_key:
        try:
            session_identity()
        except ProtocolError as exc:
            # Too many new identities for this address: refused as the HTTP API refuses.
            return error(exc.code, exc.message, retry_after=exc.retry_after)
    response = Response(status=204)
    response.headers["Cache-Control"] = "no-store"
    return response


def memory_of(info: dict[str, Any]) -> dict[str, Any]:
    """Redis memory as /healthz shows it: bytes used, the `maxmemory` limit
    (0: none), and whether it is under pressure (past the memory guard's
    limit, where new tasks are refused `busy`; reads still work)."""
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    guard = state().admission.memory_limit(limit)
    return {"used_bytes": used, "max_bytes": limit, "pressure": bool(guard) and used > guard}


def healthz() -> tuple[dict[str, Any], int]:
    """Is Redis reachable, and is at least one worker alive? 200 if both, else
    503. `status` says more: 'ok', 'memory_pressure' (Redis near or at its
    `maxmemory`: starts may be refused) or 'unavailable'."""
    store = state().store
    started = time.perf_counter()
    redis: dict[str, Any]
    try:
        # Seen within three heartbeats: one late beat is not a dead worker.
        workers = store.live_workers(3 * state().settings.heartbeat_interval)
        redis = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        try:
            redis["memory"] = memory_of(store.redis.info("memory"))  # type: ignore[arg-type]
        except ResponseError:
            pass  # INFO refused (a Redis ACL): memory unknown
    except RedisError as exc:
        workers, redis = [], {"ok": False, "error": type(exc).__name__}
    healthy = redis["ok"] and bool(workers)
    status = "unavailable"
    if healthy:
        status = "memory_pressure" if redis["memory"]["pressure"] else "ok"
    body = {
        "ok": healthy,
        "status": status,
        "redis": redis,
        "workers": {"ok": bool(workers), "alive": workers},
    }
    return body, 200 if healthy else 503


@bp.get("/progressbar/static/<path:filename>")
def static(filename: str) -> Response:
    """The browser client (ES modules), and socket.io-client for it."""
    if filename.startswith("vendor/"):
        name = filename.removeprefix("vendor/")
        if name not in VENDOR:
            abort(404)
        for folder in (STATIC / "vendor", NODE_MODULES / VENDOR[name]):
            if (folder / name).is_file():
                return send_from_directory(folder, name)
        abort(404)
    # No max-age: browsers revalidate (ETag), so an upgrade never mixes
    # modules of two versions.
    return send_from_directory(STATIC, filename)
