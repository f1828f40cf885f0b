"""`python -m bench.watchers [--watchers 10000] [--tasks 100] [--rate 1]`: many
watchers on one web process, all receiving pushes.

`tasks` tickers of one identity report `rate` times a second; `watchers`
connections of that identity each subscribe to one of them, so each push goes
to watchers/tasks connections: the default, 100 tasks x 100 watchers at 1
update/s, is 10,000 deliveries/s from only 100 pushes/s, as when many people
watch the same few pages (a deploy, a class running one job). The worker and
Redis carry 100 pushes/s; the web process carries the fan-out.

Printed: deliveries/s, push latency (the ticker's update() wall time, which it
puts in its message, to the moment a watcher read the push: p50, p99, max),
updates lost (gaps in each watcher's seqs), the web process's CPU (share of a
core, and µs per delivery) and RSS, and the load generator's CPU.

The load generator speaks the protocol's text frames over aiohttp
(`bench.connections.Watcher`), split over `generators` processes: one asyncio
process reading 10,000 pushes/s would itself be near a full core.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench.connections import (
    OPEN_AT_ONCE,
    SERVERS,
    Watcher,
    raise_open_files,
    tree_cpu_seconds,
    tree_rss_mb,
)
from bench.fanout import Measurement, cancel_all
from bench.scenarios import summary, update_time
from bench.stack import BenchStack, scenario_parser
from tests.stack import ProgressClient, free_port, identity_cookie

PUSH_HEAD = "42/progress,"
# Tickers sleep in threads: one each, and no limit on one identity's tasks.
WORKER = ("--pool", "threads", "-c", "120")


def staggered_tickers(stack: BenchStack, cookie: str, count: int, rate: float) -> list[str]:
    """Tickers whose updates are spread evenly over each 1/rate s, as tasks
    started at different moments are: ticker k starts k/count of a period after
    the first (plus whole periods, when starting takes longer)."""
    owner = ProgressClient(stack.base_url, cookie)
    period, began, ids = 1 / rate, time.monotonic(), []
    try:
        for k in range(count):
            due = began + k * period / count
            while due < time.monotonic():
                due += period
            time.sleep(due - time.monotonic())
            ids.append(owner.start("ticker", updates=10**6, rate=rate)["task_id"])
        return ids
    finally:
        owner.close()


def watch(
    conn: Connection, base_url: str, cookie: str, task_ids: list[str], first: int, count: int
) -> None:
    """One load-generator process: watchers `first`..`first+count-1`, watcher i on
    task i mod len(task_ids). Sends "ready", waits for the window, sends its figures."""
    raise_open_files()
    m = Measurement()
    # The worst latency of the updates made in each second of the window.
    worst: dict[int, float] = {}

    def on_push(i: int) -> Any:
        def record(text: str) -> None:
            now = time.time()
            snapshot = json.loads(text[len(PUSH_HEAD) :])[1]
            m.record(i, snapshot, now)
            sent = update_time(snapshot)
            if sent is not None and m.window[0] <= now <= m.window[1]:
                second = int(sent - m.window[0])
                worst[second] = max(worst.get(second, 0.0), (now - sent) * 1000)

        return record

    async def run() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(OPEN_AT_ONCE // 2)

            async def one(i: int) -> Watcher:
                async with gate:
                    w = await Watcher.open(http, base_url, cookie)
                    answer = await w.call("subscribe", {"task_id": task_ids[i % len(task_ids)]})
                    assert answer["ok"], answer
                    w.on_push = on_push(i)
                    return w

            began = time.monotonic()
            clients = await asyncio.gather(*(one(i) for i in range(first, first + count)))
            open_s = time.monotonic() - began
            # The generator's own collector pauses would count as push latency.
            gc.collect()
            gc.freeze()
            loop = asyncio.get_running_loop()
            conn.send(("ready", open_s))
            window = await loop.run_in_executor(None, conn.recv)
            await asyncio.sleep(max(0.0, window[0] - time.time()))
            cpu = _own_cpu()
            m.window = window
            await asyncio.sleep(max(0.0, window[1] - time.time()) + 0.5)
            used = _own_cpu() - cpu
            gc.unfreeze()
            closed = sum(1 for w in clients if w.ws.closed)
            await asyncio.gather(*(w.close() for w in clients), return_exceptions=True)
            return {"cpu_s": used, "closed": closed}

    figures = asyncio.run(run())
    conn.send(
        {
            **figures,
            "latencies_ms": m.latencies_ms,
            "delivered": sum(len(s) for s in m.seqs.values()),
            "lost": m.lost(),
            "watched": len(m.seqs),
            "worst_ms": worst,
        }
    )


def watchers(
    stack: BenchStack,
    count: int,
    tasks: int,
    rate: float,
    seconds: float,
    generators: int = 2,
    before_window: Any = None,
) -> dict[str, Any]:
    """The scenario on a running stack; `before_window(pid)`, if given, is called
    with the web pid as the window opens (a profiler's hook) and its result kept."""
    cookie = identity_cookie(stack.base_url)
    task_ids = staggered_tickers(stack, cookie, tasks, rate)
    web = stack.web.pid
    share = [count // generators + (g < count % generators) for g in range(generators)]
    firsts = [sum(share[:g]) for g in range(generators)]
    args = [(stack.base_url, cookie, task_ids, firsts[g], share[g]) for g in range(generators)]
    try:
        with spawned(watch, args) as pipes:
            opened = [_receive(parent, 600) for parent in pipes]
            # A second to settle, then everyone measures the same window.
            window = (time.time() + 1.0, time.time() + 1.0 + seconds)
            for parent in pipes:
                parent.send(window)
            time.sleep(max(0.0, window[0] - time.time()))
            hook = before_window(web) if before_window else None
            cpu = tree_cpu_seconds(web)
            time.sleep(seconds)
            web_cpu = (tree_cpu_seconds(web) - cpu) / seconds
            rss = tree_rss_mb(web)
            parts = [_receive(parent, 120) for parent in pipes]
    finally:
        try:
            cancel_all(stack, cookie, task_ids)
        except Exception as exc:  # the stack stops anyway; keep the first error
            print(f"could not cancel the tickers: {exc!r}", file=sys.stderr)
    latencies = [x for part in parts for x in part["latencies_ms"]]
    delivered = sum(part["delivered"] for part in parts)
    per_s = delivered / seconds
    return {
        "watchers": count,
        "tasks": tasks,
        "updates_per_s": rate,
        "seconds": seconds,
        "generators": generators,
        "open_s": round(max(opened), 1),
        "deliveries_per_s": round(per_s, 1),
        "expected_per_s": count * rate,
        **summary(latencies),
        "lost": sum(part["lost"] for part in parts),
        "closed": sum(part["closed"] for part in parts),
        "web_rss_mb": round(rss, 1),
        "web_cpu": round(web_cpu, 3),
        "web_us_per_delivery": round(web_cpu / per_s * 1e6, 1) if per_s else None,
        "load_generator_cpu": [round(part["cpu_s"] / seconds, 3) for part in parts],
        "worst_ms_by_second": [
            round(max(part["worst_ms"].get(k, 0.0) for part in parts)) for k in range(int(seconds))
        ],
        "hook": hook,
        "samples_ms": latencies,
    }


@contextmanager
def spawned(target: Callable[..., None], args: list[tuple[Any, ...]]) -> Iterator[list[Connection]]:
    """A load-generator process for each of `args`, running `target(pipe, *args[g])`,
    and the parent's ends of their pipes. Spawned, not forked: each starts its
    own asyncio loop in a fresh interpreter. Joined on leaving (killed if one
    is still running 30 s later)."""
    spawn = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    try:
        for one in args:
            parent, child = spawn.Pipe()
            p = spawn.Process(target=target, args=(child, *one), daemon=True)
            p.start()
            pipes.append(parent)
            procs.append(p)
        yield pipes
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()


def _receive(conn: Connection, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError("a load generator did not answer")
    message = conn.recv()
    return message[1] if isinstance(message, tuple) and message[0] == "ready" else message


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    count: int,
    tasks: int,
    rate: float,
    seconds: float,
    server: str = "eventlet",
    generators: int = 2,
    settings: dict[str, str] | None = None,
    before_window: Any = None,
) -> dict[str, Any]:
    """The scenario on a stack of its own, served by `server` (see bench.connections)."""
    raise_open_files()
    port = free_port()
    extra = {"MAX_ACTIVE_TASKS": "100000", "FLASK_RUN_PORT": str(port), **(settings or {})}
    stack = BenchStack(WORKER, env_extra=extra)
    stack.web_args = SERVERS[server]
    stack.ports["web0"] = port
    with stack:
        result = watchers(stack, count, tasks, rate, seconds, generators, before_window)
    return {"server": server, **result}


def main() -> None:
    parser = scenario_parser(__doc__)
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="updates/s of each task")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--server", choices=sorted(SERVERS), default="eventlet")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--profile", metavar="SVG", help="py-spy record the web process")
    args = parser.parse_args()
    hook = _py_spy(args.profile, args.seconds) if args.profile else None
    result = run(
        args.watchers,
        args.tasks,
        args.rate,
        args.seconds,
        args.server,
        args.generators,
        dict(args.set),
        hook,
    )
    result.pop("samples_ms")
    print(json.dumps(result, indent=2))


def _py_spy(out: str, seconds: float) -> Any:
    """A hook that samples the web process with py-spy for the window (a dev tool)."""
    import subprocess
    import sys
    from pathlib import Path

    def start(pid: int) -> str:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        record = ["record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
        # --subprocesses: under gunicorn the pid is the master, which serves nothing.
        options = ["--nonblocking", "--subprocesses", "--format", "raw", "--output", out]
        subprocess.Popen([py_spy, *record, *options], stdout=subprocess.DEVNULL)
        return out

    return start


if __name__ == "__main__":
    main()
