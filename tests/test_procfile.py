"""`honcho start` runs the whole stack from the Procfile, embedded Redis included."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import redis

from tests.stack import ROOT, Process, ProgressClient, free_port, identity_cookie, wait_until


def test_honcho_runs_redis_web_and_worker(tmp_path: Path) -> None:
    port = free_port()  # honcho gives the first line (web) this port
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    honcho = Process(
        [sys.executable, "-m", "honcho", "start", "-p", str(port)], env, tmp_path / "honcho.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: identity_cookie(base), 60, f"web via honcho\n{honcho.tail()}")
        client = ProgressClient(base, identity_cookie(base))
        try:
            task = client.start("primes", limit=10**6)
            final = client.wait_terminal(task["task_id"], timeout=60)
            assert final["result"] == 78498
        finally:
            client.close()
        # The default Redis is a real redis-server, started from the Procfile or found running.
        assert redis.Redis(port=6379).ping()
        assert "redis" in honcho.tail(200)
    finally:
        honcho.stop(timeout=20)
    assert ROOT.joinpath("Procfile").read_text().startswith("web:")
