"""The reporter's coalescing, rate and ETA, on an injected clock: no sleeping."""

from __future__ import annotations

import math
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from progressbar import Progress, TaskCancelled
from progressbar.snapshot import FIELDS, queued_snapshot
from progressbar.store import dumps
from progressbar.worker.rate import EMA
from progressbar.worker.reporter import UNSHOWN_RESULT
from tests.clock import Clock
from tests.stack import strict_json, wait_until


class Sink:
    """Stands in for Redis + the queue: numbers each snapshot like the store does."""

    def __init__(self) -> None:
        self.pushed: list[dict[str, Any]] = []

    def __call__(self, task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        snapshot = {**snapshot, "seq": len(self.pushed) + 2}
        self.pushed.append(snapshot)
        return snapshot


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> Sink:
    return Sink()


def reporter(clock: Clock, sink: Sink, **kwargs: Any) -> Progress:
    return Progress(
        "t1", "simulate", sink, clock=clock, wall_clock=clock, autoflush=False, **kwargs
    )


def test_first_update_is_pushed_at_once(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10)
    p.update(1)
    assert [s["current"] for s in sink.pushed] == [1]
    assert sink.pushed[0]["state"] == "running"
    assert sink.pushed[0]["percent"] == 10.0


def test_updates_within_the_interval_are_coalesced(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=1000, interval=0.1)
    for i in range(1, 1001):
        p.update(i)
        clock.tick(0.001)  # 1 ms per update: one push per 100 updates
    assert 10 <= len(sink.pushed) <= 11
    times = [s["updated_at"] for s in sink.pushed]
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(times, times[1:], strict=False))


def test_final_state_is_never_dropped(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=3)
    p.update(1)
    p.update(2)  # coalesced
    p.update(3)  # coalesced
    assert sink.pushed[-1]["current"] == 1
    p.finish("succeeded", result={"answer": 42})
    last = sink.pushed[-1]
    assert (last["state"], last["current"], last["percent"], last["result"]) == (
        "succeeded",
        3,
        100.0,
        {"answer": 42},
    )


def test_context_exit_pushes_the_pending_state_when_its_window_allows(
    clock: Clock, sink: Sink
) -> None:
    with reporter(clock, sink, total=2) as p:
        p.update(1)  # held back: entering pushed the first state just now
        p.update(2)
    assert [s["current"] for s in sink.pushed] == [0]  # the window is still open
    p.finish("succeeded", result=None)
    assert sink.pushed[-1]["current"] == 2  # the terminal state carries it

    other = Sink()
    with reporter(clock, other, total=2) as q:
        q.update(1)
        q.update(2)
        clock.tick(0.2)
    assert other.pushed[-1]["current"] == 2 and other.pushed[-1]["state"] == "running"


def test_nothing_is_pushed_after_the_terminal_state(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=2)
    p.finish("failed", error="boom")
    clock.tick(5)
    p.update(2)
    p.flush()
    p.finish("succeeded", result=1)
    assert [s["state"] for s in sink.pushed] == ["failed"]
    assert sink.pushed[0]["error"] == "boom"
    assert "result" not in sink.pushed[0]


def test_iter_counts_items_and_takes_total_from_len(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink)
    seen = []
    for item in p.iter(["a", "b", "c"]):
        seen.append(item)
        clock.tick(1)
    p.flush()
    assert seen == ["a", "b", "c"]
    assert sink.pushed[0]["current"] == 0 and sink.pushed[0]["total"] == 3
    assert sink.pushed[-1]["current"] == 3 and sink.pushed[-1]["percent"] == 100.0


def test_iter_of_a_generator_has_no_total(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink)
    for _ in p.iter(x for x in range(5)):
        clock.tick(1)
    assert sink.pushed[-1]["total"] is None
    assert sink.pushed[-1]["percent"] is None
    assert sink.pushed[-1]["eta"] is None


def test_rate_is_steady_for_a_steady_task(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=100)
    for i in range(1, 21):
        clock.tick(0.5)
        p.update(i * 2)  # 2 units every 0.5 s
    assert sink.pushed[-1]["rate"] == pytest.approx(4.0)
    # 60 units left at 4 units/s
    assert sink.pushed[-1]["eta"] == pytest.approx(15.0)


def test_rate_and_eta_are_asked_directly_and_their_smoothing_is_the_callers(
    clock: Clock, sink: Sink
) -> None:
    p = reporter(clock, sink, total=10, smoothing=1.0, eta_min_samples=1, eta_min_elapsed=0)
    assert p.rate() is None and p.eta(clock.now) is None
    clock.tick(1)
    p.update(1)
    clock.tick(1)
    p.update(4)  # smoothing 1.0: only the last step counts
    assert p.rate() == pytest.approx(3.0)
    assert p.eta(clock.now) == pytest.approx(2.0)


def test_rate_follows_a_change_of_speed_smoothly(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10_000)
    n = 0
    for _ in range(20):
        clock.tick(1)
        n += 10
        p.update(n)
    assert sink.pushed[-1]["rate"] == pytest.approx(10.0)
    rates = []
    for _ in range(20):
        clock.tick(1)
        n += 100
        p.update(n)
        rates.append(sink.pushed[-1]["rate"])
    # Moves towards 100/s without overshooting, not in one jump.
    assert 10 < rates[0] < 100
    assert rates == sorted(rates)
    assert rates[-1] == pytest.approx(100, rel=0.01)


def test_no_eta_until_it_means_something(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=100)
    p.update(0)
    assert sink.pushed[-1]["eta"] is None  # no sample yet
    clock.tick(0.2)
    p.update(10)
    assert sink.pushed[-1]["rate"] == pytest.approx(50)
    assert sink.pushed[-1]["eta"] is None  # one sample, 0.2 s in
    clock.tick(0.2)
    p.update(20)
    assert sink.pushed[-1]["eta"] is None  # two samples, still under a second
    clock.tick(0.7)
    p.update(55)
    assert sink.pushed[-1]["eta"] == pytest.approx(45 / sink.pushed[-1]["rate"], abs=0.01)


def test_no_eta_without_total_or_after_the_end(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink)
    p.update(0)
    for i in range(1, 10):
        clock.tick(1)
        p.update(i)
    assert sink.pushed[-1]["rate"] == pytest.approx(1.0)
    assert sink.pushed[-1]["eta"] is None
    clock.tick(1)
    p.update(10, total=20)
    clock.tick(1)
    p.update(11)
    assert sink.pushed[-1]["eta"] == pytest.approx(9.0)
    p.finish("succeeded", result=None)
    assert sink.pushed[-1]["eta"] is None


def test_elapsed_and_message(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10)
    p.update(1, message="first")
    clock.tick(2.5)
    p.update(2)
    assert sink.pushed[-1]["elapsed"] == 2.5
    assert sink.pushed[-1]["message"] == "first"  # kept until changed


def test_percent_is_clamped(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10)
    p.update(15)
    assert sink.pushed[-1]["percent"] == 100.0
    clock.tick(1)
    p.update(-1)
    assert sink.pushed[-1]["percent"] == 0.0


def test_numbers_that_are_not_finite_never_reach_a_snapshot(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10)
    p.update(4)
    clock.tick(1)
    p.update(math.nan)  # ignored: the bar keeps its last count
    assert (sink.pushed[-1]["current"], sink.pushed[-1]["percent"]) == (4, 40.0)
    clock.tick(1)
    p.update(5, total=math.inf)  # an infinite total is an unknown one
    assert (sink.pushed[-1]["current"], sink.pushed[-1]["total"]) == (5, None)
    assert sink.pushed[-1]["percent"] is None and sink.pushed[-1]["eta"] is None
    clock.tick(1)
    p.current = -math.inf  # set behind the reporter's back: the last count stays
    p.flush()
    for snapshot in sink.pushed:
        strict_json(dumps(snapshot))
    assert sink.pushed[-1]["current"] == 5


def test_a_message_is_always_text(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink, total=10)
    p.update(1, message=0.5)  # type: ignore[arg-type]
    assert sink.pushed[-1]["message"] == "0.5"


def test_a_result_with_no_json_text_still_ends_the_bar(clock: Clock) -> None:
    stored: list[str] = []

    def publish(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        stored.append(dumps(snapshot))  # as the store writes it
        return {**snapshot, "seq": 2}

    circular: list[Any] = []
    circular.append(circular)
    # A circular value, and a dict whose keys JSON cannot have.
    for result in (circular, {(1, 2): "pair"}):
        p = Progress("t1", "simulate", publish, clock=clock, wall_clock=clock, autoflush=False)
        final = p.finish("succeeded", result=result)
        assert final is not None and final["state"] == "succeeded" and final["result"] is None
        assert final["message"] == UNSHOWN_RESULT
        assert strict_json(stored[-1])["result"] is None


def test_a_failing_push_does_not_break_the_task(clock: Clock) -> None:
    calls = []

    def flaky(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        calls.append(snapshot["current"])
        if len(calls) == 1:
            raise ConnectionError("redis is down")
        return {**snapshot, "seq": len(calls)}

    p = reporter(clock, flaky, total=10)  # type: ignore[arg-type]
    p.update(1)  # raises inside, swallowed and kept pending
    clock.tick(1)
    p.update(2)
    assert calls == [1, 2]
    assert p.last_snapshot is not None and p.last_snapshot["current"] == 2


def test_the_time_limit_reaching_a_task_during_a_push_still_stops_it(clock: Clock) -> None:
    # Celery raises it from a signal handler, wherever the task is: often in
    # a push, whose other errors are kept from the task.
    def interrupted(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        raise SoftTimeLimitExceeded

    p = reporter(clock, interrupted, total=10)  # type: ignore[arg-type]
    with pytest.raises(SoftTimeLimitExceeded):
        p.update(1)


def test_ema_matches_tqdm_debiasing() -> None:
    ema = EMA(0.3)
    ema.add(10)
    assert ema.get() == pytest.approx(10)  # debiased: the first sample is the mean
    ema.add(20)
    assert ema.get() == pytest.approx((0.3 * 20 + 0.7 * 3) / (1 - 0.49))


def test_queued_snapshot_has_every_field() -> None:
    snapshot = queued_snapshot("t", "primes", 123.4567)
    assert set(snapshot) == set(FIELDS) - {"seq"}  # the store gives the seq
    assert snapshot["state"] == "queued"


def test_a_cancel_request_stops_the_task_at_its_next_update(clock: Clock) -> None:
    cancel = {"asked": False}

    def publish(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        return {**snapshot, "seq": 2, **({"cancel_requested": True} if cancel["asked"] else {})}

    p = reporter(clock, publish)  # type: ignore[arg-type]
    p.update(1)
    cancel["asked"] = True
    clock.tick(1)
    with pytest.raises(TaskCancelled):
        p.update(2)  # the push learns of the request and stops the task
    with pytest.raises(TaskCancelled):
        p.check()


def test_iter_stops_on_cancel(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink)
    done = []
    with pytest.raises(TaskCancelled):
        for item in p.iter(range(100)):
            done.append(item)
            clock.tick(0.05)
            if item == 10:
                p.cancel_requested = True  # as the heartbeat thread would set it
    assert 10 <= len(done) <= 13  # stopped at the next push, not at the end


def test_iter_stops_at_the_next_step_even_between_pushes(clock: Clock, sink: Sink) -> None:
    p = reporter(clock, sink)
    done = []
    with pytest.raises(TaskCancelled):
        for item in p.iter(range(100)):  # the clock stands still: no push after the first
            done.append(item)
            if item == 10:
                p.cancel_requested = True  # as the heartbeat thread would set it
    assert done == list(range(11))


def test_a_refused_push_means_the_task_was_ended_elsewhere(clock: Clock) -> None:
    p = reporter(clock, lambda task_id, snapshot: None)
    with pytest.raises(TaskCancelled):
        p.update(1)


def test_heartbeats_between_pushes_carry_the_cancel_request(clock: Clock, sink: Sink) -> None:
    beats: list[str] = []

    def heartbeat(task_id: str) -> bool:
        beats.append(task_id)
        return len(beats) >= 2

    # The flusher thread sends them: it looks every heartbeat_interval (real
    # time) and beats once that much time has passed on the injected clock
    # since the last push or beat, so it beats exactly when the test ticks.
    p = Progress(
        "t1",
        "simulate",
        sink,
        clock=clock,
        wall_clock=clock,
        heartbeat=heartbeat,
        heartbeat_interval=0.05,
    )
    p.update(1)
    p.start()
    try:
        clock.tick(0.06)
        wait_until(lambda: beats == ["t1"], 5, "the first heartbeat")
        assert not p.cancel_requested
        clock.tick(0.06)
        wait_until(lambda: p.cancel_requested, 5, "the cancel request from the second heartbeat")
        assert beats == ["t1", "t1"]
        with pytest.raises(TaskCancelled):
            p.check()
    finally:
        p.finish("cancelled")


def test_the_final_state_waits_out_a_redis_outage(clock: Clock) -> None:
    attempts: list[str] = []

    def publish(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        attempts.append(snapshot["state"])
        if len(attempts) < 4:
            raise ConnectionError("redis is down")
        return {**snapshot, "seq": 9}

    p = Progress(
        "t1", "simulate", publish, clock=clock, wall_clock=clock, sleep=clock.tick, autoflush=False
    )
    final = p.finish("succeeded", result=7)
    assert attempts == ["succeeded"] * 4
    assert final is not None and final["result"] == 7 and final["seq"] == 9


def test_the_final_push_gives_up_after_its_patience(clock: Clock) -> None:
    def publish(task_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("redis is down")

    p = Progress(
        "t1",
        "simulate",
        publish,
        clock=clock,
        wall_clock=clock,
        sleep=clock.tick,
        autoflush=False,
        final_push_patience=10,
    )
    assert p.finish("failed", error="x") is None
    assert clock.now >= 1010


def test_the_flusher_pushes_a_held_back_state_when_its_window_closes() -> None:
    sink = Sink()
    p = Progress("t1", "simulate", sink, total=10, interval=0.2)
    p.start()  # pushes the first state
    p.update(1)
    p.update(2)  # both held back: the window of the first push is open
    assert [s["current"] for s in sink.pushed] == [0]
    wait_until(lambda: len(sink.pushed) >= 2, 2, "the held-back state pushed", interval=0.01)
    p.finish("succeeded", result=None)
    assert [s["current"] for s in sink.pushed] == [0, 2, 2]
    held = sink.pushed[1]["updated_at"] - sink.pushed[0]["updated_at"]
    assert 0.19 <= held < 1.0  # not before the window closed, not a full idle period late
