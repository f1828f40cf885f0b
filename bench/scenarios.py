"""Benchmark scenarios that need no asyncio: latency, browser, reporter cost, idle."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.stack import BenchStack
from tests.stack import ProgressClient, identity_cookie


def summary(values_ms: list[float]) -> dict[str, Any]:
    """p50, p99 and max of latencies in milliseconds."""
    values = sorted(values_ms)
    if len(values) < 2:
        return {"n": len(values), "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(statistics.quantiles(values, n=100, method="inclusive")[98], 3),
        "max_ms": round(values[-1], 3),
    }


def update_time(snapshot: dict[str, Any]) -> float | None:
    """The wall time of the ticker's update() call, which it puts in its message."""
    try:
        return float(snapshot["message"])
    except (KeyError, ValueError):
        return None


def socketio_latency(stack: BenchStack, updates: int) -> dict[str, Any]:
    """One ticker at 10 updates/s, one Socket.IO watcher: update() -> `progress`."""
    client = ProgressClient(stack.base_url, identity_cookie(stack.base_url))
    try:
        task = client.start("ticker", updates=updates, rate=10)
        client.wait_terminal(task["task_id"], timeout=updates / 10 + 30)
        pushes = client.pushes_for(task["task_id"])
    finally:
        client.close()
    latencies = [
        (p["_received"] - t) * 1000
        for p in pushes
        if p["state"] == "running" and (t := update_time(p)) is not None
    ]
    return {**summary(latencies), "samples_ms": latencies}


OBSERVE_BAR = """
([taskId]) => new Promise((resolve) => {
  window.__changes = [];
  const attach = () => {
    const card = document.querySelector(`.task-card[data-task-id="${taskId}"]`);
    if (!card) return requestAnimationFrame(attach);
    const bar = card.querySelector("progress");
    const message = card.querySelector(".pb-message");
    new MutationObserver(() => {
      window.__changes.push([performance.timeOrigin + performance.now(), message.textContent,
                             card.dataset.state]);
    }).observe(bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
    resolve(true);
  };
  attach();
})
"""


def browser_latency(stack: BenchStack, updates: int, runs: int = 3) -> dict[str, Any]:
    """The same ticker watched by the page in Chromium: update() -> bar value in the DOM.

    Runs `runs` times with a fresh browser each, pooled: some runs carry a
    constant extra delay (seen at the WebSocket's arrival in Chromium, before
    any page script), so one run alone can be luckier or unluckier than usual.
    """
    per_run = [_browser_run(stack, updates) for _ in range(runs)]
    pooled = [x for run in per_run for x in run]
    return {
        **summary(pooled),
        "runs_p50_ms": [summary(run)["p50_ms"] for run in per_run],
        "samples_ms": pooled,
    }


def _browser_run(stack: BenchStack, updates: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from tests.stack import CHROMIUM, CHROMIUM_ARGS, wait_until

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=stack.base_url)
        page = context.new_page()
        page.goto("/")
        # The page's client asks for its identity cookie before it connects:
        # the watcher below must be the same identity, so wait for it.
        wait_until(
            lambda: any(c["name"] == "progressbar_identity" for c in context.cookies()),
            10,
            "the page's identity cookie",
        )
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
        client = ProgressClient(stack.base_url, cookie)
        try:
            # Percent moves on every update when there are at most 100 of them.
            task = client.start("ticker", updates=min(updates, 100), rate=10)
            page.reload()
            page.evaluate(OBSERVE_BAR, [task["task_id"]])
            client.wait_terminal(task["task_id"], timeout=updates / 10 + 30)
            time.sleep(0.2)
            changes = page.evaluate("window.__changes")
        finally:
            client.close()
            browser.close()
    return [
        (seen / 1000 - float(text)) * 1000
        for seen, text, state in changes
        if state == "running" and text.replace(".", "", 1).isdigit()
    ]


def reporter_cost(stack: BenchStack, calls: int, update_state_calls: int) -> dict[str, Any]:
    """ns per update(): ours (pushing to the real Redis), tqdm to /dev/null, and
    Celery's update_state (one result-backend write per call)."""
    from tqdm import tqdm

    from demo import create_app
    from progressbar import Progress
    from progressbar.snapshot import queued_snapshot
    from progressbar.state import state

    app = create_app(
        {
            "PROGRESSBAR_REDIS_URL": stack.redis_url,
            "SECRET_KEY": "bench",
            "PROGRESSBAR_MAX_ACTIVE_TASKS": 10**6,
        }
    )
    store = state(app).store
    store.warm_up()
    task_id = "bench-reporter"
    store.create(task_id, "bench", queued_snapshot(task_id, "ticker", time.time()))
    store.sent(task_id)  # as `start` marks it: no watchdog takes it for a start cut short
    progress = Progress(
        task_id,
        "ticker",
        store.write,
        heartbeat=lambda task_id: task_id in store.heartbeat(task_id),
        total=calls,
    )
    progress.start()
    began = time.perf_counter()
    for i in range(calls):
        progress.update(i)
    ours = (time.perf_counter() - began) / calls * 1e9
    progress.finish("succeeded", result=None)
    pushes = progress.last_snapshot["seq"] if progress.last_snapshot else 0

    with open(os.devnull, "w") as devnull:
        bar = tqdm(total=calls, file=devnull)
        began = time.perf_counter()
        for _ in range(calls):
            bar.update(1)
        tqdm_ns = (time.perf_counter() - began) / calls * 1e9
        bar.close()

    backend = app.extensions["celery"].backend  # what Task.update_state calls
    began = time.perf_counter()
    for i in range(update_state_calls):
        backend.store_result(task_id, {"current": i, "total": calls}, "PROGRESS")
    update_state_ns = (time.perf_counter() - began) / update_state_calls * 1e9
    return {
        "calls": calls,
        "ours_ns": round(ours, 1),
        "tqdm_ns": round(tqdm_ns, 1),
        "update_state_ns": round(update_state_ns, 1),
        "ours_vs_tqdm": round(ours / tqdm_ns, 3),
        "update_state_vs_ours": round(update_state_ns / ours, 1),
        "pushes": pushes,
    }


def idle_bar(stack: BenchStack, seconds: float) -> dict[str, Any]:
    """A finished bar left open: what reaches its client in `seconds`."""
    client = ProgressClient(stack.base_url, identity_cookie(stack.base_url))
    try:
        task = client.start("ticker", updates=2, rate=100)
        client.wait_terminal(task["task_id"])
        client.call("subscribe", {"task_id": task["task_id"]})
        eio = client.sio.eio
        packets: list[int] = []
        original = eio._receive_packet

        def counting(pkt: Any) -> Any:
            packets.append(len(pkt.encode()) if pkt.packet_type != 2 else 1)  # 2: ping
            return original(pkt)

        before = len(client.pushes)
        eio._receive_packet = counting
        time.sleep(seconds)
        eio._receive_packet = original
        messages = len(client.pushes) - before
    finally:
        client.close()
    return {
        "seconds": seconds,
        "app_messages": messages,
        "transport_packets": len(packets),
        "transport_bytes": sum(packets),
    }
