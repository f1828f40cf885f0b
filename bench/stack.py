"""The real stack for a benchmark run: redis-server, one web process, one worker."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.stack import Process, free_port, process_env, start_redis, start_web, start_worker


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class BenchStack:
    """Started on enter, stopped on exit. `worker_args` picks the pool."""

    worker_args: tuple[str, ...] = ()
    env_extra: dict[str, str] = field(default_factory=dict)
    webs: int = 1  # web processes on the same Redis

    def __enter__(self) -> BenchStack:
        self.logs = Path(tempfile.mkdtemp(prefix="progressbar-bench-"))
        self.redis, self.redis_url = start_redis(self.logs)
        self.env = process_env(self.redis_url, "bench", **self.env_extra)
        self.worker = start_worker(self.env, self.logs, "bench", *self.worker_args)
        ports = [free_port() for _ in range(self.webs)]
        self.web_processes = [
            start_web([sys.executable, "app.py"], self.env, port, self.logs, f"web{i}")
            for i, port in enumerate(ports)
        ]
        self.web: Process = self.web_processes[0]
        self.base_urls = [f"http://127.0.0.1:{port}" for port in ports]
        self.base_url = self.base_urls[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for web in self.web_processes:
            web.stop()
        self.worker.stop()
        self.redis.stop()
