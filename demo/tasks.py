"""The demo's task kinds: thin Celery tasks reporting the work in `work`,
offered to clients through progressbar's public API."""

from __future__ import annotations

import time
from typing import Any

from celery import Task, shared_task

from progressbar import Param, TaskError, progress
from progressbar.kinds import SAFE_INTEGER

from . import progress_bars, work

DURATION = Param.float_range(
    "duration", 0.1, 3600, default=30, label="Duration (s)", help="How long the whole run takes"
)
SEED = Param.int_range("seed", label="Seed", help="Makes the steps repeatable")


@progress_bars.kind(
    "simulate",
    title="Simulated job",
    description="Advances in random steps of 3–10 points, sleeping in proportion.",
    params=[
        DURATION,
        Param.int_range(
            "fail_at", 1, 99, label="Fail at (%)", help="Raise once progress passes this"
        ),
        SEED,
        Param.string("label", 80, label="Label", help="Shown in each step's message"),
    ],
    # Its longest run, and a minute to spare.
    time_limit=3660,
)
@shared_task(bind=True, name="demo.simulate")
def simulate(
    self: Task,
    duration: float = 30,
    fail_at: int | None = None,
    seed: int | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """The tutorial's task: random steps to 100, sleeping in proportion."""
    started = time.monotonic()
    steps = 0
    prefix = f"{label}: " if label else ""
    with progress(self, total=100, message=f"{prefix}Starting") as p:
        for value, pause in work.simulate_steps(duration, seed):
            work.pause(pause, p.check)  # a cancel stops it within a fraction of a second
            if fail_at is not None and value >= fail_at:
                raise TaskError(f"{prefix}Simulated failure at {value}% (fail_at={fail_at})")
            steps += 1
            p.update(value, message=f"{prefix}Step {steps}: {value}%")
    return {"steps": steps, "seconds": round(time.monotonic() - started, 2)}


@progress_bars.kind(
    "primes",
    title="Count primes",
    description="Real CPU work: a segmented sieve counts the primes below a limit.",
    params=[
        Param.int_range(
            "limit", 2, 10**9, default=10**6, label="Below", help="Count the primes below this"
        )
    ],
)
@shared_task(bind=True, name="demo.primes")
def primes(self: Task, limit: int = 10**6) -> int:
    """Real CPU work: the number of primes below `limit`."""
    with progress(self, total=limit, message=f"Sieving below {limit:,}") as p:
        return work.count_primes(limit, report=p.update)


@progress_bars.kind(
    "blocking",
    title="Blocking call",
    description=(
        "One long call that reports nothing until it returns: a cancel ends it "
        "by terminating its worker process."
    ),
    params=[DURATION],
)
@shared_task(bind=True, name="demo.blocking")
def blocking(self: Task, duration: float = 30) -> dict[str, Any]:
    """A call that cannot be interrupted (a library's, a C extension's): it
    never checks for a cancel."""
    time.sleep(duration)
    return {"seconds": duration}


@progress_bars.kind(
    "ticker",
    description="Reports at a fixed rate; each message is its update's wall time.",
    params=[
        Param.int_range("updates", 1, 10**6, default=100),
        Param.float_range("rate", 0.1, 1000, default=10, label="Per second"),
    ],
    hidden=True,  # for benchmarks
)
@shared_task(bind=True, name="demo.ticker")
def ticker(self: Task, updates: int = 100, rate: float = 10) -> int:
    """Steady updates for benchmarks: each message is the wall time of its update()."""
    with progress(self, total=updates) as p:
        started = time.monotonic()
        for i in range(1, updates + 1):
            work.pause(started + i / rate - time.monotonic(), p.check)
            p.update(i, message=f"{time.time():.6f}")
    return updates


def batch_parts(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each part is a simulation of `duration`; only the first may fail, and
    each gets its own seed, so the parts differ yet repeat."""
    parts = []
    for index in range(params["parts"]):
        part = {"duration": params["duration"]}
        if "seed" in params:
            part["seed"] = params["seed"] + index
        if "fail_at" in params and index == 0:
            part["fail_at"] = params["fail_at"]
        parts.append(part)
    return parts


progress_bars.group(
    "batch",
    parts_of="simulate",
    split=batch_parts,
    title="Batch of simulations",
    description="One bar for a group: the parts run in parallel, each a simulation.",
    params=[
        # At most a visitor's MAX_ACTIVE_TASKS (6 by default): each part counts.
        Param.int_range("parts", 2, 6, default=4, label="Parts", help="How many simulations"),
        Param.float_range(
            "duration", 0.1, 3600, default=10, label="Duration (s)", help="Of each part"
        ),
        Param.int_range(
            "fail_at", 1, 99, label="Fail at (%)", help="Part 1 fails once it passes this"
        ),
        Param.int_range(
            "seed",
            -SAFE_INTEGER,
            SAFE_INTEGER - 32,
            label="Seed",
            help="Makes the steps repeatable",
        ),
    ],
)
