"""`python -m bench.churn [--slots 100] [--per-slot 10] [--rate 5] [--seconds 20] [--gc]
[--spread] [--generators 2] [--profile FILE]`: watchers on one web process while
tasks come and go.

Each of `slots` identities has `per_slot` pages open (Socket.IO connections
with its cookie, 1,000 in all by default). In each slot one task runs at a
time: a ticker of 15 updates at 5 a second (3 s), whose message is its
update()'s wall time. When it ends, the slot's pages dismiss its card, as the
client's `unwatch` does: a page that was pushed the task's end sends nothing
(the web process let it go of the room), any other sends `unsubscribe`. Then
the owner's page starts the next (`start`, whose ack has already joined its
room) and the other pages of the identity `subscribe` to it, as the client's
`watch` does for a task it is shown. So the web process delivers about 5,000
pushes a second while it also handles about 33 starts and 300 subscribes a
second, and joins, leaves, subscribes and unsubscribes a task channel for each
task. Every slot starts its first task at once, so their tasks keep ending and
starting nearly together: waves of about 100 starts and 900 subscribes every
3 s or so. With `--spread` slot k starts its first k/slots
of a task's length later, as people who came at different moments would, and
the same events come evenly.

Printed, over `seconds` after a warm-up: deliveries/s, push latency (update()
to the watcher) p50/p99/max, starts/s, the acks of start, subscribe and
unsubscribe, the web process's CPU (fraction of one core, and µs a delivery)
and RSS, and the load generators' CPU. With `--gc` the
web process runs under `bench.gc_web` and its garbage collections in the
window are reported too (count, pauses by generation). Updates lost are
counted over the whole run, by seq, per watcher and task.

The pages are bare websockets (`bench.connections.Watcher`, which speaks
Engine.IO and Socket.IO's text packets itself), their slots split over
`generators` processes: a thousand python-socketio clients in one process
added pauses of their own to the tail they measured. `--profile FILE` samples
the web process with py-spy over the window (raw format; a dev tool).
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
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

from bench.connections import OPEN_AT_ONCE, Watcher, raise_open_files
from bench.fanout import _own_cpu
from bench.scenarios import summary, update_time
from bench.stack import BenchStack, cpu_seconds, rss_mb, scenario_parser
from bench.watchers import _py_spy, _receive, spawned
from tests.stack import identity_cookie

PUSH_HEAD = "42/progress,"
TASK_SECONDS, RATE = 3, 5  # a task of 3 s, 5 updates a second
TERMINAL = {"succeeded", "failed", "cancelled", "lost"}
WARM_UP = 5.0  # seconds of churn before the window: every slot has turned over
ACK_TIMEOUT = 60.0
GENERATORS = 2  # load-generator processes
# A thread pool with a slot for every task, and no limit on one identity's tasks.
WORKER = ("--pool", "threads", "-c", "120")
SETTINGS = {"MAX_ACTIVE_TASKS": "100000"}


class Churn:
    """What one load generator's pages saw inside the measuring window."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.latencies_ms: list[float] = []
        self.deliveries = 0
        self.seqs: dict[tuple[int, str], list[int]] = defaultdict(list)
        self.acks_ms: dict[str, list[float]] = defaultdict(list)
        self.refused: Counter[str] = Counter()
        self.starts = 0
        self.stalled = 0
        # (page, task_id) of the ends pushed to a page and not yet dismissed.
        self.ends_seen: set[tuple[int, str]] = set()

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

    def figures(self) -> dict[str, Any]:
        """What the parent adds up over the load generators."""
        return {
            "latencies_ms": self.latencies_ms,
            "deliveries": self.deliveries,
            "lost": self.lost(),
            "acks_ms": dict(self.acks_ms),
            "refused": dict(self.refused),
            "starts": self.starts,
            "stalled": self.stalled,
        }


async def call(m: Churn, page: Watcher, number: int, event: str, payload: dict[str, Any]) -> Any:
    began = time.perf_counter()
    try:
        answer = await page.call(event, payload, timeout=ACK_TIMEOUT)
    except TimeoutError:
        answer = {"ok": False, "error": {"code": "no ack"}}
    m.ack(event, number, answer, began)
    return answer


def on_push(m: Churn, number: int, ended: dict[str, asyncio.Event]) -> Callable[[str], None]:
    def record(text: str) -> None:
        now = time.time()
        snapshot = json.loads(text[len(PUSH_HEAD) :])[1]
        m.push(number, snapshot, now)
        if snapshot.get("state") in TERMINAL:
            m.ends_seen.add((number, snapshot["task_id"]))
            ended.setdefault(snapshot["task_id"], asyncio.Event()).set()

    return record


async def slot(
    m: Churn,
    pages: list[tuple[int, Watcher]],
    ended: dict[str, asyncio.Event],
    stop: asyncio.Event,
    rate: float,
    delay: float = 0.0,
) -> None:
    """One identity's pages: a task at a time, the next started as one ends;
    the first `delay` seconds from now."""
    updates = max(1, round(TASK_SECONDS * rate))
    (owner_number, owner), *others = pages
    previous: str | None = None
    await asyncio.sleep(delay)
    while not stop.is_set():
        # As the client's unwatch: a page pushed the end has nothing to say.
        dismiss = [
            call(m, page, number, "unsubscribe", {"task_id": previous})
            for number, page in (pages if previous else [])
            if (number, previous) not in m.ends_seen
        ]
        m.ends_seen.difference_update((number, previous) for number, _ in pages)
        params = {"kind": "ticker", "params": {"updates": updates, "rate": rate}}
        answer, *_ = await asyncio.gather(call(m, owner, owner_number, "start", params), *dismiss)
        if not answer.get("ok"):
            await asyncio.sleep(1)
            continue
        task_id = answer["task"]["task_id"]
        if m.inside(time.time()):
            m.starts += 1
        await asyncio.gather(
            *(call(m, page, number, "subscribe", {"task_id": task_id}) for number, page in others)
        )
        try:
            done = ended.setdefault(task_id, asyncio.Event())
            await asyncio.wait_for(done.wait(), TASK_SECONDS + 30)
        except TimeoutError:
            m.stalled += 1  # its end never came: start the next anyway
        ended.pop(task_id, None)
        previous = task_id


def generate(
    conn: Connection,
    base_url: str,
    cookies: list[str],
    first: int,
    per_slot: int,
    rate: float,
    delays: list[float],
) -> None:
    """One load-generator process: the slots of `cookies`, their pages numbered
    from `first`, each starting its first task `delays[k]` seconds in. Sends
    "ready" once its pages are open, starts churning on the window it is sent
    back, and sends its figures after the window."""
    raise_open_files()
    m = Churn()

    async def run() -> float:
        ended: dict[str, asyncio.Event] = {}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(OPEN_AT_ONCE // 2)

            async def page(number: int) -> Watcher:
                async with gate:
                    cookie = cookies[(number - first) // per_slot]
                    w = await Watcher.open(http, base_url, cookie)
                w.on_push = on_push(m, number, ended)
                return w

            numbers = range(first, first + len(cookies) * per_slot)
            opened = await asyncio.gather(*(page(n) for n in numbers))
            pages = list(zip(numbers, opened, strict=True))
            # The generator's own collector pauses would count as push latency.
            gc.collect()
            gc.freeze()
            loop = asyncio.get_running_loop()
            conn.send("ready")
            m.window = await loop.run_in_executor(None, conn.recv)
            stop = asyncio.Event()
            groups = [pages[k * per_slot : (k + 1) * per_slot] for k in range(len(cookies))]
            loops = [
                asyncio.create_task(slot(m, group, ended, stop, rate, delay))
                for group, delay in zip(groups, delays, strict=True)
            ]
            await asyncio.sleep(max(0.0, m.window[0] - time.time()))
            cpu = _own_cpu()
            await asyncio.sleep(max(0.0, m.window[1] - time.time()))
            used = _own_cpu() - cpu
            stop.set()
            await asyncio.gather(*loops)
            gc.unfreeze()
            await asyncio.gather(*(w.close() for _, w in pages), return_exceptions=True)
            return used

    used = asyncio.run(run())
    conn.send({**m.figures(), "cpu_s": used})


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
    generators: int = GENERATORS,
    before_window: Callable[[int], Any] | None = None,
    spread: bool = False,
) -> dict[str, Any]:
    """`slots` identities of `per_slot` pages each, a 3 s task at a time per
    slot; `before_window(pid)`, if given, is called with the web pid as the
    window opens (a profiler's hook). All slots start at once, and their
    tasks end and start again nearly together; with `spread`, slot k starts
    its first task k/slots of a task's length later, as people who came at
    different moments would."""
    raise_open_files()
    cookies = [identity_cookie(stack.base_url) for _ in range(slots)]
    web = stack.web.pid
    generators = max(1, min(generators, slots))
    share = [slots // generators + (g < slots % generators) for g in range(generators)]
    firsts = [sum(share[:g]) for g in range(generators)]
    delays = [k * TASK_SECONDS / slots if spread else 0.0 for k in range(slots)]
    args = [
        (
            stack.base_url,
            cookies[first : first + n],
            first * per_slot,
            per_slot,
            rate,
            delays[first : first + n],
        )
        for first, n in zip(firsts, share, strict=True)
    ]
    with spawned(generate, args) as pipes:
        for parent in pipes:
            _receive(parent, 600)
        window = (time.time() + warm_up, time.time() + warm_up + seconds)
        for parent in pipes:
            parent.send(window)
        time.sleep(max(0.0, window[0] - time.time()))
        if before_window is not None:
            before_window(web)
        if gc_folder:
            os.kill(web, signal.SIGUSR1)
        cpu_web = cpu_seconds(web)
        time.sleep(max(0.0, window[1] - time.time()))
        web_cpu = (cpu_seconds(web) - cpu_web) / seconds
        if gc_folder:
            os.kill(web, signal.SIGUSR1)
        parts = [_receive(parent, 120) for parent in pipes]
    latencies = [x for part in parts for x in part["latencies_ms"]]
    acks: dict[str, list[float]] = defaultdict(list)
    refused: Counter[str] = Counter()
    for part in parts:
        for event, ms in part["acks_ms"].items():
            acks[event] += ms
        refused.update(part["refused"])
    deliveries = sum(part["deliveries"] for part in parts)
    per_s = deliveries / seconds
    result: dict[str, Any] = {
        "watchers": slots * per_slot,
        "slots": slots,
        "updates_per_s": rate,
        "seconds": seconds,
        "generators": generators,
        "spread": spread,
        "deliveries_per_s": round(per_s, 1),
        **summary(latencies),
        "lost": sum(part["lost"] for part in parts),
        "starts_per_s": round(sum(part["starts"] for part in parts) / seconds, 1),
        "stalled": sum(part["stalled"] for part in parts),
        "refused": dict(refused),
        **{f"{event}_ack": summary(ms) for event, ms in acks.items()},
        "web_cpu": round(web_cpu, 3),
        "web_us_per_delivery": round(web_cpu / per_s * 1e6, 1) if per_s else None,
        "web_rss_mb": round(rss_mb(web), 1),
        # All the load generators together, in cores.
        "load_generator_cpu": round(sum(part["cpu_s"] for part in parts) / seconds, 3),
        "samples_ms": latencies,
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
        f"  web CPU {r['web_cpu']:.0%} of a core ({r['web_us_per_delivery']} µs a delivery), "
        f"RSS {r['web_rss_mb']} MB; load generators ({r['generators']}) CPU "
        f"{r['load_generator_cpu']:.0%}"
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
    parser.add_argument(
        "--generators", type=int, default=GENERATORS, help="load-generator processes"
    )
    parser.add_argument("--profile", metavar="FILE", help="py-spy record the web process (raw)")
    parser.add_argument(
        "--spread", action="store_true", help="the slots' first starts spread over a task's length"
    )
    args = parser.parse_args()
    hook = _py_spy(args.profile, args.seconds) if args.profile else None
    stack = BenchStack(WORKER, {**SETTINGS, **dict(args.set)})
    folder = None
    if args.gc:
        folder = Path(tempfile.mkdtemp(prefix="progressbar-gc-"))
        stack.web_args = (stack.web_args[0], "-m", "bench.gc_web", str(folder))
    with stack:
        result = churn(
            stack,
            args.slots,
            args.per_slot,
            args.seconds,
            folder,
            rate=args.rate,
            generators=args.generators,
            spread=args.spread,
            before_window=hook,
        )
    show(result)
    result.pop("samples_ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
