"""`python -m bench.scale`: delivery throughput with one web process, then two,
on one Redis, under a load meant to saturate one (20 watchers per task)."""

from __future__ import annotations

import json
import sys

from bench import fanout
from bench.stack import BenchStack


def main(watchers: int = 2000, tasks: int = 100, rate: float = 10, seconds: float = 15) -> None:
    results = []
    for webs in (1, 2):
        stack = BenchStack(
            ("--pool", "threads", "-c", str(tasks + 20)), {"MAX_ACTIVE_TASKS": "100000"}, webs=webs
        )
        with stack:
            r = fanout.fanout(stack, watchers, tasks, rate, seconds)
        r.pop("samples_ms")
        r["web_processes"] = webs
        results.append(r)
        print(json.dumps(r), flush=True)
    one, two = results
    print(
        f"deliveries/s: 1 web {one['deliveries_per_s']}, 2 webs {two['deliveries_per_s']} "
        f"({two['deliveries_per_s'] / one['deliveries_per_s']:.2f}x) of "
        f"{one['expected_per_s']} offered"
    )


if __name__ == "__main__":
    main(*(float(a) if "." in a else int(a) for a in sys.argv[1:]))  # type: ignore[arg-type]
