"""`python -m bench [--quick]`: run every scenario on the real stack, print one table,
write the figures as JSON and draw the plots.

The full run takes about fifteen minutes on a 2-core machine; `--quick` is a
seconds-long smoke run of the same code (figures not meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import churn, connections, fanout, restart, scaleout, scenarios, storm, watchers
from bench.report import plot, table
from bench.stack import BenchStack

FULL = {
    "latency_updates": 300,
    "browser_updates": 100,
    "browser_runs": 3,
    "reporter_calls": 1_000_000,
    "update_state_calls": 5_000,
    "idle_seconds": 60,
    "fanout": [100, 250, 500, 1000],
    "fanout_seconds": 15,
    "poll_watchers": 100,
    "poll_seconds": 20,
    "scaleout_rate": 2000,
    "scaleout_seconds": 10,
    # Idle watchers on one web process, by server: (server, watchers).
    "connections": [("eventlet", 10_000), ("gevent", 10_000), ("threading", 2_000)],
    "connections_hold": 30,
    "storm_watchers": 1000,
    "storm_rounds": 3,
    # Slots of one task at a time, watchers per slot, seconds measured.
    "churn": (100, 10, 20),
    # A web restart with open bars: (watchers, tickers).
    "restart": (10_000, 100),
    # Watchers on one web process, all receiving: (watchers, tasks, updates/s), seconds.
    "watchers": (10_000, 100, 1.0),
    "watchers_seconds": 15,
}
QUICK = {
    "latency_updates": 20,
    "browser_updates": 20,
    "browser_runs": 1,
    "reporter_calls": 100_000,
    "update_state_calls": 200,
    "idle_seconds": 2,
    "fanout": [20, 50],
    "fanout_seconds": 2,
    "poll_watchers": 10,
    "poll_seconds": 2,
    "scaleout_rate": 200,
    "scaleout_seconds": 1,
    "connections": [("eventlet", 30)],
    "connections_hold": 1,
    "storm_watchers": 20,
    "storm_rounds": 1,
    "churn": (3, 3, 2),
    "restart": (40, 4),
    "watchers": (40, 4, 2.0),
    "watchers_seconds": 2,
}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB, Python {platform.python_version()}"


def run(sizes: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M")}
    # The worker as users run it: prefork, 8 processes. A coalescing window
    # shorter than the ticker's period: at the default 0.1 s, a 10/s stream sits
    # on the window's edge, and one update late by more than a hundredth of a
    # second holds every later one back by that lateness, which would be
    # measured here as latency of the path (13-28 ms instead of about 2 ms).
    with BenchStack(env_extra={"PROGRESS_INTERVAL": "0.05"}) as stack:
        results["latency"] = scenarios.socketio_latency(stack, sizes["latency_updates"])
        results["browser"] = scenarios.browser_latency(
            stack, sizes["browser_updates"], sizes["browser_runs"]
        )
        results["reporter"] = scenarios.reporter_cost(
            stack, sizes["reporter_calls"], sizes["update_state_calls"]
        )
        results["idle"] = scenarios.idle_bar(stack, sizes["idle_seconds"])
    # Hundreds of sleeping tickers: a thread pool, and no per-identity limit.
    many = BenchStack(("--pool", "threads", "-c", "120"), {"MAX_ACTIVE_TASKS": "100000"})
    with many as stack:
        # Watchers in a load-generator process of their own, reading their
        # websockets bare: python-socketio's clients, a thousand in this
        # process, added pauses of their own to the tail (p99 112 ms at 1,000
        # with the web process at 17 % of a core).
        seconds = sizes["fanout_seconds"]
        results["fanout"] = [
            _one_generator(watchers.watchers(stack, w, max(1, w // 10), 5, seconds, 1))
            for w in sizes["fanout"]
        ]
        results["push_vs_poll"] = fanout.push_vs_poll(
            stack, sizes["poll_watchers"], 10, sizes["poll_seconds"]
        )
        results["storm"] = storm.storms(stack, sizes["storm_watchers"], sizes["storm_rounds"])
        slots, per_slot, seconds = sizes["churn"]
        # Slots started all at once, whose tasks then end and start in waves;
        # and started over a task's length, as people come and go.
        results["churn"] = churn.churn(stack, slots, per_slot, seconds, warm_up=min(5, seconds))
        results["churn_spread"] = churn.churn(
            stack, slots, per_slot, seconds, warm_up=min(5, seconds), spread=True
        )
    # Four web processes, each hosting a quarter of the rooms.
    webs = BenchStack(env_extra={"MAX_ACTIVE_TASKS": "100000"}, webs=scaleout.WEBS)
    with webs as stack:
        results["scaleout"] = scaleout.scaleout(
            stack, 50, sizes["scaleout_rate"], sizes["scaleout_seconds"]
        )
    count, tasks, rate = sizes["watchers"]
    results["watchers"] = watchers.run(count, tasks, rate, sizes["watchers_seconds"])
    results["connections"] = [
        connections.connections(watchers, server, sizes["connections_hold"])
        for server, watchers in sizes["connections"]
    ]
    bars, tickers = sizes["restart"]
    results["restart"] = restart.restart(bars, tickers)
    # The same restart under the gunicorn configuration, its stop included.
    results["restart_gevent"] = restart.restart(bars, tickers, server="gevent")
    return results


def _one_generator(result: dict[str, Any]) -> dict[str, Any]:
    """A fan-out run's figures with its one load generator's CPU as a number."""
    return {**result, "load_generator_cpu": sum(result["load_generator_cpu"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    args = parser.parse_args()
    results = run(QUICK if args.quick else FULL)
    results["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "results"
    print(table(results))
    slim = json.loads(json.dumps(results, default=str))
    samples = [slim["latency"], slim["browser"], *slim["fanout"], slim["storm"]["subscribe"]]
    for section in [*samples, slim["churn"], slim["churn_spread"], slim["watchers"]]:
        section.pop("samples_ms", None)
    (args.out / f"{name}.json").write_text(json.dumps(slim, indent=2) + "\n")
    plot(results, args.out / f"{name}.png")
    print(f"\nwrote {args.out / f'{name}.json'} and {args.out / f'{name}.png'}")


if __name__ == "__main__":
    main()
