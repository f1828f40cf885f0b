"""No frozen bars: cancel, killed workers, a Redis outage, a restarted web process.

These tests get a stack of their own (Redis, web, worker), since they kill and
restart its parts.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator

import pytest
from celery import Celery

from progressbar.messages import SENT_BY_START
from tests.stack import ProgressClient, Stack, error_code, identity_cookie

MARK = {SENT_BY_START: 1}
# Long enough for a free worker to take a message still in the queue.
FREE_WORKER_GRACE = 1.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("reliability"),
        secret="reliability",
        workers=("rel-worker",),
        webs=("rel-web",),
        worker_args=("-c", "2"),
        persistent=True,
    ) as stack:
        yield stack


@pytest.fixture
def client(stack: Stack) -> Iterator[ProgressClient]:
    client = ProgressClient(stack.base_url, identity_cookie(stack.base_url))
    yield client
    client.close()


def test_cancel_a_running_task_stops_it_within_a_second(client: ProgressClient) -> None:
    task = client.start("simulate", duration=30, seed=1)
    client.wait_for(task["task_id"], lambda s: s["state"] == "running" and s["current"] > 0)
    asked = time.time()
    answer = client.call("cancel", {"task_id": task["task_id"]})
    assert answer["ok"] and answer["outcome"] == "requested", answer
    assert answer["task"]["cancel_requested"] is True
    final = client.wait_terminal(task["task_id"], timeout=5)
    assert final["state"] == "cancelled"
    assert final["_received"] - asked < 1.0
    assert final["current"] < 100
    pushes = client.pushes_for(task["task_id"])
    assert pushes[-1] is final  # nothing after the end


def test_cancel_a_queued_task_and_it_never_starts(stack: Stack, client: ProgressClient) -> None:
    # Two pool processes: two long tasks occupy them, the third waits.
    busy = [client.start("simulate", duration=30, seed=i)["task_id"] for i in range(2)]
    for task_id in busy:
        client.wait_for(task_id, lambda s: s["state"] == "running")
    waiting = client.start("simulate", duration=0.5, seed=3)
    answer = client.call("cancel", {"task_id": waiting["task_id"]})
    assert answer["ok"] and answer["outcome"] == "cancelled", answer
    assert answer["task"]["state"] == "cancelled" and answer["task"]["seq"] == 2
    for task_id in busy:
        client.call("cancel", {"task_id": task_id})
        assert client.wait_terminal(task_id, timeout=5)["state"] == "cancelled"
    time.sleep(FREE_WORKER_GRACE)  # had the cancelled task started, it would show now
    seen = client.call("subscribe", {"task_id": waiting["task_id"]})["task"]
    assert (seen["state"], seen["seq"]) == ("cancelled", 2)
    assert all(p["state"] != "running" for p in client.pushes_for(waiting["task_id"]))


def test_a_message_delivered_twice_runs_the_task_once(
    stack: Stack, client: ProgressClient
) -> None:
    # The broker may hand a message out again (a worker died holding it; a
    # copy restored after the visibility timeout): here, a second copy at once.
    task = client.start("simulate", duration=2, seed=5)
    task_id = task["task_id"]
    client.wait_for(task_id, lambda s: s["state"] == "running")
    celery = Celery(broker=stack.env["REDIS_URL"])
    celery.send_task(
        "demo.simulate", kwargs={"duration": 2, "seed": 5}, task_id=task_id, headers=MARK
    )
    celery.close()
    final = client.wait_terminal(task_id, timeout=20)
    assert final["state"] == "succeeded"
    currents = [p["current"] for p in client.pushes_for(task_id) if p["state"] == "running"]
    assert currents == sorted(currents)  # one run: the bar never starts over
    stack.worker.wait_for_log(f"task_id={task_id} ", 'msg="not run: taken"')


def test_a_started_task_whose_record_is_gone_never_runs_but_a_foreign_one_does(
    stack: Stack,
) -> None:
    # A message `start` sent (marked) whose record is gone, expired or discarded
    # after a failed start, is not run; one sent by other code runs plainly.
    orphan, foreign = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    celery = Celery(broker=stack.env["REDIS_URL"])
    celery.send_task("demo.primes", kwargs={"limit": 1000}, task_id=orphan, headers=MARK)
    celery.send_task("demo.primes", kwargs={"limit": 1000}, task_id=foreign)
    celery.close()

    stack.worker.wait_for_log(foreign, "succeeded")
    assert stack.worker.log_lines(foreign, ": 168")  # its result: the primes below 1000
    stack.worker.wait_for_log(orphan, 'msg="not run: missing"')
    assert not stack.worker.log_lines(orphan, ": 168")  # Celery's trace shows it returned nothing


def test_cancel_a_finished_task_changes_nothing(client: ProgressClient) -> None:
    task = client.start("primes", limit=1000)
    final = client.wait_terminal(task["task_id"])
    answer = client.call("cancel", {"task_id": task["task_id"]})
    assert answer["ok"] and answer["outcome"] == "finished"
    assert "nothing changed" in answer["message"]
    assert answer["task"]["state"] == "succeeded" and answer["task"]["seq"] == final["seq"]


def test_cancel_of_someone_elses_task_is_not_found(stack: Stack, client: ProgressClient) -> None:
    task = client.start("simulate", duration=2, seed=2)
    other = ProgressClient(stack.base_url, identity_cookie(stack.base_url))
    try:
        answer = other.call("cancel", {"task_id": task["task_id"]})
        assert error_code(answer) == "not_found"
    finally:
        other.close()
    assert client.wait_terminal(task["task_id"], timeout=10)["state"] == "succeeded"


def test_kill_9_of_the_pool_process_ends_in_lost(stack: Stack, client: ProgressClient) -> None:
    task = client.start("simulate", duration=30, seed=4)
    client.wait_for(task["task_id"], lambda s: s["state"] == "running")
    for pid in stack.pool_pids():
        os.kill(pid, signal.SIGKILL)
    killed = time.time()
    final = client.wait_terminal(task["task_id"], timeout=10)
    assert final["state"] == "lost"
    assert final["error"] == "The worker process running it died."
    print(f"lost {final['_received'] - killed:.2f} s after kill -9 of the pool process")
    # The worker replaced its pool process and keeps serving.
    after = client.start("primes", limit=1000)
    assert client.wait_terminal(after["task_id"], timeout=15)["result"] == 168


def test_kill_9_of_the_worker_ends_in_lost(stack: Stack, client: ProgressClient) -> None:
    task = client.start("simulate", duration=30, seed=5)
    client.wait_for(task["task_id"], lambda s: s["state"] == "running")
    os.kill(stack.worker.pid, signal.SIGKILL)
    killed = time.time()
    try:
        final = client.wait_terminal(task["task_id"], timeout=10)
        assert final["state"] == "lost"
        assert "stopped responding" in final["error"]
        print(f"lost {final['_received'] - killed:.2f} s after kill -9 of the worker")
    finally:
        stack.start_worker("rel-worker", celery_name=f"rel-worker-{time.monotonic_ns()}")


def test_redis_outage_then_every_bar_shows_the_truth(stack: Stack, client: ProgressClient) -> None:
    short = client.start("simulate", duration=3, seed=6)  # finishes during the outage
    long = client.start("simulate", duration=12, seed=7)  # goes on after it
    for task in (short, long):
        client.wait_for(task["task_id"], lambda s: s["state"] == "running")

    stack.redis.stop()
    started = time.monotonic()
    answer = client.call("start", {"kind": "primes"})
    assert error_code(answer) == "unavailable"
    assert time.monotonic() - started < 2
    time.sleep(5)
    stack.start_redis()
    back = time.time()

    final = client.wait_terminal(short["task_id"], timeout=5)
    assert final["state"] == "succeeded" and final["percent"] == 100.0
    print(
        f"finished-during-outage task shown {final['_received'] - back:.2f} s after Redis returned"
    )
    moving = client.wait_for(long["task_id"], lambda s: s["_received"] > back, timeout=5)
    print(f"running task moving again {moving['_received'] - back:.2f} s after Redis returned")
    assert client.wait_terminal(long["task_id"], timeout=20)["state"] == "succeeded"
    assert stack.web.alive()
    after = client.start("primes", limit=10**6)
    assert client.wait_terminal(after["task_id"], timeout=15)["result"] == 78498
