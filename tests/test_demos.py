"""The demo tasks' work functions, without Celery."""

from __future__ import annotations

import pytest

from demo.work import count_primes, simulate_steps


@pytest.mark.parametrize(
    ("limit", "count"),
    [(2, 0), (3, 1), (10, 4), (100, 25), (1000, 168), (10**6, 78498), (7919, 999), (7920, 1000)],
)
def test_count_primes(limit: int, count: int) -> None:
    assert count_primes(limit) == count


def test_count_primes_across_segments_reports_progress() -> None:
    seen: list[int] = []
    assert count_primes(100_003, report=seen.append, segment=1000) == 9592
    assert seen == sorted(seen)
    assert seen[-1] == 100_003
    assert len(seen) == 101


@pytest.mark.parametrize("seed", [1, 2, 3, None])
def test_simulate_steps_reach_100_in_steps_of_3_to_10(seed: int | None) -> None:
    steps = list(simulate_steps(12.0, seed))
    values = [v for v, _ in steps]
    assert values[-1] == 100
    deltas = [b - a for a, b in zip([0, *values], values, strict=False)]
    assert all(3 <= d <= 10 for d in deltas[:-1])
    assert 1 <= deltas[-1] <= 10
    assert sum(pause for _, pause in steps) == pytest.approx(12.0)


def test_simulate_steps_repeat_with_a_seed() -> None:
    assert list(simulate_steps(1, 42)) == list(simulate_steps(1, 42))
