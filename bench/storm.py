"""`python -m bench.storm [--watchers 1000] [--rounds 3]`: storms on one web process.

`watchers` Socket.IO connections of one identity are opened first. Then, each
round, a new task starts (a ticker at 5 updates/s, as a task that many people
watch) and every connection sends `subscribe` for it at the same moment, as
when a thousand pages learn of one deploy; then every connection sends `list`
at once, as a page does after its connection comes back; then the task is
cancelled. Printed for each event: ack latency from the moment the storm was
sent (p50, p99, max), how many acks were correct (the task, no older than it
was when the storm began), how many were refused, by code (`unavailable` above
all), and the web process's CPU time per request.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter
from typing import Any

import requests
import socketio

from bench.fanout import CONNECT_AT_ONCE, cancel_all, start_tickers
from bench.scenarios import summary
from bench.stack import BenchStack, cpu_seconds, rss_mb, scenario_parser
from tests.stack import identity_cookie

NAMESPACE = "/progress"
ACK_TIMEOUT = 120.0
# A thread pool for the tickers, and no limit on one identity's tasks.
WORKER = ("--pool", "threads", "-c", "20")
SETTINGS = {"MAX_ACTIVE_TASKS": "1000"}


async def open_clients(base_url: str, cookie: str, count: int) -> list[socketio.AsyncClient]:
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one() -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        async with gate:
            await client.connect(
                base_url,
                namespaces=[NAMESPACE],
                transports=["websocket"],
                headers={"Cookie": cookie},
                wait_timeout=60,
            )
        return client

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def storm(
    clients: list[socketio.AsyncClient], event: str, payload: dict[str, Any]
) -> tuple[list[float], list[Any]]:
    """Every client sends `event` at once: each ack's latency (ms) and answer."""
    # The load generator's collector pauses would count as the server's time.
    gc.collect()
    gc.freeze()
    began = time.perf_counter()

    async def one(client: socketio.AsyncClient) -> tuple[float, Any]:
        try:
            answer = await client.call(event, payload, namespace=NAMESPACE, timeout=ACK_TIMEOUT)
        except socketio.exceptions.TimeoutError:
            answer = {"ok": False, "error": {"code": "no ack", "message": ""}}
        return (time.perf_counter() - began) * 1000, answer

    done = await asyncio.gather(*(one(c) for c in clients))
    gc.unfreeze()
    return [ms for ms, _ in done], [answer for _, answer in done]


def outcomes(answers: list[Any], correct: Any) -> dict[str, int]:
    """How many answers were correct, wrong, or refused (by error code)."""
    counts: Counter[str] = Counter()
    for answer in answers:
        if isinstance(answer, dict) and answer.get("ok") is False:
            counts[str(answer.get("error", {}).get("code"))] += 1
        else:
            counts["correct" if correct(answer) else "wrong"] += 1
    return {"correct": 0, "unavailable": 0, **counts}


def current(base_url: str, cookie: str, task_id: str) -> dict[str, Any]:
    url = f"{base_url}/api/tasks/{task_id}"
    response = requests.get(url, headers={"Cookie": cookie}, timeout=30)
    response.raise_for_status()
    return response.json()["task"]


def storms(stack: BenchStack, watchers: int, rounds: int) -> dict[str, Any]:
    """`rounds` storms of `subscribe` and of `list` from `watchers` connections."""
    base = stack.base_url
    cookie = identity_cookie(base)
    task_ids: list[str] = []

    async def run() -> dict[str, Any]:
        opened = time.perf_counter()
        clients = await open_clients(base, cookie, watchers)
        result: dict[str, Any] = {"open_s": round(time.perf_counter() - opened, 1)}
        sub_ms: list[float] = []
        list_ms: list[float] = []
        sub_counts: Counter[str] = Counter()
        list_counts: Counter[str] = Counter()
        cpu_used = {"subscribe": 0.0, "list": 0.0}
        try:
            for _ in range(rounds):
                (task_id,) = start_tickers(stack, cookie, 1, rate=5)
                task_ids.append(task_id)
                before = current(base, cookie, task_id)["seq"]
                cpu = cpu_seconds(stack.web.pid)
                ms, answers = await storm(clients, "subscribe", {"task_id": task_id})
                cpu_used["subscribe"] += cpu_seconds(stack.web.pid) - cpu
                sub_ms += ms
                sub_counts.update(
                    outcomes(
                        answers,
                        lambda a, t=task_id, s=before: (
                            a["task"]["task_id"] == t and a["task"]["seq"] >= s
                        ),
                    )
                )
                cpu = cpu_seconds(stack.web.pid)
                ms, answers = await storm(clients, "list", {})
                cpu_used["list"] += cpu_seconds(stack.web.pid) - cpu
                list_ms += ms
                list_counts.update(
                    outcomes(answers, lambda a, t=task_id: t in {x["task_id"] for x in a["tasks"]})
                )
                # Its bars end: the next storm is for the next task alone.
                cancel_all(stack, cookie, [task_id])
            result["web_rss_mb"] = round(rss_mb(stack.web.pid), 1)
        finally:
            await asyncio.gather(*(c.disconnect() for c in clients))
        per_request = {k: round(v * 1e6 / len(clients) / rounds) for k, v in cpu_used.items()}
        result["subscribe"] = {
            **summary(sub_ms),
            **sub_counts,
            "web_cpu_us": per_request["subscribe"],
            "samples_ms": sub_ms,
        }
        result["list"] = {**summary(list_ms), **list_counts, "web_cpu_us": per_request["list"]}
        return result

    try:
        result = asyncio.run(run())
    finally:
        cancel_all(stack, cookie, task_ids)
    return {"watchers": watchers, "rounds": rounds, **result}


def _figures(event: str, r: dict[str, Any]) -> str:
    figures = ("n", "correct", "p50_ms", "p99_ms", "max_ms", "web_cpu_us", "samples_ms")
    others = {k: v for k, v in r.items() if k not in figures}
    return (
        f"  {event:<9} ack p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms; "
        f"{r['correct']} of {r['n']} correct; others {others}; "
        f"web CPU {r['web_cpu_us']} µs each"
    )


def show(result: dict[str, Any]) -> None:
    print(
        f"{result['watchers']} connections (opened in {result['open_s']} s), "
        f"{result['rounds']} storms of each event"
    )
    print("\n".join(_figures(event, result[event]) for event in ("subscribe", "list")))


def main() -> None:
    parser = scenario_parser(__doc__)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with BenchStack(WORKER, {**SETTINGS, **dict(args.set)}) as stack:
        result = storms(stack, args.watchers, args.rounds)
    show(result)
    result["subscribe"].pop("samples_ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
