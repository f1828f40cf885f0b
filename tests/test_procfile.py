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
        # The default Redis is a real redis-server, started from the Procfile or
        # found running; either way the one the stack used: the task is in it.
        default = redis.Redis(port=6379)
        try:
            assert any(default.scan_iter(match=f"*{task['task_id']}*"))
        finally:
            default.close()
        log = honcho.log.read_text(errors="replace")
        assert "Ready to accept connections" in log or "using the Redis already running" in log
    finally:
        honcho.stop(timeout=20)
    # Each line of the Procfile became a process; web first, as it gets the port.
    procfile = ROOT.joinpath("Procfile").read_text().splitlines()
    names = [line.split(":", 1)[0] for line in procfile if line.strip()]
    assert names == ["web", "worker", "redis"]
    for name in names:
        assert f"{name}.1 started" in log, name
