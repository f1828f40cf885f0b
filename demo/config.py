"""The demo app's own settings, from the environment; progressbar's come from
`progressbar.environment_config()`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def from_environment() -> dict[str, Any]:
    """SECRET_KEY, and where `python app.py` listens."""
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "HOST": os.environ.get("HOST") or "127.0.0.1",
        "PORT": _int("PORT", 5000),
        # Connections one `python app.py` serves at once (mind `ulimit -n`).
        "WEB_MAX_CONNECTIONS": _int("WEB_MAX_CONNECTIONS", 10000),
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
