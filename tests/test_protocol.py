"""The /progress protocol, event by event, against the live web process and worker."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests
from celery import Celery

from progressbar.snapshot import FIELDS
from tests.stack import (
    TERMINAL,
    ProgressClient,
    error_code,
    extra_web,
    free_port,
    identity_cookie,
)

# Long enough for a push already on its way to arrive: the check is that none comes.
STRAY_PUSH_GRACE = 0.2

SNAPSHOT_FIELDS = set(FIELDS)


def test_start_answers_queued_and_pushes_until_succeeded(connect, cookie) -> None:
    client = connect(cookie)
    task = client.start("simulate", duration=1, seed=3)
    assert set(task) == SNAPSHOT_FIELDS
    assert task["state"] == "queued" and task["kind"] == "simulate" and task["seq"] == 1
    assert len(task["task_id"]) >= 22  # unguessable

    final = client.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded"
    assert final["percent"] == 100.0 and final["current"] == 100 and final["total"] == 100
    assert final["result"]["steps"] >= 10
    assert final["eta"] is None
    assert 0.8 < final["elapsed"] < 5
    assert set(final) - {"_received"} == SNAPSHOT_FIELDS | {"result"}

    pushes = client.pushes_for(task["task_id"])
    states = [p["state"] for p in pushes]
    assert states[0] == "running" and states[-1] == "succeeded"
    assert set(states[:-1]) == {"running"}
    percents = [p["percent"] for p in pushes if p["percent"] is not None]
    assert percents == sorted(percents) and len(percents) >= 8


def test_a_start_leaves_its_result_to_celery_without_the_web_subscribing_to_it(
    connect, cookie, redis_url
) -> None:
    """Celery's result backend keeps the result (a host may `get()` it), and
    the web process, which never waits on it, does not subscribe to it."""
    observer = redis.Redis.from_url(redis_url, decode_responses=True)
    marker = f"started {secrets.token_hex(4)}"
    subscribed = []
    client = connect(cookie)
    with observer.monitor() as monitor:
        task = client.start("simulate", duration=0.3, seed=8)
        observer.echo(marker)
        for seen in monitor.listen():
            if marker in seen["command"]:
                break
            if seen["command"].startswith("SUBSCRIBE"):
                subscribed.append(seen["command"])
    observer.close()
    final = client.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded"
    assert not [c for c in subscribed if f"celery-task-meta-{task['task_id']}" in c], subscribed
    celery = Celery(broker=redis_url, backend=redis_url)
    try:
        assert celery.AsyncResult(task["task_id"]).get(timeout=10) == final["result"]
    finally:
        celery.close()


def test_seq_strictly_increases_across_ack_and_pushes(connect, cookie) -> None:
    client = connect(cookie)
    task = client.start("simulate", duration=0.8, seed=5)
    client.wait_terminal(task["task_id"], timeout=15)
    seqs = [task["seq"]] + [p["seq"] for p in client.pushes_for(task["task_id"])]
    assert seqs == sorted(set(seqs)), seqs
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost between worker and client
    # Coalescing: pushes at most ~10/s by default (0.8 s run, plus first and last)
    times = [p["updated_at"] for p in client.pushes_for(task["task_id"])]
    gaps = [b - a for a, b in zip(times, times[1:-1], strict=False)]
    assert min(gaps) >= 0.095


def test_late_subscriber_gets_the_current_state_then_pushes(connect, cookie) -> None:
    first = connect(cookie)
    task = first.start("simulate", duration=3, seed=11)
    seen = first.wait_for(task["task_id"], lambda s: (s["percent"] or 0) >= 20, timeout=10)

    late = connect(cookie)  # e.g. a second tab of the same person
    answer = late.call("subscribe", {"task_id": task["task_id"]})
    assert answer["ok"], answer
    assert answer["task"]["state"] == "running"
    assert answer["task"]["seq"] >= seen["seq"]
    assert answer["task"]["percent"] >= seen["percent"]
    final = late.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded" and final["seq"] > answer["task"]["seq"]

    after = connect(cookie).call("subscribe", {"task_id": task["task_id"]})
    assert after["task"]["state"] == "succeeded"
    assert after["task"]["seq"] == final["seq"]
    assert after["task"]["result"] == final["result"]


def reads_of(redis_url: str, task_id: str, call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What `call` returned, and the reads of the task's record meanwhile."""
    observer = redis.Redis.from_url(redis_url, decode_responses=True)
    marker, reads = f"called {secrets.token_hex(4)}", []
    with observer.monitor() as monitor:
        returned = call()
        observer.echo(marker)
        for seen in monitor.listen():
            command = seen["command"]
            if marker in command:
                break
            # The web process reads a record whole (its owner, flag, snapshot).
            if command.startswith("HMGET") and task_id in command and "snapshot" in command:
                reads.append(command)
    observer.close()
    return returned, reads


def test_a_watcher_joining_a_task_watched_here_is_answered_without_a_read(
    connect, cookie, redis_url
) -> None:
    """The room is heard here already (its starter's page): the answer is the
    latest push this process heard, not a read of the store, and nothing falls
    between it and the pushes that follow."""
    first, late = connect(cookie), connect(cookie)
    task = first.start("simulate", duration=2, seed=12)
    seen = first.wait_for(task["task_id"], lambda s: (s["percent"] or 0) >= 20, timeout=10)
    answer, reads = reads_of(
        redis_url, task["task_id"], lambda: late.call("subscribe", {"task_id": task["task_id"]})
    )
    assert answer["ok"] and answer["task"]["seq"] >= seen["seq"], answer
    assert reads == []
    final = late.wait_terminal(task["task_id"], timeout=15)
    seqs = {answer["task"]["seq"]} | {p["seq"] for p in late.pushes_for(task["task_id"])}
    assert seqs == set(range(answer["task"]["seq"], final["seq"] + 1))


def test_a_watcher_joining_a_task_started_here_before_its_first_push_needs_no_read(
    stack_env, redis_url, logs_dir
) -> None:
    """No worker takes the task (a Redis database no worker serves): the
    second page is answered with its first snapshot, which the start made."""
    url = redis_url.rsplit("/", 1)[0] + "/5"
    with extra_web({**stack_env, "REDIS_URL": url}, logs_dir, "web-no-worker") as base:
        cookie = identity_cookie(base)
        first, second = ProgressClient(base, cookie), ProgressClient(base, cookie)
        try:
            task = first.start("simulate", duration=1, seed=2)
            answer, reads = reads_of(
                url, task["task_id"], lambda: second.call("subscribe", {"task_id": task["task_id"]})
            )
            assert answer == {"ok": True, "task": task}
            assert reads == []
            assert first.call("cancel", {"task_id": task["task_id"]})["outcome"] == "cancelled"
            ended = second.wait_terminal(task["task_id"], timeout=10)
            assert (ended["state"], ended["seq"]) == ("cancelled", task["seq"] + 1)
        finally:
            first.close()
            second.close()


def test_unsubscribe_stops_pushes(connect, cookie) -> None:
    watcher = connect(cookie)
    task = watcher.start("simulate", duration=2, seed=1)
    watcher.wait_for(task["task_id"], lambda s: s["state"] == "running", timeout=10)
    assert watcher.call("unsubscribe", {"task_id": task["task_id"]}) == {"ok": True}
    count = len(watcher.pushes_for(task["task_id"]))

    other = connect(cookie)
    other.call("subscribe", {"task_id": task["task_id"]})
    other.wait_terminal(task["task_id"], timeout=15)
    time.sleep(STRAY_PUSH_GRACE)
    assert len(watcher.pushes_for(task["task_id"])) == count


def test_list_is_this_identitys_tasks_newest_first(connect, cookie) -> None:
    client = connect(cookie)
    assert client.call("list") == {"ok": True, "tasks": []}
    ids = [client.start("primes", limit=1000)["task_id"] for _ in range(3)]
    for task_id in ids:
        client.wait_terminal(task_id)
    answer = client.call("list", {})
    assert answer["ok"]
    assert [t["task_id"] for t in answer["tasks"]] == ids[::-1]
    assert all(t["state"] == "succeeded" and t["result"] == 168 for t in answer["tasks"])


def test_two_identities_never_see_each_others_tasks(connect, web) -> None:
    alice = connect(identity_cookie(web))
    bob = connect(identity_cookie(web))
    task = alice.start("simulate", duration=1.5, seed=2)
    task_id = task["task_id"]

    assert bob.call("list")["tasks"] == []
    for event in ("subscribe", "unsubscribe"):
        assert error_code(bob.call(event, {"task_id": task_id})) == "not_found"
        # exactly the answer for an id that does not exist
        assert bob.call(event, {"task_id": task_id}) == bob.call(
            event, {"task_id": secrets.token_urlsafe(18)}
        )

    alice.wait_terminal(task_id, timeout=15)
    assert bob.pushes_for(task_id) == []
    assert [t["task_id"] for t in alice.call("list")["tasks"]] == [task_id]


def test_a_connection_without_cookie_has_an_identity_of_its_own(connect) -> None:
    loner = connect(None)
    task = loner.start("primes", limit=100)
    assert loner.wait_terminal(task["task_id"])["result"] == 25
    assert [t["task_id"] for t in loner.call("list")["tasks"]] == [task["task_id"]]
    stranger = connect(None)
    assert stranger.call("list")["tasks"] == []
    assert error_code(stranger.call("subscribe", {"task_id": task["task_id"]})) == "not_found"


def test_two_concurrent_tasks_each_get_their_own_bar(connect, cookie) -> None:
    client = connect(cookie)
    a = client.start("simulate", duration=2, seed=1)
    b = client.start("simulate", duration=2, seed=2)
    final_a = client.wait_terminal(a["task_id"], timeout=15)
    final_b = client.wait_terminal(b["task_id"], timeout=15)
    assert final_a["state"] == final_b["state"] == "succeeded"
    # They ran at the same time: each was running before the other finished.
    first_b = client.pushes_for(b["task_id"])[0]
    first_a = client.pushes_for(a["task_id"])[0]
    assert first_b["_received"] < final_a["_received"]
    assert first_a["_received"] < final_b["_received"]
    for task in (a, b):
        seqs = [p["seq"] for p in client.pushes_for(task["task_id"])]
        assert seqs == sorted(set(seqs))


def test_eight_simulations_run_at_once_by_default(connect, web) -> None:
    # Two visitors of four each: one alone may not have eight (MAX_ACTIVE_TASKS).
    visitors = [connect(identity_cookie(web)) for _ in range(2)]
    started = [
        (v, v.start("simulate", duration=2, seed=i)["task_id"]) for i in range(4) for v in visitors
    ]
    finals = [v.wait_terminal(task_id, timeout=30) for v, task_id in started]
    assert all(f["state"] == "succeeded" for f in finals)
    last_start = max(v.pushes_for(t)[0]["_received"] for v, t in started)
    first_end = min(f["_received"] for f in finals)
    assert last_start < first_end, "some task waited for another to finish"


def test_fail_at_ends_in_failed_with_a_short_message(connect, cookie) -> None:
    client = connect(cookie)
    task = client.start("simulate", duration=1, fail_at=40, seed=4)
    final = client.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "failed"
    assert final["error"].startswith("Simulated failure at ")
    assert "Traceback" not in final["error"] and "\n" not in final["error"]
    assert final["percent"] < 40 <= int(final["error"].split()[3].rstrip("%"))
    assert "result" not in final


def test_primes_counts_below_a_million(connect, cookie) -> None:
    client = connect(cookie)
    task = client.start("primes", limit=10**6)
    final = client.wait_terminal(task["task_id"], timeout=30)
    assert final["state"] == "succeeded"
    assert final["result"] == 78498
    assert final["current"] == final["total"] == 10**6


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("start", None, "invalid"),
        ("start", "simulate", "invalid"),
        ("start", {"kind": "simulate", "extra": 1}, "invalid"),
        ("start", {"kind": "teleport"}, "unknown_kind"),
        ("start", {"kind": "simulate", "params": {"duration": -1}}, "invalid"),
        ("start", {"kind": "simulate", "params": {"fail_at": "x"}}, "invalid"),
        ("start", {"kind": "primes", "params": {"limit": 10**12}}, "invalid"),
        ("subscribe", {}, "invalid"),
        ("subscribe", {"task_id": 5}, "invalid"),
        ("subscribe", {"task_id": "x" * 500}, "invalid"),
        ("subscribe", {"task_id": "does-not-exist"}, "not_found"),
        ("unsubscribe", [], "invalid"),
        ("unsubscribe", {"task_id": "does-not-exist"}, "not_found"),
        ("list", {"all": True}, "invalid"),
        ("list", 7, "invalid"),
        ("teleport", {}, "invalid"),
        # The server's own event names: a client's is nobody's connect or disconnect.
        ("connect", {}, "invalid"),
        ("disconnect", None, "invalid"),
        ("disconnect", b"binary", "invalid"),  # a binary event
    ],
)
def test_bad_requests_get_a_structured_error_and_change_nothing(
    connect, cookie, event, payload, code
) -> None:
    client = connect(cookie)
    assert error_code(client.call(event, payload)) == code
    assert client.call("list")["tasks"] == []


def test_invalid_params_name_the_field(connect, cookie) -> None:
    answer = connect(cookie).call("start", {"kind": "simulate", "params": {"duration": 0}})
    assert "params.duration" in answer["error"]["message"]


def test_start_when_redis_is_unreachable_is_unavailable_fast(stack_env, logs_dir) -> None:
    dead = free_port()  # nothing listens here
    env = {**stack_env, "REDIS_URL": f"redis://127.0.0.1:{dead}/0"}
    with extra_web(env, logs_dir, "web-no-redis") as base:
        client = ProgressClient(base)
        try:
            started = time.monotonic()
            answer = client.call("start", {"kind": "simulate"}, timeout=10)
            assert error_code(answer) == "unavailable"
            assert time.monotonic() - started < 2
            assert error_code(client.call("list")) == "unavailable"
        finally:
            client.close()
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["redis"]["ok"] is False


def test_states_are_from_the_documented_set(connect, cookie) -> None:
    client = connect(cookie)
    task = client.start("primes", limit=50_000)
    client.wait_terminal(task["task_id"])
    assert {p["state"] for p in client.pushes_for(task["task_id"])} <= {"running"} | TERMINAL


def test_http_api_reads_the_same_snapshots_with_the_same_ownership(connect, web) -> None:
    cookie = identity_cookie(web)
    client = connect(cookie)
    task = client.start("primes", limit=1000)
    final = client.wait_terminal(task["task_id"])
    mine = requests.get(f"{web}/api/tasks/{task['task_id']}", headers={"Cookie": cookie}, timeout=5)
    assert mine.status_code == 200 and mine.json() == {"ok": True, "task": final_without(final)}
    listed = requests.get(f"{web}/api/tasks", headers={"Cookie": cookie}, timeout=5).json()
    assert [t["task_id"] for t in listed["tasks"]] == [task["task_id"]]

    stranger = requests.get(f"{web}/api/tasks/{task['task_id']}", timeout=5)
    assert stranger.status_code == 404
    assert error_code(stranger.json()) == "not_found"


def final_without(snapshot: dict) -> dict:
    return {k: v for k, v in snapshot.items() if k != "_received"}


def test_healthz_reports_redis_and_live_workers(web, worker) -> None:
    answer = requests.get(f"{web}/healthz", timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] and body["redis"]["ok"] and body["redis"]["latency_ms"] < 1000
    assert any(name.startswith("worker@") for name in body["workers"]["alive"])


def test_worker_logs_are_single_lines_with_the_task_id(connect, cookie, worker) -> None:
    client = connect(cookie)
    task = client.start("simulate", duration=0.3, fail_at=20, seed=1)
    client.wait_terminal(task["task_id"])
    # The worker may log the failure just after its final state reached us.
    failure = worker.wait_for_log(task["task_id"], "raised unexpected")
    assert f"task_id={task['task_id']}" in failure
    assert 'exc="Traceback' in failure  # the traceback folded into the line
    lines = worker.log_lines(task["task_id"])
    assert all(line.startswith("time=") for line in lines), lines
