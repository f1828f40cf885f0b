"""The store's Lua scripts and the watchdog, against a real redis-server."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from progressbar.snapshot import GONE_SEQ, RECORD_GONE, WAITING_FOR_A_WORKER, queued_snapshot
from progressbar.store import LimitReached, Store, connect
from progressbar.web.watchdog import NEVER_SENT, NO_WORKER, Watchdog
from tests.stack import strict_json, wait_until

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


def stored_text(store: Store, task_id: str) -> str:
    return str(store.redis.hget(f"{store.prefix}:task:{task_id}", "snapshot"))


def test_numbers_that_are_not_finite_are_stored_as_null(store: Store) -> None:
    task_id = new_task(store)
    odd = running(task_id, current=math.nan, total=math.inf, rate=-math.inf)  # type: ignore[arg-type]
    store.write(task_id, odd)
    assert strict_json(stored_text(store, task_id))["total"] is None
    ended = running(task_id, 1, "succeeded", result={"mean": math.nan, "all": [math.inf, 2]})
    store.write(task_id, ended)
    stored = strict_json(stored_text(store, task_id))
    assert (stored["state"], stored["result"]) == ("succeeded", {"mean": None, "all": [None, 2]})


def test_a_record_an_earlier_version_stored_with_nan_is_read_and_still_ends(
    store: Store,
) -> None:
    """Earlier versions wrote NaN and Infinity as bare literals; the Lua
    encoder refused them again, so such a task could never be ended."""

    def stored_by_an_earlier_version(task_id: str, **odd: float) -> None:
        snapshot = {**json.loads(stored_text(store, task_id)), **odd}
        key = f"{store.prefix}:task:{task_id}"
        store.redis.hset(key, "snapshot", json.dumps(snapshot))  # NaN, Infinity as they were

    running_id, queued_id = new_task(store), new_task(store)
    store.write(running_id, running(running_id))
    stored_by_an_earlier_version(running_id, current=math.nan, total=math.inf)
    stored_by_an_earlier_version(queued_id, total=-math.inf)
    assert store.get(running_id)["current"] is None  # type: ignore[index]
    assert {t["task_id"] for t in store.list("alice")} == {running_id, queued_id}
    lost = store.lose(running_id, "gone", only_if_expired=False)
    assert lost is not None and lost["state"] == "lost" and lost["total"] is None
    assert "NaN" not in stored_text(store, running_id)
    cancelled = store.cancel(queued_id)
    assert cancelled is not None and cancelled[0] == "cancelled"
    # A group whose snapshot holds one still follows its parts to the end.
    group_id, parts = new_group(store, parts=1)
    stored_by_an_earlier_version(group_id, rate=math.nan)
    store.write(parts[0], running(parts[0], 1, "succeeded", percent=100, result=1))
    group = strict_json(stored_text(store, group_id))
    assert (group["state"], group["rate"]) == ("succeeded", None)


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


def test_a_group_and_its_parts_are_created_by_one_script(store: Store, redis_url: str) -> None:
    """No moment, and no failure between two calls, leaves a group without its
    parts: Redis receives one script call for all of them."""
    store.warm_up()
    observer = redis.Redis.from_url(redis_url, decode_responses=True)
    marker = f"created {secrets.token_hex(4)}"
    calls = []
    with observer.monitor() as monitor:
        group_id, parts = new_group(store)
        store.redis.echo(marker)
        for seen in monitor.listen():
            command = seen["command"]
            if marker in command:
                break
            # Script calls only (not the commands a script runs), of this store.
            if command.startswith("EVALSHA") and f" {store.prefix} " in command:
                calls.append(command)
    observer.close()
    assert len(calls) == 1, calls
    group = store.get(group_id)
    assert group is not None and [c["task_id"] for c in group["children"]] == parts
    for part in parts:
        assert store.get(part)["state"] == "queued"  # type: ignore[index]


def judging_now(store: Store, **options: float) -> tuple[Watchdog, list[str]]:
    """A watchdog past its quiet start, and the ids it has had terminated."""
    terminated: list[str] = []
    dog = Watchdog(store, timeout=0, clock=lambda: 0.0, terminate=terminated.append, **options)
    return dog, terminated


def until_ended(dog: Watchdog, store: Store, task_id: str) -> dict:
    """Tick until `task_id` has ended; its final snapshot."""

    def ended() -> dict | None:
        dog.tick()
        snapshot = store.get(task_id)
        return snapshot if snapshot and snapshot["state"] not in ("queued", "running") else None

    return wait_until(ended, 10, f"{task_id} ended by the watchdog", interval=0.1)


def test_a_record_never_sent_ends_lost_and_frees_its_place(store: Store) -> None:
    dog, _ = judging_now(store, send_timeout=0.5)
    sent, unsent, claimed = new_task(store), new_task(store), new_task(store)
    store.sent(sent)
    store.claim(claimed)  # its web process died after the send, before the mark
    with pytest.raises(LimitReached):
        new_task(store)  # three unfinished: alice is at her limit

    final = until_ended(dog, store, unsent)
    assert (final["state"], final["error"]) == ("lost", NEVER_SENT)
    assert store.get(sent)["state"] == "queued"  # type: ignore[index]  # waits for a worker
    assert store.get(claimed)["state"] == "queued"  # type: ignore[index]
    assert new_task(store)  # the lost one no longer counts
    assert dog.tick() == []  # reported once


def test_a_group_cut_short_while_sending_ends_once_its_sent_parts_do(
    store: Store,
) -> None:
    dog, _ = judging_now(store, send_timeout=0.5)
    group_id, (first, second) = new_group(store, parts=2)
    store.claim(first)  # sent and taken by a worker; the second was never sent
    store.write(first, running(first, 50, percent=50))

    assert until_ended(dog, store, second)["error"] == NEVER_SENT
    assert store.get(group_id)["state"] == "running"  # type: ignore[index]
    store.write(first, running(first, 100, "succeeded", percent=100, result=1))
    final = store.get(group_id)
    assert final is not None and final["state"] == "lost"
    assert final["error"] == f"1 of 2 parts lost; part 2: {NEVER_SENT}"


def test_a_cancel_not_obeyed_ends_the_task_cancelled_and_has_it_terminated(
    store: Store,
) -> None:
    task_id = new_task(store)
    store.sent(task_id)
    store.claim(task_id)
    store.write(task_id, running(task_id, 10))
    assert store.cancel(task_id)[0] == "requested"  # type: ignore[index]
    patient, never = judging_now(store, cancel_grace=3600)
    patient.tick()
    assert never == [] and store.get(task_id)["state"] == "running"  # type: ignore[index]

    dog, terminated = judging_now(store, cancel_grace=0.3)
    final = until_ended(dog, store, task_id)
    assert final["state"] == "cancelled" and final["message"] == dog.forced
    assert "cancel_requested" not in final and final["current"] == 10
    assert terminated == [task_id]
    assert dog.tick() == [] and terminated == [task_id]  # once
    other, by_other = judging_now(store, cancel_grace=0.3)  # another web process's
    assert other.tick() == [] and by_other == []
    assert store.write(task_id, running(task_id, 11)) is None  # a late report changes nothing


def test_queued_bars_say_whether_a_worker_is_alive(store: Store) -> None:
    dog, _ = judging_now(store, worker_max_age=60)
    waiting, taken = new_task(store), new_task(store)
    store.claim(taken)
    dog.tick()  # no worker ever seen
    assert (store.get(waiting)["message"], store.get(waiting)["seq"]) == (NO_WORKER, 2)  # type: ignore[index]
    assert store.get(taken)["message"] == WAITING_FOR_A_WORKER  # type: ignore[index]
    dog.tick()
    assert store.get(waiting)["seq"] == 2  # type: ignore[index]  # said once

    store.worker_seen("worker@host")
    dog.tick()
    back = store.get(waiting)
    assert back is not None and (back["message"], back["seq"]) == (WAITING_FOR_A_WORKER, 3)
    assert back["state"] == "queued"


def test_a_record_no_script_can_encode_stops_neither_the_watchdog_nor_other_bars(
    store: Store,
) -> None:
    dog, _ = judging_now(store, worker_max_age=60)
    bad, good = new_task(store), new_task(store)
    for task_id in (bad, good):
        store.sent(task_id)
        store.claim(task_id)  # taken on by a worker that then died; `bad` first
        store.heartbeat(task_id)
    # A NaN written as a literal: Lua's JSON encoder refuses it.
    key = f"{store.prefix}:task:{bad}"
    raw = str(store.redis.hget(key, "snapshot"))
    store.redis.hset(key, "snapshot", raw.replace('"current":0', '"current":NaN'))
    past_deadline(store, good)

    assert until_ended(dog, store, good)["state"] == "lost"
    waiting = new_task(store)
    dog.tick()
    assert store.get(waiting)["message"] == NO_WORKER  # type: ignore[index]


def test_a_queued_task_whose_worker_vanished_is_disarmed_not_lost(store: Store) -> None:
    task_id = new_task(store)
    store.heartbeat(task_id)  # reserved by a worker that then went silent
    past_deadline(store, task_id)
    assert store.lose(task_id, "gone", only_if_expired=True) is None
    assert store.expired() == []  # disarmed: its message comes back to a worker
    assert store.get(task_id)["state"] == "queued"
    assert store.claim(task_id) == "claimed"  # and then it runs
