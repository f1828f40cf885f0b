"""HTTP routes: the page, and the browser's third-party JS from node_modules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, render_template, send_from_directory
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from .identity import current_identity
from .kinds import KINDS

bp = Blueprint("views", __name__)

# Files of npm packages the page may load; nothing else under node_modules is served.
VENDOR = {
    "socket.io.esm.min.js": "socket.io-client/dist",
    "socket.io.esm.min.js.map": "socket.io-client/dist",
}
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


@bp.before_app_request
def ensure_identity() -> None:
    current_identity()


@bp.get("/")
def index() -> str:
    return render_template("index.html", kinds=[k for k in KINDS.values() if not k.hidden])


@bp.get("/healthz")
def healthz() -> tuple[dict[str, Any], int]:
    """Is Redis reachable, and is at least one worker alive? 200 if both, else 503."""
    store = current_app.extensions["progress_store"]
    started = time.perf_counter()
    redis: dict[str, Any]
    try:
        # Seen within three heartbeats: one late beat is not a dead worker.
        workers = store.workers(3 * current_app.config["HEARTBEAT_INTERVAL"])
        redis = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except RedisError as exc:
        workers, redis = [], {"ok": False, "error": type(exc).__name__}
    healthy = redis["ok"] and bool(workers)
    body = {"ok": healthy, "redis": redis, "workers": {"ok": bool(workers), "alive": workers}}
    return body, 200 if healthy else 503


@bp.get("/vendor/<path:filename>")
def vendor(filename: str) -> Response:
    folder = VENDOR.get(filename)
    if folder is None or not (NODE_MODULES / folder / filename).is_file():
        abort(404)
    return send_from_directory(NODE_MODULES / folder, filename, max_age=3600)
