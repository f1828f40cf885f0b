"""Every setting with its default, read from the environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _transports(raw: str | None) -> list[str]:
    transports = [t.strip() for t in (raw or "polling,websocket").split(",") if t.strip()]
    unknown = set(transports) - {"polling", "websocket"}
    if unknown or not transports:
        raise ValueError(f"SOCKETIO_TRANSPORTS: {raw!r}; use polling, websocket or both")
    return transports


def from_environment() -> dict[str, Any]:
    """Read the settings documented in the README, falling back to defaults."""
    origins = os.environ.get("ALLOWED_ORIGINS", "")
    return {
        "REDIS_URL": os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "HOST": os.environ.get("HOST") or "127.0.0.1",
        "PORT": _int("PORT", 5000),
        # Connections one `python app.py` serves at once (mind `ulimit -n`).
        "WEB_MAX_CONNECTIONS": _int("WEB_MAX_CONNECTIONS", 10000),
        # Redis pool size of each process; the pool blocks instead of failing.
        "REDIS_MAX_CONNECTIONS": _int("REDIS_MAX_CONNECTIONS", 200),
        "SOCKETIO_CHANNEL": os.environ.get("SOCKETIO_CHANNEL") or "progressbar",
        # "eventlet" under `python app.py`, "threading" under `flask run`.
        "SOCKETIO_ASYNC_MODE": os.environ.get("SOCKETIO_ASYNC_MODE") or None,
        # "websocket" alone needs no sticky sessions behind a load balancer;
        # with "polling" too, every request of a client must reach one process.
        "SOCKETIO_TRANSPORTS": _transports(os.environ.get("SOCKETIO_TRANSPORTS")),
        # Empty: same origin only (the host the page was served from).
        "ALLOWED_ORIGINS": [o.strip() for o in origins.split(",") if o.strip()],
        "PROGRESS_INTERVAL": _float("PROGRESS_INTERVAL", 0.1),
        "TASK_TTL": _int("TASK_TTL", 24 * 3600),
        "WORKER_CONCURRENCY": _int("WORKER_CONCURRENCY", 8),
        # A task without a heartbeat for LOST_TIMEOUT seconds is reported lost.
        "HEARTBEAT_INTERVAL": _float("HEARTBEAT_INTERVAL", 1.0),
        "LOST_TIMEOUT": _float("LOST_TIMEOUT", 5.0),
        "MAX_ACTIVE_TASKS": _int("MAX_ACTIVE_TASKS", 10),
    }


def instance_secret_key(instance_path: str) -> str:
    """A random key kept in the instance folder, so sessions survive restarts."""
    path = Path(instance_path) / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        # O_EXCL: when two processes race, the first writer's key wins.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


# templates/ and static/ live at the top of the repository, beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
