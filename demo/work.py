"""The demo tasks' work, as plain functions that know nothing of Celery."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from math import isqrt


def simulate_steps(duration: float, seed: int | None = None) -> Iterator[tuple[int, float]]:
    """Yield (progress, pause) pairs: random steps of 3–10 points up to 100.

    Each pause is in proportion to its step, so the pauses add up to `duration`.
    """
    rng = random.Random(seed)
    progress = 0
    while progress < 100:
        step = min(rng.randint(3, 10), 100 - progress)
        progress += step
        yield progress, duration * step / 100


def pause(seconds: float, check: Callable[[], None], slice_: float = 0.1) -> None:
    """Sleep `seconds`, calling `check()` at least every `slice_` seconds."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, slice_))
        check()


def count_primes(
    limit: int, report: Callable[[int], None] | None = None, segment: int = 1 << 18
) -> int:
    """Count the primes below `limit` with a segmented sieve.

    `report(n)` is called after each segment with how many numbers are done.
    """
    if limit < 3:
        if report:
            report(limit)
        return 0
    root = isqrt(limit - 1)
    base = bytearray([1]) * (root + 1)
    base[:2] = b"\0\0"
    for i in range(2, isqrt(root) + 1):
        if base[i]:
            base[i * i :: i] = bytes(len(range(i * i, root + 1, i)))
    small = [i for i in range(2, root + 1) if base[i]]
    count = 0
    for low in range(0, limit, segment):
        high = min(low + segment, limit)
        sieve = bytearray([1]) * (high - low)
        for p in small:
            if p * p >= high:
                break
            start = max(p * p, -(-low // p) * p) - low
            sieve[start::p] = bytes(len(range(start, high - low, p)))
        if low == 0:
            sieve[: min(2, high)] = bytes(min(2, high))
        count += sieve.count(1)
        if report:
            report(high)
    return count
