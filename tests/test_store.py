"""The store's Lua scripts and the watchdog, against a real redis-server."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from progressbar.snapshot import GONE_SEQ, RECORD_GONE, queued_snapshot
from progressbar.store import LimitReached, Store, connect
from progressbar.web.watchdog import Watchdog
from tests.stack import wait_until

# Deadlines run on Redis's clock. One second is long against each step of these
# tests, so a loaded machine cannot make a heartbeat miss a deadline it was
# meant to meet; where a deadline must pass, the tests wait for it.
HEARTBEAT_TIMEOUT = 1.0


def past_deadline(store: Store, task_id: str) -> None:
    """Wait until `task_id`'s heartbeat deadline has passed."""
    wait_until(lambda: task_id in store.expired(), 10, f"{task_id} past its deadline")


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = connect(redis_url, 10)
    yield Store(
        client,
        ttl=60,
        prefix=f"t{secrets.token_hex(4)}",
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        max_active=3,
    )
    client.close()


def new_task(store: Store, owner: str = "alice") -> str:
    task_id = secrets.token_urlsafe(8)
    store.create(task_id, owner, queued_snapshot(task_id, "simulate", time.time()))
    return task_id


def running(task_id: str, current: int = 5, state: str = "running", **extra: object) -> dict:
    snapshot = queued_snapshot(task_id, "simulate", time.time())
    return {**snapshot, "state": state, "current": current, **extra}


def written(stored: dict | None) -> tuple[int, bool] | None:
    """(seq, cancel requested) of a snapshot as `write` stored it."""
    return None if stored is None else (stored["seq"], stored.get("cancel_requested", False))


def test_writes_number_states_and_nothing_follows_the_end(store: Store) -> None:
    task_id = new_task(store)
    assert written(store.write(task_id, running(task_id, 1))) == (2, False)
    assert written(store.write(task_id, running(task_id, 2))) == (3, False)
    assert written(store.write(task_id, running(task_id, 3, "succeeded", result=[]))) == (4, False)
    assert store.write(task_id, running(task_id, 4)) is None
    final = store.get(task_id)
    assert final is not None
    assert (final["seq"], final["state"], final["result"]) == (4, "succeeded", [])
    assert store.write("no-such-task", running("no-such-task")) is None


def test_one_delivery_claims_a_task_and_no_other(store: Store) -> None:
    task_id = new_task(store)
    assert store.claim(task_id) == "claimed"
    assert store.claim(task_id) == "taken"
    store.write(task_id, running(task_id, 3, "succeeded", result=None))
    assert store.claim(task_id) == "ended"
    assert store.claim("no-such-task") == "missing"
    cancelled = new_task(store)
    store.cancel(cancelled)
    assert store.claim(cancelled) == "ended"
    # Claimed, not yet reported: its body may be running, so it is asked to stop.
    starting = new_task(store)
    store.claim(starting)
    outcome = store.cancel(starting)
    assert outcome is not None and outcome[0] == "requested" and outcome[1]["seq"] == 2
    assert written(store.write(starting, running(starting, 1))) == (3, True)


def test_each_attempt_is_claimed_once_and_a_retry_keeps_the_bar_live(store: Store) -> None:
    task_id = new_task(store)
    assert store.claim(task_id, 0) == "claimed"
    store.write(task_id, running(task_id, 4))
    message = "Attempt 1 did not finish; trying again in 2 s."
    waiting = store.retrying(task_id, running(task_id, 4, message=message, eta=None), 2)
    assert waiting is not None
    assert (waiting["state"], waiting["seq"], waiting["current"]) == ("running", 3, 4)
    assert waiting["message"].startswith("Attempt 1") and waiting["eta"] is None
    # A heartbeat on receipt of the retry's message does not cut its wait short.
    store.heartbeat(task_id)
    past = time.time() + HEARTBEAT_TIMEOUT + 0.5
    wait_until(lambda: time.time() > past, 5, "one heartbeat timeout")
    assert task_id not in store.expired()
    assert store.claim(task_id, 0) == "taken"  # a late copy of the first attempt
    assert store.claim(task_id, 1) == "claimed"
    assert store.claim(task_id, 1) == "taken"
    # A requeued message runs the same attempt again, once.
    requeued = running(task_id, 4, message="Back in the queue.")
    assert store.retrying(task_id, requeued, 0, same_attempt=True) is not None
    assert store.claim(task_id, 1) == "claimed"
    assert store.claim(task_id, 1) == "taken"
    store.write(task_id, running(task_id, 9, "succeeded", result=1))
    assert store.retrying(task_id, running(task_id, 4), 1) is None  # nothing follows the end


def test_limit_counts_only_unfinished_tasks(store: Store) -> None:
    ids = [new_task(store) for _ in range(3)]
    with pytest.raises(LimitReached):
        new_task(store)
    new_task(store, owner="bob")  # others are not affected
    store.write(ids[0], running(ids[0], state="failed", error="x"))
    new_task(store)  # one finished: room for one more
    with pytest.raises(LimitReached):
        new_task(store)


def test_cancel_outcomes(store: Store) -> None:
    queued = new_task(store)
    outcome = store.cancel(queued)
    assert outcome is not None
    assert outcome[0] == "cancelled" and outcome[1]["state"] == "cancelled"
    assert outcome[1]["seq"] == 2 and outcome[1]["message"] == "Cancelled before it started"
    assert store.write(queued, running(queued)) is None  # it never starts

    active = new_task(store)
    store.write(active, running(active))
    outcome = store.cancel(active)
    assert outcome is not None and outcome[0] == "requested"
    assert outcome[1]["state"] == "running" and outcome[1]["cancel_requested"] is True
    assert outcome[1]["seq"] == 3  # a change of its own, pushed to its bars
    assert store.cancel(active) == outcome  # asking again changes nothing
    # The reporter learns of it from its next write.
    assert written(store.write(active, running(active, 6))) == (4, True)
    assert store.heartbeat(active) == {active}
    store.write(active, running(active, 6, "cancelled"))

    again = store.cancel(active)
    assert again is not None and again[0] == "finished" and again[1]["seq"] == 5
    assert store.cancel("no-such-task") is None


def test_a_task_without_heartbeat_is_lost_once(store: Store) -> None:
    task_id = new_task(store)
    store.write(task_id, running(task_id, 42))
    assert store.expired() == []
    assert store.lose(task_id, "gone", only_if_expired=True) is None  # deadline not passed
    past_deadline(store, task_id)
    assert store.expired() == [task_id]
    lost = store.lose(task_id, "gone", only_if_expired=True)
    assert lost is not None
    assert (lost["state"], lost["error"], lost["current"], lost["seq"]) == ("lost", "gone", 42, 3)
    assert lost["eta"] is None
    assert store.lose(task_id, "gone", only_if_expired=True) is None  # nobody reports twice
    assert store.expired() == []


def test_heartbeats_keep_a_task_alive(store: Store) -> None:
    task_id = new_task(store)
    store.heartbeat(task_id)  # reserved by a worker, still queued
    # Beats a third of a timeout apart, for longer than one timeout.
    for _ in range(5):
        time.sleep(HEARTBEAT_TIMEOUT / 3)
        assert store.heartbeat(task_id) == set()
    assert store.expired() == []


def test_watchdog_reports_and_waits_after_an_outage(store: Store) -> None:
    reported: list[dict] = []
    now = [0.0]
    dog = Watchdog(store, timeout=0.3, clock=lambda: now[0])
    task_id = new_task(store)
    store.write(task_id, running(task_id))
    past_deadline(store, task_id)

    reported += dog.tick()  # still in its quiet start
    assert reported == []
    now[0] = 1.0
    reported += dog.tick()
    assert [s["task_id"] for s in reported] == [task_id]
    assert reported[0]["state"] == "lost"

    # Redis unreachable: quiet again for one timeout after it answers.
    broken = Watchdog(
        Store(redis.Redis(port=1, socket_connect_timeout=0.2), ttl=60, prefix=store.prefix),
        timeout=0.3,
        clock=lambda: now[0],
    )
    now[0] = 5.0
    assert broken.tick() == []
    broken.store = store  # Redis answers again
    late = new_task(store)
    store.write(late, running(late))
    past_deadline(store, late)
    now[0] = 5.0 + 0.3
    reported += broken.tick()
    assert [s["task_id"] for s in reported] == [task_id]  # still quiet
    now[0] = 5.0 + 0.3 + broken.interval
    reported += broken.tick()
    assert [s["task_id"] for s in reported] == [task_id, late]


def new_group(store: Store, parts: int = 3) -> tuple[str, list[str]]:
    group_id = secrets.token_urlsafe(8)
    ids = [secrets.token_urlsafe(8) for _ in range(parts)]
    queued = queued_snapshot(group_id, "batch", time.time())
    store.create_group(group_id, "alice", queued, {part: "simulate" for part in ids})
    return group_id, ids


def test_a_group_follows_its_parts_and_never_goes_back(store: Store) -> None:
    group_id, (a, b, c) = new_group(store)
    seen = [store.get(group_id)]
    assert seen[0]["state"] == "queued" and len(seen[0]["children"]) == 3
    assert [t["task_id"] for t in store.list("alice")] == [group_id]  # parts are not listed
    steps = [
        (a, running(a, 50, percent=50)),
        (a, running(a, 40, percent=40)),  # a part going back does not move the group back
        (b, running(b, 30, percent=30)),
        (a, running(a, 100, "succeeded", percent=100, result=1)),
        (b, running(b, 30, "failed", percent=30, error="boom")),
    ]
    for part, snapshot in steps:
        store.write(part, snapshot)
        seen.append(store.get(group_id))
    assert store.cancel(c)[0] == "cancelled"  # type: ignore[index]
    seen.append(store.get(group_id))
    final = seen[-1]
    assert [s["state"] for s in seen] == ["queued"] + ["running"] * 5 + ["failed"]
    assert [s["percent"] for s in seen] == [None, 16.67, 16.67, 26.67, 43.33, 43.33, 43.33]
    assert (final["current"], final["total"]) == (130, 300)
    assert final["error"] == "1 of 3 parts failed; part 2: boom"
    assert final["message"] == "3 of 3 parts done"
    assert [p["state"] for p in final["children"]] == ["succeeded", "failed", "cancelled"]
    seqs = [s["seq"] for s in seen]
    assert seqs == sorted(set(seqs))
    assert store.cancel(group_id)[0] == "finished"  # type: ignore[index]


def test_a_requested_cancel_keeps_every_figure_exact(store: Store) -> None:
    task_id = new_task(store)
    big = {"current": 123456789012345, "total": 10**16, "message": "a/b \"quoted\""}
    store.write(task_id, {**running(task_id), **big})
    store.claim(task_id)
    outcome = store.cancel(task_id)
    assert outcome is not None and outcome[0] == "requested"
    stored = store.get(task_id)
    assert stored == outcome[1]
    assert (stored["current"], stored["total"], stored["message"]) == (
        big["current"], big["total"], big["message"]
    )
    assert stored["cancel_requested"] is True and stored["seq"] == 3


def test_cancelling_a_group_cancels_every_unfinished_part(store: Store) -> None:
    group_id, (a, b, c) = new_group(store)
    store.write(a, running(a, 10, percent=10))
    store.write(b, running(b, 100, "succeeded", percent=100, result=2))
    outcome, snapshot = store.cancel(group_id)  # type: ignore[misc]
    assert outcome == "requested" and snapshot["state"] == "running"
    # The group's bar says "cancelling" too, with a seq of its own, once.
    assert snapshot["cancel_requested"] is True and snapshot == store.get(group_id)
    assert store.cancel(group_id) == ("requested", snapshot)
    assert store.get(c)["state"] == "cancelled"  # type: ignore[index]
    assert written(store.write(a, running(a, 12, percent=12))) == (4, True)  # told to stop
    store.write(a, running(a, 12, "cancelled", percent=12))
    final = store.get(group_id)
    assert final is not None and final["state"] == "cancelled"
    assert "cancel_requested" not in final
    assert store.create(
        secrets.token_urlsafe(8), "alice", queued_snapshot("x", "simulate", time.time())
    )  # the group freed its place


def test_every_change_of_a_snapshot_is_pushed_by_its_script(redis_url: str) -> None:
    """One route to a room: whatever changes a record publishes it, once, with
    the seq it was stored with, in python-socketio's queue format."""
    from progressbar.messages import decode_push

    client = connect(redis_url, 10)
    channel = f"pushes-{secrets.token_hex(4)}"
    store = Store(client, ttl=60, prefix=f"t{secrets.token_hex(4)}", channel=channel)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)

    def pushed() -> list[tuple[int, str, bool]]:
        """What reached the channel since the last look (the scripts publish
        before they return, so a short read finds all of it)."""
        out = []
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            snapshot = decode_push(message["data"])
            assert snapshot is not None, message
            out.append((snapshot["seq"], snapshot["state"], "cancel_requested" in snapshot))
        return out

    try:
        queued, running_id, dead = new_task(store), new_task(store), new_task(store)
        store.cancel(queued)
        assert pushed() == [(2, "cancelled", False)]
        store.write(running_id, running(running_id))
        store.cancel(running_id)
        store.cancel(running_id)  # nothing changes, nothing is pushed
        store.write(running_id, running(running_id, 6, "cancelled"))
        assert pushed() == [(2, "running", False), (3, "running", True), (4, "cancelled", False)]
        store.lose(dead, "gone", only_if_expired=False)
        assert pushed() == [(2, "lost", False)]
        # An ended task without a record pushes nothing; an unfinished one is
        # pushed lost, above any seq, and keeps that verdict.
        assert store.republish([dead, "ended-task"], unfinished=set()) == 1
        assert pushed() == [(2, "lost", False)]
        assert store.republish(["vanished"]) == 1
        assert pushed() == [(GONE_SEQ, "lost", False)]
        assert store.get("vanished")["error"] == RECORD_GONE
        assert store.claim("vanished") == "ended"
    finally:
        pubsub.close()
        client.close()


def test_a_queued_task_whose_worker_vanished_is_disarmed_not_lost(store: Store) -> None:
    task_id = new_task(store)
    store.heartbeat(task_id)  # reserved by a worker that then went silent
    past_deadline(store, task_id)
    assert store.lose(task_id, "gone", only_if_expired=True) is None
    assert store.expired() == []  # disarmed: its message comes back to a worker
    assert store.get(task_id)["state"] == "queued"
    assert store.claim(task_id) == "claimed"  # and then it runs
