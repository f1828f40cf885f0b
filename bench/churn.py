"""`python -m bench.churn [--slots 100] [--per-slot 10] [--rate 5] [--seconds 20] [--gc]`:
watchers on one web process while tasks come and go.

Each of `slots` identities has `per_slot` pages open (Socket.IO connections
with its cookie, 1,000 in all by default). In each slot one task runs at a
time: a ticker of 15 updates at 5 a second (3 s), whose message is its
update()'s wall time. When it ends, the slot's pages dismiss its card (each
sends `unsubscribe`, as the client's `unwatch` does) while the owner's page
starts the next (`start`, whose ack has already joined its room) and the other
pages of the identity `subscribe` to it, as the client's `watch` does for a
task it is shown. So the web process delivers about 5,000 pushes a second
while it also handles about 33 starts, 300 subscribes and 330 unsubscribes a
second, and joins, leaves, subscribes and unsubscribes a task channel for each
task.

Printed, over `seconds` after a warm-up: deliveries/s, push latency (update()
to the watcher) p50/p99/max, starts/s, the acks of start, subscribe and
unsubscribe, the web process's CPU (fraction of one core) and RSS, and the
load generator's CPU. With `--gc` the
web process runs under `bench.gc_web` and its garbage collections in the
window are reported too (count, pauses by generation). Updates lost are
counted over the whole run, by seq, per watcher and task.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import socketio

from bench.fanout import CONNECT_AT_ONCE, _own_cpu
from bench.scenarios import summary, update_time
from bench.stack import BenchStack, cpu_seconds, rss_mb, scenario_parser
from tests.stack import identity_cookie

NAMESPACE = "/progress"
TASK_SECONDS, RATE = 3, 5  # a task of 3 s, 5 updates a second
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
WARM_UP = 5.0  # seconds of churn before the window: every slot has turned over
ACK_TIMEOUT = 60.0
# A thread pool with a slot for every task, and no limit on one identity's tasks.
WORKER = ("--pool", "threads", "-c", "120")
SETTINGS = {"MAX_ACTIVE_TASKS": "100000"}


class Churn:
    """What the pages saw inside the measuring window."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.latencies_ms: list[float] = []
        self.deliveries = 0
        self.seqs: dict[tuple[int, str], list[int]] = defaultdict(list)
        self.acks_ms: dict[str, list[float]] = defaultdict(list)
        self.refused: Counter[str] = Counter()
        self.starts = 0
        self.stalled = 0

    def inside(self, now: float) -> bool:
        return self.window[0] <= now <= self.window[1]

    def push(self, page: int, snapshot: dict[str, Any], now: float) -> None:
        # Seqs are kept from first to last, the window aside: a push that came
        # just before it and an ack just inside it would look like a gap.
        self.seqs[(page, snapshot["task_id"])].append(snapshot["seq"])
        if not self.inside(now):
            return
        self.deliveries += 1
        sent = update_time(snapshot) if snapshot.get("state") == "running" else None
        if sent is not None:
            self.latencies_ms.append((now - sent) * 1000)

    def ack(self, event: str, page: int, answer: Any, began: float) -> bool:
        """An ack; its snapshot, if it carries one, counts as seen by `page`."""
        ok = isinstance(answer, dict) and answer.get("ok") is True
        if ok and isinstance(answer.get("task"), dict):
            task = answer["task"]
            self.seqs[(page, task["task_id"])].append(task["seq"])
        if not self.inside(time.time()):
            return ok
        self.acks_ms[event].append((time.perf_counter() - began) * 1000)
        if not ok:
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
            self.refused[f"{event} {code}"] += 1
        return ok

    def lost(self) -> int:
        """Updates missing between the first and last one each page saw of a
        task (over the whole run)."""
        return sum(max(s) - min(s) + 1 - len(set(s)) for s in self.seqs.values())


async def call(
    m: Churn, client: socketio.AsyncClient, page: int, event: str, payload: dict[str, Any]
) -> Any:
    began = time.perf_counter()
    try:
        answer = await client.call(event, payload, namespace=NAMESPACE, timeout=ACK_TIMEOUT)
    except socketio.exceptions.TimeoutError:
        answer = {"ok": False, "error": {"code": "no ack"}}
    m.ack(event, page, answer, began)
    return answer


async def open_pages(
    base_url: str, cookies: list[str], per_slot: int, m: Churn, ended: dict[str, asyncio.Event]
) -> list[socketio.AsyncClient]:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def page(i: int) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)

        @client.on("progress", namespace=NAMESPACE)
        async def on_progress(snapshot: dict[str, Any]) -> None:
            m.push(i, snapshot, time.time())
            if snapshot.get("state") in TERMINAL:
                ended.setdefault(snapshot["task_id"], asyncio.Event()).set()

        async with gate:
            await client.connect(
                base_url,
                namespaces=[NAMESPACE],
                transports=["websocket"],
                headers={"Cookie": cookies[i // per_slot]},
                wait_timeout=60,
            )
        return client

    return list(await asyncio.gather(*(page(i) for i in range(len(cookies) * per_slot))))


async def slot(
    m: Churn,
    pages: list[tuple[int, socketio.AsyncClient]],
    ended: dict[str, asyncio.Event],
    stop: asyncio.Event,
    rate: float,
) -> None:
    """One identity's pages: a task at a time, the next started as one ends."""
    updates = max(1, round(TASK_SECONDS * rate))
    (owner_page, owner), *others = pages
    previous: str | None = None
    while not stop.is_set():
        dismiss = [
            call(m, client, page, "unsubscribe", {"task_id": previous})
            for page, client in (pages if previous else [])
        ]
        params = {"kind": "ticker", "params": {"updates": updates, "rate": rate}}
        answer, *_ = await asyncio.gather(call(m, owner, owner_page, "start", params), *dismiss)
        if not answer.get("ok"):
            await asyncio.sleep(1)
            continue
        task_id = answer["task"]["task_id"]
        if m.inside(time.time()):
            m.starts += 1
        await asyncio.gather(
            *(call(m, client, page, "subscribe", {"task_id": task_id}) for page, client in others)
        )
        try:
            done = ended.setdefault(task_id, asyncio.Event())
            await asyncio.wait_for(done.wait(), TASK_SECONDS + 30)
        except TimeoutError:
            m.stalled += 1  # its end never came: start the next anyway
        ended.pop(task_id, None)
        previous = task_id


def _gc_passes(folder: Path, number: int, seconds: float) -> dict[str, Any]:
    path = folder / f"gc-{number}.json"
    for _ in range(100):
        if path.exists():
            break
        time.sleep(0.05)
    passes = json.loads(path.read_text())
    result: dict[str, Any] = {}
    for generation in (0, 1, 2):
        pauses = sorted(p[1] for p in passes if p[0] == generation)
        result[f"gen{generation}"] = {
            "count": len(pauses),
            "p50_ms": round(pauses[len(pauses) // 2], 2) if pauses else None,
            "max_ms": round(pauses[-1], 2) if pauses else None,
            "total_ms": round(sum(pauses), 1),
        }
    result["pause_ms_per_s"] = round(sum(p[1] for p in passes) / seconds, 2)
    return result


def churn(
    stack: BenchStack,
    slots: int,
    per_slot: int,
    seconds: float,
    gc_folder: Path | None = None,
    warm_up: float = WARM_UP,
    rate: float = RATE,
) -> dict[str, Any]:
    """`slots` identities of `per_slot` pages each, a 3 s task at a time per slot."""
    cookies = [identity_cookie(stack.base_url) for _ in range(slots)]
    web = stack.web.pid
    m = Churn()

    async def run() -> tuple[float, float]:
        ended: dict[str, asyncio.Event] = {}
        clients = await open_pages(stack.base_url, cookies, per_slot, m, ended)
        # The load generator's own collector pauses would show as latency of
        # the system under test: its thousand clients are kept out of them.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        pages = list(enumerate(clients))
        groups = [pages[k * per_slot : (k + 1) * per_slot] for k in range(slots)]
        loops = [asyncio.create_task(slot(m, group, ended, stop, rate)) for group in groups]
        await asyncio.sleep(warm_up)
        if gc_folder:
            os.kill(web, signal.SIGUSR1)
        cpu_web, load_before = cpu_seconds(web), _own_cpu()
        m.window = (time.time(), time.time() + seconds)
        await asyncio.sleep(seconds)
        used = cpu_seconds(web) - cpu_web
        load = (_own_cpu() - load_before) / seconds
        if gc_folder:
            os.kill(web, signal.SIGUSR1)
        stop.set()
        await asyncio.gather(*loops)
        gc.unfreeze()
        await asyncio.gather(*(c.disconnect() for c in clients))
        return used / seconds, load

    web_cpu, load_cpu = asyncio.run(run())
    result: dict[str, Any] = {
        "watchers": slots * per_slot,
        "slots": slots,
        "updates_per_s": rate,
        "seconds": seconds,
        "deliveries_per_s": round(m.deliveries / seconds, 1),
        **summary(m.latencies_ms),
        "lost": m.lost(),
        "starts_per_s": round(m.starts / seconds, 1),
        "stalled": m.stalled,
        "refused": dict(m.refused),
        **{f"{event}_ack": summary(ms) for event, ms in m.acks_ms.items()},
        "web_cpu": round(web_cpu, 3),
        "web_rss_mb": round(rss_mb(web), 1),
        "load_generator_cpu": round(load_cpu, 3),
        "samples_ms": m.latencies_ms,
    }
    if gc_folder:
        result["gc"] = _gc_passes(gc_folder, 1, seconds)
    return result


def show(r: dict[str, Any]) -> None:
    print(
        f"{r['watchers']} watchers in {r['slots']} slots, {r['seconds']:g} s: "
        f"{r['deliveries_per_s']} deliveries/s, push p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms (n={r['n']}), lost {r['lost']}"
    )
    print(f"  {r['starts_per_s']} starts/s, stalled {r['stalled']}, refused {r['refused']}")
    for event in ("start", "subscribe", "unsubscribe"):
        a = r.get(f"{event}_ack")
        if a:
            print(f"  {event} ack p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms, max {a['max_ms']} ms")
    print(
        f"  web CPU {r['web_cpu']:.0%} of a core, RSS {r['web_rss_mb']} MB; "
        f"load generator CPU {r['load_generator_cpu']:.0%}"
    )
    if "gc" in r:
        print(f"  web gc: {r['gc']}")


def main() -> None:
    parser = scenario_parser(__doc__)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--per-slot", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=RATE, help="updates/s of each task")
    parser.add_argument("--gc", action="store_true", help="time the web process's collections")
    args = parser.parse_args()
    stack = BenchStack(WORKER, {**SETTINGS, **dict(args.set)})
    folder = None
    if args.gc:
        folder = Path(tempfile.mkdtemp(prefix="progressbar-gc-"))
        stack.web_args = (stack.web_args[0], "-m", "bench.gc_web", str(folder))
    with stack:
        result = churn(stack, args.slots, args.per_slot, args.seconds, folder, rate=args.rate)
    show(result)
    result.pop("samples_ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
