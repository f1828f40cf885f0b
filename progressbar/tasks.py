"""The demo tasks: thin Celery wrappers that report the work in `demos`."""

from __future__ import annotations

import time
from typing import Any

from celery import Task, shared_task

from . import demos
from .celery_app import progress
from .errors import TaskError


@shared_task(bind=True, name="progressbar.simulate")
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
        for value, pause in demos.simulate_steps(duration, seed):
            demos.pause(pause, p.check)  # a cancel stops it within a fraction of a second
            if fail_at is not None and value >= fail_at:
                raise TaskError(f"{prefix}Simulated failure at {value}% (fail_at={fail_at})")
            steps += 1
            p.update(value, message=f"{prefix}Step {steps}: {value}%")
    return {"steps": steps, "seconds": round(time.monotonic() - started, 2)}


@shared_task(bind=True, name="progressbar.primes")
def primes(self: Task, limit: int = 10**6) -> int:
    """Real CPU work: the number of primes below `limit`."""
    with progress(self, total=limit, message=f"Sieving below {limit:,}") as p:
        return demos.count_primes(limit, report=p.update)


@shared_task(bind=True, name="progressbar.ticker")
def ticker(self: Task, updates: int = 100, rate: float = 10) -> int:
    """Steady updates for benchmarks: each message is the wall time of its update()."""
    with progress(self, total=updates) as p:
        started = time.monotonic()
        for i in range(1, updates + 1):
            demos.pause(started + i / rate - time.monotonic(), p.check)
            p.update(i, message=f"{time.time():.6f}")
    return updates
