"""Push latency of one update: worker `update()` → `progress` at a Socket.IO client.

Starts the real stack (redis-server, `python app.py`, a Celery worker), runs
simulate tasks and measures, for every push, the client's receive time minus
the snapshot's `updated_at` (stamped by `update()` in the worker). Same machine,
same clock. Run: `.venv/bin/python -m bench.latency [tasks] [duration]`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from tests.stack import (
    ProgressClient,
    free_port,
    identity_cookie,
    start_redis,
    start_web,
    start_worker,
)


def main(tasks: int = 10, duration: float = 6.0) -> dict[str, float]:
    logs = Path(tempfile.mkdtemp(prefix="progressbar-bench-"))
    redis, url = start_redis(logs)
    env = {**os.environ, "REDIS_URL": url, "SECRET_KEY": "bench"}
    worker = start_worker(env, logs, "bench")
    port = free_port()
    web = start_web([sys.executable, "app.py"], env, port, logs, "web")
    try:
        base = f"http://127.0.0.1:{port}"
        client = ProgressClient(base, identity_cookie(base))
        ids = [client.start("simulate", duration=duration, seed=i)["task_id"] for i in range(tasks)]
        for task_id in ids:
            client.wait_terminal(task_id, timeout=duration * 5)
        client.close()
        latencies = sorted(
            (p["_received"] - p["updated_at"]) * 1000
            for p in client.pushes
            if p["state"] == "running"
        )
    finally:
        web.stop()
        worker.stop()
        redis.stop()
    q = statistics.quantiles(latencies, n=100)
    figures = {
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
    }
    print(json.dumps(figures))
    if os.environ.get("BENCH_VERBOSE"):
        print([round(x, 1) for x in latencies[-10:]])
    return figures


if __name__ == "__main__":
    main(*(float(a) if i else int(a) for i, a in enumerate(sys.argv[1:])))  # type: ignore[arg-type]
