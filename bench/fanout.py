"""Many watchers at once, from one asyncio process: fan-out, and push against polling."""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections import defaultdict
from typing import Any

import aiohttp
import socketio

from bench.scenarios import summary, update_time
from bench.stack import BenchStack, cpu_seconds, rss_mb
from tests.stack import ProgressClient, identity_cookie

CONNECT_AT_ONCE = 50
TICKER_RATE = 5  # updates per second of each task


def start_tickers(stack: BenchStack, cookie: str, count: int, rate: float) -> list[str]:
    """Long-running tickers owned by `cookie`'s identity; cancel them when done."""
    owner = ProgressClient(stack.base_url, cookie)
    try:
        return [owner.start("ticker", updates=10**6, rate=rate)["task_id"] for _ in range(count)]
    finally:
        owner.close()


def cancel_all(stack: BenchStack, cookie: str, task_ids: list[str]) -> None:
    owner = ProgressClient(stack.base_url, cookie)
    try:
        for task_id in task_ids:
            owner.call("cancel", {"task_id": task_id})
    finally:
        owner.close()


class Measurement:
    """What the watchers received inside the measuring window."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.latencies_ms: list[float] = []
        self.seqs: dict[tuple[int, str], list[int]] = defaultdict(list)

    def record(
        self,
        watcher: int,
        snapshot: dict[str, Any],
        now: float,
        skipped: int = 0,
        rate: float = 0,
    ) -> None:
        """A snapshot seen at `now`. A poller that saw it `skipped` updates after the
        one it saw before learns of those updates only now: each counts, with its
        own (steady ticker) update time."""
        if not self.window[0] <= now <= self.window[1] or snapshot.get("state") != "running":
            return
        sent = update_time(snapshot)
        if sent is not None:
            self.latencies_ms.append((now - sent) * 1000)
            for back in range(1, skipped + 1):
                self.latencies_ms.append((now - (sent - back / rate)) * 1000)
        self.seqs[(watcher, snapshot["task_id"])].append(snapshot["seq"])

    def lost(self) -> int:
        """Updates missing between the first and last one each watcher saw."""
        return sum(max(s) - min(s) + 1 - len(set(s)) for s in self.seqs.values())


async def push_watchers(
    base_url: str | list[str], cookie: str, task_ids: list[str], watchers: int, m: Measurement
) -> list[socketio.AsyncClient]:
    urls = [base_url] if isinstance(base_url, str) else base_url
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def watcher(i: int) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)

        @client.on("progress", namespace="/progress")
        async def on_progress(snapshot: dict[str, Any]) -> None:
            m.record(i, snapshot, time.time())

        async with gate:
            await client.connect(
                urls[i % len(urls)],
                namespaces=["/progress"],
                transports=["websocket"],
                headers={"Cookie": cookie},
                wait_timeout=30,
            )
            task_id = task_ids[i % len(task_ids)]
            answer = await client.call(
                "subscribe", {"task_id": task_id}, namespace="/progress", timeout=30
            )
            assert answer["ok"], answer
        return client

    return list(await asyncio.gather(*(watcher(i) for i in range(watchers))))


async def poll_watchers(
    base_url: str,
    cookie: str,
    task_ids: list[str],
    watchers: int,
    every: float,
    m: Measurement,
    until: float,
    rate: float,
) -> None:
    """Each watcher GETs its task's snapshot every `every` s, as celery-progress does."""
    async with aiohttp.ClientSession(headers={"Cookie": cookie}) as http:

        async def watcher(i: int) -> None:
            task_id = task_ids[i % len(task_ids)]
            seen = 0
            await asyncio.sleep(every * i / watchers)  # spread the polls out
            while time.time() < until:
                async with http.get(f"{base_url}/api/tasks/{task_id}") as response:
                    snapshot = (await response.json())["task"]
                if snapshot["seq"] > seen:
                    skipped = snapshot["seq"] - seen - 1 if seen else 0
                    seen = snapshot["seq"]
                    m.record(i, snapshot, time.time(), skipped=skipped, rate=rate)
                await asyncio.sleep(every)

        await asyncio.gather(*(watcher(i) for i in range(watchers)))


def fanout(stack: BenchStack, watchers: int, tasks: int, rate: float, seconds: float) -> dict:
    """`watchers` Socket.IO clients spread over `tasks` tickers at `rate` updates/s
    (and over the stack's web processes)."""
    cookie = identity_cookie(stack.base_url)
    task_ids = start_tickers(stack, cookie, tasks, rate)
    m = Measurement()

    async def run() -> tuple[float, float]:
        clients = await push_watchers(stack.base_urls, cookie, task_ids, watchers, m)
        # The load generator's own collector pauses would show as latency of
        # the system under test: its thousand clients are kept out of them.
        gc.collect()
        gc.freeze()
        webs = [w.pid for w in stack.web_processes.values()]
        cpu_web, load_before = sum(cpu_seconds(pid) for pid in webs), _own_cpu()
        m.window = (time.time(), time.time() + seconds)
        await asyncio.sleep(seconds + 0.5)
        used = sum(cpu_seconds(pid) for pid in webs) - cpu_web
        load = (_own_cpu() - load_before) / seconds
        gc.unfreeze()
        await asyncio.gather(*(c.disconnect() for c in clients))
        return used / seconds, load

    try:
        web_cpu, load_cpu = asyncio.run(run())
    finally:
        cancel_all(stack, cookie, task_ids)
    delivered = sum(len(s) for s in m.seqs.values())
    return {
        "watchers": watchers,
        "tasks": tasks,
        "updates_per_s": rate,
        "deliveries_per_s": round(delivered / seconds, 1),
        "expected_per_s": watchers * rate,
        **summary(m.latencies_ms),
        "lost": m.lost(),
        "web_rss_mb": round(sum(rss_mb(w.pid) for w in stack.web_processes.values()), 1),
        "web_cpu": round(web_cpu, 3),
        "load_generator_cpu": round(load_cpu, 3),
        "samples_ms": m.latencies_ms,
    }


def push_vs_poll(stack: BenchStack, watchers: int, tasks: int, seconds: float) -> dict:
    """The same tickers watched by pushes, then by polling every 500 ms."""
    cookie = identity_cookie(stack.base_url)
    task_ids = start_tickers(stack, cookie, tasks, rate=TICKER_RATE)
    results: dict[str, Any] = {"watchers": watchers, "tasks": tasks}
    try:
        for mode in ("push", "poll"):
            m = Measurement()

            async def run(mode: str = mode, m: Measurement = m) -> float:
                clients = []
                if mode == "push":
                    clients = await push_watchers(stack.base_url, cookie, task_ids, watchers, m)
                before = cpu_seconds(stack.web.pid)
                m.window = (time.time(), time.time() + seconds)
                if mode == "push":
                    await asyncio.sleep(seconds)
                else:
                    await poll_watchers(
                        stack.base_url,
                        cookie,
                        task_ids,
                        watchers,
                        0.5,
                        m,
                        until=m.window[1],
                        rate=TICKER_RATE,
                    )
                used = cpu_seconds(stack.web.pid) - before
                await asyncio.gather(*(c.disconnect() for c in clients))
                return used

            used = asyncio.run(run())
            results[mode] = {
                **summary(m.latencies_ms),
                "web_cpu_ms_per_watcher_s": round(used / seconds / watchers * 1000, 3),
            }
    finally:
        cancel_all(stack, cookie, task_ids)
    push, poll = results["push"], results["poll"]
    results["latency_ratio"] = round(poll["p50_ms"] / push["p50_ms"], 1)
    results["cpu_ratio"] = round(
        poll["web_cpu_ms_per_watcher_s"] / max(push["web_cpu_ms_per_watcher_s"], 1e-9), 1
    )
    return results


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
