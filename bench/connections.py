"""`python -m bench.connections --watchers N --server eventlet|gevent|threading`:
N idle watchers on one web process. How long they take to open, what the web
process holds for them (RSS, KB per connection), connected and then each in its
task's room.

The load generator speaks Engine.IO/Socket.IO's text protocol over one shared
aiohttp session, so that ten thousand connections fit beside the server: a
python-socketio AsyncClient each would cost the generator more than the server.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.stack import BenchStack, cpu_seconds
from tests.stack import ProgressClient, free_port, identity_cookie, wait_until

IDENTITIES = 10
OPEN_AT_ONCE = 200
SERVERS: dict[str, tuple[str, ...]] = {
    "eventlet": (sys.executable, "app.py"),
    "gevent": (
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:progressbar.web.gunicorn",
        "app:app",
    ),
    "threading": (sys.executable, "-m", "flask", "--app", "app", "run", "--no-reload"),
}


ACK_HEAD = "43/progress,"


def settle_ack(acks: dict[int, asyncio.Future[Any]], text: str) -> None:
    """Answer the call waiting for this ack packet (`43/progress,ID[answer]`), if any."""
    body = text[len(ACK_HEAD) :]
    digits = len(body) - len(body.lstrip("0123456789"))
    future = acks.pop(int(body[:digits]), None)
    if future is not None and not future.done():
        future.set_result(json.loads(body[digits:])[0])


class Watcher:
    """One bar's connection on /progress: answers pings, counts pushes, can call."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes = 0
        self.pings = 0
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self._ids = 0
        self.reader: asyncio.Task[None] | None = None
        # Called with each push's text, if set.
        self.on_push: Callable[[str], None] | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base_url: str, cookie: str) -> Watcher:
        url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        ws = await http.ws_connect(url, headers={"Cookie": cookie}, autoping=False)
        opened = await ws.receive_str()
        if not opened.startswith("0"):
            raise RuntimeError(f"no Engine.IO open packet: {opened[:80]}")
        await ws.send_str("40/progress,")
        answer = await ws.receive_str()
        if not answer.startswith("40/progress,"):
            raise RuntimeError(f"not connected to /progress: {answer[:200]}")
        watcher = cls(ws)
        watcher.reader = asyncio.create_task(watcher._read())
        return watcher

    async def _read(self) -> None:
        async for message in self.ws:
            text = message.data
            if not isinstance(text, str):
                continue
            if text == "2":
                self.pings += 1
                await self.ws.send_str("3")
            elif text.startswith("42/progress,"):
                self.pushes += 1
                if self.on_push is not None:
                    self.on_push(text)
            elif text.startswith(ACK_HEAD):
                settle_ack(self.acks, text)

    async def call(self, event: str, payload: Any, timeout: float = 60) -> Any:
        self._ids += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[self._ids] = future
        await self.ws.send_str(f"42/progress,{self._ids}{json.dumps([event, payload])}")
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await self.reader


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (gunicorn's master and its worker)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        status = Path(f"/proc/{p}/status")
        for line in status.read_text().splitlines() if status.exists() else []:
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in [pid, *_children(pid)])


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found + [g for c in found for g in _children(c)]


def raise_open_files() -> None:
    """Room for every connection (the web process inherits the limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ended_tasks(stack: BenchStack, cookies: list[str]) -> list[str]:
    """One ended task per identity: rooms to sit in that push nothing."""
    ids = []
    for cookie in cookies:
        owner = ProgressClient(stack.base_url, cookie)
        try:
            task = owner.start("simulate", duration=0.1, seed=1)
            owner.wait_terminal(task["task_id"], timeout=60)
            ids.append(task["task_id"])
        finally:
            owner.close()
    return ids


def settle(pid: int, seconds: float) -> float:
    """The process's RSS once it has stopped growing (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    last = tree_rss_mb(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = tree_rss_mb(pid)
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def idle_watchers(
    stack: BenchStack, watchers: int, hold: float, mark: Callable[[str], None] = lambda step: None
) -> dict[str, Any]:
    """Open `watchers` connections at once, then have each subscribe to its
    identity's ended task, and hold them for `hold` seconds. `mark` is called
    at each step: "baseline", "connected", "idle"."""
    web = stack.web.pid
    cookies = [identity_cookie(stack.base_url) for _ in range(IDENTITIES)]
    task_ids = ended_tasks(stack, cookies)
    before = settle(web, 10)
    mark("baseline")

    async def run() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(OPEN_AT_ONCE)

            async def one(i: int) -> Watcher:
                async with gate:
                    return await Watcher.open(http, stack.base_url, cookies[i % IDENTITIES])

            cpu = tree_cpu_seconds(web)
            started = time.monotonic()
            opened = await asyncio.gather(
                *(one(i) for i in range(watchers)), return_exceptions=True
            )
            open_s = time.monotonic() - started
            open_cpu = tree_cpu_seconds(web) - cpu
            clients = [w for w in opened if isinstance(w, Watcher)]
            failures = [repr(e)[:200] for e in opened if not isinstance(e, Watcher)]
            gc.collect()
            connected = await asyncio.to_thread(settle, web, 10)
            await asyncio.to_thread(mark, "connected")

            async def subscribe(i: int, w: Watcher) -> Any:
                async with gate:
                    return await w.call("subscribe", {"task_id": task_ids[i % IDENTITIES]})

            started = time.monotonic()
            answers = await asyncio.gather(
                *(subscribe(i, w) for i, w in enumerate(clients)), return_exceptions=True
            )
            subscribe_s = time.monotonic() - started
            refused = [a for a in answers if not (isinstance(a, dict) and a.get("ok"))]
            cpu = tree_cpu_seconds(web)
            await asyncio.sleep(hold)
            idle_cpu = (tree_cpu_seconds(web) - cpu) / hold if hold else 0.0
            idle = await asyncio.to_thread(settle, web, 10)
            await asyncio.to_thread(mark, "idle")
            alive = sum(1 for w in clients if not w.ws.closed)
            pinged = sum(1 for w in clients if w.pings)
            await asyncio.gather(*(w.close() for w in clients), return_exceptions=True)
            return {
                "open_s": round(open_s, 2),
                "open_web_cpu_s": round(open_cpu, 2),
                "opened": len(clients),
                "open_failures": len(failures),
                "first_failures": failures[:3],
                "connected_rss_mb": round(connected, 1),
                "subscribe_s": round(subscribe_s, 2),
                "subscribe_refused": len(refused),
                "first_refusals": [repr(a)[:200] for a in refused[:3]],
                "idle_rss_mb": round(idle, 1),
                "idle_web_cpu": round(idle_cpu, 3),
                "alive_after_hold": alive,
                "pinged": pinged,
            }

    r = asyncio.run(run())
    n = max(r["opened"], 1)
    return {
        "watchers": watchers,
        "hold_s": hold,
        "baseline_rss_mb": round(before, 1),
        **r,
        "kb_per_connection": round((r["connected_rss_mb"] - before) * 1024 / n, 1),
        "kb_per_watcher_idle": round((r["idle_rss_mb"] - before) * 1024 / n, 1),
    }


class Profile:
    """Snapshots of a `bench.traced_web` process at each step, and what grew."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="progressbar-trace-"))
        self.steps: list[str] = []
        self.pid = 0

    def mark(self, step: str) -> None:
        n = len(self.steps)
        os.kill(self.pid, signal.SIGUSR1)
        wait_until(lambda: (self.folder / f"done-{n}").exists(), 300, f"snapshot {step}")
        self.steps.append(step)

    def growth(self, step: str, per: int, top: int = 25) -> dict[str, Any]:
        """What grew from the baseline to `step`, in bytes per connection."""
        first = tracemalloc.Snapshot.load(str(self.folder / "trace-0.bin"))
        n = self.steps.index(step)
        then = tracemalloc.Snapshot.load(str(self.folder / f"trace-{n}.bin"))
        by_line = then.compare_to(first, "lineno")
        by_trace = then.compare_to(first, "traceback")
        types0 = dict(json.loads((self.folder / "types-0.json").read_text()))
        types = json.loads((self.folder / f"types-{n}.json").read_text())
        return {
            "traced_bytes": sum(d.size_diff for d in by_line) / per,
            "lines": [(str(d.traceback[0]), round(d.size_diff / per)) for d in by_line[:top]],
            "tracebacks": [
                (round(d.size_diff / per), [str(f) for f in d.traceback[-6:]]) for d in by_trace[:8]
            ],
            "objects": [
                (name, round((count - types0.get(name, 0)) / per, 2))
                for name, count in types
                if (count - types0.get(name, 0)) / per >= 0.5
            ],
        }


def connections(
    watchers: int,
    server: str = "eventlet",
    hold: float = 30,
    env: dict[str, str] | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """The scenario on a stack of its own, served by `server`; `profile` (eventlet
    or gevent) adds what the web process's Python heap grew by, per connection."""
    raise_open_files()
    port = free_port()
    # `flask run` takes its port from FLASK_RUN_PORT, the others from PORT.
    extra = {"MAX_ACTIVE_TASKS": "100000", "FLASK_RUN_PORT": str(port), **(env or {})}
    stack = BenchStack(env_extra=extra)
    stack.web_args = SERVERS[server]
    stack.ports["web0"] = port
    tracer = Profile() if profile else None
    if tracer is not None:
        traced = (sys.executable, "-m", "bench.traced_web", str(tracer.folder))
        stack.web_args = traced + ((server,) if server == "gevent" else ())
    with stack:
        if tracer is None:
            return {"server": server, **idle_watchers(stack, watchers, hold)}
        tracer.pid = stack.web.pid
        result = idle_watchers(stack, watchers, hold, tracer.mark)
        per = max(result["opened"], 1)
        result["profile"] = {s: tracer.growth(s, per) for s in ("connected", "idle")}
        return {"server": server, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--server", choices=sorted(SERVERS), default="eventlet")
    parser.add_argument("--hold", type=float, default=30, help="seconds held idle")
    parser.add_argument("--profile", action="store_true", help="tracemalloc (eventlet, gevent)")
    args = parser.parse_args()
    result = connections(args.watchers, args.server, args.hold, profile=args.profile)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
