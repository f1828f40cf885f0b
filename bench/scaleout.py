"""`python -m bench.scaleout [rate] [seconds]`: what a push for a room a web
process does not host costs that process, with 4 web processes each hosting a
quarter of the rooms: pushes on their tasks' own channels, then on the shared
channel.

The pushes come from the store's own scripts (`republish`, the route every
push takes), called from this process at `rate` pushes/s for the rooms of web
process 0 only: web 0 delivers them, webs 1-3 host other rooms and have
nothing to deliver. Each process's CPU over the window, less its CPU over an
equal window without pushes, divided by the pushes, is its cost per push. If
each of N web processes spends `c` seconds on every push of the cluster for
rooms it does not host, the cluster's pushes stop fitting in any of them at
1/c pushes/s, however many processes there are: the ceiling.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bench.stack import BenchStack, cpu_seconds
from progressbar.snapshot import queued_snapshot
from progressbar.state import EXTENSION
from progressbar.store import Store
from tests.stack import ProgressClient, identity_cookie, wait_until

WEBS = 4
BATCH = 50  # pushes per script call


def publisher(stack: BenchStack) -> Store:
    """The store as the stack's processes build it, from the same environment."""
    from demo import create_app

    saved = dict(os.environ)
    os.environ.update(stack.env)
    try:
        return create_app().extensions[EXTENSION].store  # type: ignore[no-any-return]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cpu_of(stack: BenchStack) -> list[float]:
    return [cpu_seconds(p.pid) for p in stack.web_processes.values()]


def scaleout(
    stack: BenchStack, rooms_per_web: int, rate: float, seconds: float, shared: bool = False
) -> dict[str, Any]:
    """Push `rate`/s for web 0's rooms for `seconds`; each web process's CPU per
    push. `shared`: published on the shared channel, as a publisher without
    task channels does (an app's own SocketIO, a worker of an earlier version)."""
    store = publisher(stack)
    if shared:
        store.task_channels = False
    rooms: list[list[str]] = [[] for _ in range(WEBS)]
    for i in range(WEBS * rooms_per_web):
        task_id = f"scaleout-{i}-{time.time_ns()}"
        store.create(task_id, f"bench-{i}", queued_snapshot(task_id, "ticker", time.time()), True)
        store.sent(task_id)
        rooms[i % WEBS].append(task_id)
    clients = []
    try:
        for web, url in enumerate(stack.base_urls):
            client = ProgressClient(url, identity_cookie(url))
            clients.append(client)
            for task_id in rooms[web]:
                assert client.call("subscribe", {"task_id": task_id})["ok"]
        time.sleep(1)  # let the subscribes' own work settle
        before = cpu_of(stack)
        time.sleep(seconds)
        idle = [b - a for a, b in zip(before, cpu_of(stack), strict=True)]

        pushed = 0
        hosted = rooms[0]
        started = time.monotonic()
        before = cpu_of(stack)
        while (elapsed := time.monotonic() - started) < seconds:
            if pushed >= elapsed * rate:
                time.sleep(BATCH / rate / 4)
                continue
            at = pushed % len(hosted)
            batch = (hosted + hosted)[at : at + BATCH]
            pushed += store.republish(batch, unfinished=set())
        busy = [b - a for a, b in zip(before, cpu_of(stack), strict=True)]
        window = time.monotonic() - started
        # Every push reached web 0's watcher; none of the others had one to get.
        wait_until(lambda: len(clients[0].pushes) >= pushed, 30, "web 0's watcher got every push")
        others_got = sum(len(c.pushes) for c in clients[1:])
    finally:
        for client in clients:
            client.close()
    per_push_us = [max(0.0, b - i) / pushed * 1e6 for b, i in zip(busy, idle, strict=True)]
    foreign_us = sum(per_push_us[1:]) / (WEBS - 1)
    return {
        "channel": "shared" if shared else "task",
        "web_processes": WEBS,
        "rooms": WEBS * rooms_per_web,
        "pushes": pushed,
        "pushes_per_s": round(pushed / window),
        "hosted_us_per_push": round(per_push_us[0], 1),
        "foreign_us_per_push": round(foreign_us, 1),
        "foreign_us_per_push_each": [round(u, 1) for u in per_push_us[1:]],
        "foreign_cpu": round(foreign_us * pushed / window / 1e6, 3),
        # Pushes/s at which pushes for others' rooms alone fill a core of every process.
        "ceiling_pushes_per_s": round(1e6 / foreign_us) if foreign_us > 0.5 else None,
        "delivered_on_web0": len(clients[0].pushes),
        "delivered_elsewhere": others_got,
    }


def main(rate: float = 2000, seconds: float = 10, rooms_per_web: int = 50) -> None:
    stack = BenchStack(env_extra={"MAX_ACTIVE_TASKS": "100000"}, webs=WEBS)
    with stack:
        for shared in (False, True):
            result = scaleout(stack, rooms_per_web, rate, seconds, shared)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[0]) if args else 2000, float(args[1]) if len(args) > 1 else 10)
