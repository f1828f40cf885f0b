"""Redis restarts: healthy tasks are never called lost, and a task whose record
Redis came back without is reported lost to every watcher, at once.

Each test gets a stack of its own: Redis is killed with `kill -9`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from progressbar.snapshot import RECORD_GONE
from progressbar.worker.redelivery import Held
from tests.stack import ProgressClient, Stack, identity_cookie

# Redis's append-only file is written to disk once a second.
AOF_FSYNC = 1.5


class Request:
    """What `Held` reads of a Celery request."""

    def __init__(self, started: bool = False) -> None:
        self.acknowledged = False
        self.time_start = 1.0 if started else None


def test_forgotten_requests_are_those_of_an_earlier_connection_never_started() -> None:
    held = Held()
    waiting, running, done, later = Request(), Request(started=True), Request(), Request()
    for r in (waiting, running, done):
        held.received(r, generation=0)
    assert held.forgotten(generation=0) == []  # the same connection: still reserved
    done.acknowledged = True  # revoked, rejected or finished
    held.received(later, generation=1)
    assert held.forgotten(generation=1) == [waiting]
    assert held.forgotten(generation=1, reserved={waiting}) == []
    held.drop([waiting])  # put back
    assert held.forgotten(generation=2) == [later]


def kill_redis(stack: Stack, down_for: float) -> None:
    os.kill(stack.redis.pid, signal.SIGKILL)
    stack.redis.stop()
    time.sleep(down_for)
    stack.start_redis()


def two_process_stack(tmp_path: Path, webs: tuple[str, ...], persistent: bool) -> Stack:
    """A worker with two pool processes, and these web processes."""
    return Stack(
        tmp_path,
        secret="restarts",
        workers=("restart-worker",),
        webs=webs,
        worker_args=("-c", "2"),
        persistent=persistent,
    )


@pytest.fixture
def persistent(tmp_path: Path) -> Iterator[Stack]:
    """Redis as the project runs it: with an append-only file."""
    with two_process_stack(tmp_path, ("restart-web",), persistent=True) as stack:
        yield stack


def test_tasks_a_live_worker_had_reserved_run_after_a_redis_restart(persistent: Stack) -> None:
    stack = persistent
    client = ProgressClient(stack.base_url, identity_cookie(stack.base_url))
    try:
        # Both pool processes busy; the next two tasks are reserved by the
        # worker (taken from the queue, waiting for a free process).
        busy = [client.start("simulate", duration=8, seed=i)["task_id"] for i in range(2)]
        for task_id in busy:
            client.wait_for(task_id, lambda s: s["state"] == "running")
        waiting = [client.start("primes", limit=1000)["task_id"] for _ in range(2)]
        for task_id in waiting:
            stack.worker.wait_for_log(task_id, "received")
        time.sleep(AOF_FSYNC)
        kill_redis(stack, down_for=3)
        back = time.time()

        for task_id in [*busy, *waiting]:
            final = client.wait_terminal(task_id, timeout=60)
            assert final["state"] == "succeeded", final
        for task_id in waiting:
            final = client.wait_terminal(task_id)
            assert final["result"] == 168
            states = {p["state"] for p in client.pushes_for(task_id)}
            assert "lost" not in states, states
            # Its worker put its message back: it did not wait for the visibility timeout.
            stack.worker.wait_for_log(task_id, "put back in its queue")
            print(f"reserved task done {final['_received'] - back:.2f} s after Redis returned")
    finally:
        client.close()


@pytest.fixture
def forgetful(tmp_path: Path) -> Iterator[Stack]:
    """Redis without persistence, and two web processes."""
    with two_process_stack(tmp_path, ("forget-a", "forget-b"), persistent=False) as stack:
        yield stack


def test_a_task_whose_record_redis_lost_is_pushed_lost_to_every_watcher(forgetful: Stack) -> None:
    stack = forgetful
    cookie = identity_cookie(stack.url("forget-a"))
    a = ProgressClient(stack.url("forget-a"), cookie)
    b = ProgressClient(stack.url("forget-b"), cookie)
    try:
        running = a.start("simulate", duration=60, seed=1)["task_id"]
        ended = a.start("primes", limit=1000)["task_id"]
        assert b.call("subscribe", {"task_id": running})["ok"]
        last = b.wait_for(running, lambda s: s["state"] == "running")
        assert a.wait_terminal(ended)["state"] == "succeeded"
        assert b.call("subscribe", {"task_id": ended})["task"]["state"] == "succeeded"

        kill_redis(stack, down_for=1)
        back = time.monotonic()
        for client in (a, b):
            lost = client.wait_for(running, lambda s: s["state"] == "lost", timeout=10)
            assert lost["error"] == RECORD_GONE
            assert lost["seq"] > last["seq"]
        print(f"lost pushed {time.monotonic() - back:.2f} s after Redis returned")
        # A task seen to end stays as it ended.
        for client in (a, b):
            states = [p["state"] for p in client.pushes_for(ended)]
            assert "lost" not in states, states
    finally:
        a.close()
        b.close()
