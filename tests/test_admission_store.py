"""The store's side of admission: the caps on unfinished tasks (a group counts
its parts), the fair share a claim keeps, a task stopped past its hard time
limit, and the guard on Redis's memory, against a real redis-server."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from progressbar.admission import Admission
from progressbar.errors import ProtocolError
from progressbar.settings import Settings
from progressbar.snapshot import queued_snapshot
from progressbar.store import LimitReached, Store, connect


@pytest.fixture
def make_store(redis_url: str) -> Iterator[Callable[..., Store]]:
    client = connect(redis_url, 10)

    def make(**limits: float) -> Store:
        return Store(client, ttl=60, prefix=f"t{secrets.token_hex(4)}", **limits)  # type: ignore[arg-type]

    yield make
    client.close()


def new_task(store: Store, owner: str = "alice", address: str = "") -> str:
    task_id = secrets.token_urlsafe(8)
    store.create(task_id, owner, queued_snapshot(task_id, "simulate", time.time()), address=address)
    return task_id


def new_group(store: Store, parts: int, owner: str = "alice") -> tuple[str, list[str]]:
    group_id = secrets.token_urlsafe(8)
    part_ids = [secrets.token_urlsafe(8) for _ in range(parts)]
    store.create_group(
        group_id,
        owner,
        queued_snapshot(group_id, "batch", time.time()),
        dict.fromkeys(part_ids, "simulate"),
    )
    return group_id, part_ids


def end(store: Store, task_id: str) -> None:
    snapshot = {**queued_snapshot(task_id, "simulate", time.time()), "state": "succeeded"}
    assert store.write(task_id, snapshot) is not None


def refused(create: Callable[[], object]) -> str:
    with pytest.raises(LimitReached) as reached:
        create()
    return reached.value.which


def test_a_group_counts_its_parts_until_they_end(make_store) -> None:
    store = make_store(max_active=4)
    _, parts = new_group(store, 3)
    new_task(store)
    assert refused(lambda: new_task(store)) == "owner"
    new_group(store, 2, owner="bob")
    assert refused(lambda: new_group(store, 3, owner="bob")) == "owner"  # 2 + 3 parts
    end(store, parts[0])  # one part done: one place free
    new_task(store)
    assert refused(lambda: new_task(store)) == "owner"


def test_limits_of_an_address_and_of_everyone(make_store) -> None:
    store = make_store(max_active=10, max_active_per_address=2, max_active_total=3)
    first = new_task(store, "alice", address="203.0.113.1")
    new_task(store, "bob", address="203.0.113.1")  # another identity, same address
    assert refused(lambda: new_task(store, "carol", address="203.0.113.1")) == "address"
    new_task(store, "dave", address="203.0.113.2")
    assert refused(lambda: new_task(store, "erin", address="203.0.113.3")) == "total"
    assert refused(lambda: new_task(store, "server-side")) == "total"
    end(store, first)
    new_task(store, "carol", address="203.0.113.1")


def test_a_claim_keeps_each_owner_and_address_to_its_share(make_store) -> None:
    store = make_store(max_active=10, fair_share=0.5)
    store.worker_seen("worker@a", 4)  # 4 slots: a share of 2
    alice = [new_task(store, "alice") for _ in range(3)]
    assert [store.claim(t) for t in alice] == ["claimed", "claimed", "deferred"]
    assert store.claim(new_task(store, "bob")) == "claimed"  # bob has his own share
    assert store.claim(alice[0], attempt=1) == "claimed"  # a retry keeps its place
    end(store, alice[0])
    assert store.claim(alice[2]) == "claimed"  # a place of hers came free
    # A deferred delivery reached a worker: it can no longer be judged never sent.
    deferred = new_task(store, "alice")
    assert store.claim(deferred) == "deferred"
    assert store.redis.zscore(f"{store.prefix}:unsent", deferred) is None
    # Identities of one address share its share.
    shared = [new_task(store, f"guest{i}", address="203.0.113.7") for i in range(3)]
    assert [store.claim(t) for t in shared] == ["claimed", "claimed", "deferred"]
    # No live worker known: nothing to share, nothing deferred.
    alone = make_store(max_active=10, fair_share=0.5)
    assert [alone.claim(new_task(alone)) for _ in range(3)] == ["claimed"] * 3


def test_a_task_stopped_past_its_hard_time_limit_ends_failed(make_store) -> None:
    store = make_store()
    task_id = new_task(store)
    reason = "It ran past its time limit and was stopped."
    ended = store.lose(task_id, reason, only_if_expired=False, failed=True)
    assert ended is not None and (ended["state"], ended["error"]) == ("failed", reason)


def test_starts_are_refused_busy_while_redis_is_past_its_memory_limit(redis_url: str) -> None:
    client = connect(redis_url, 2)
    try:
        Admission(client, Settings()).check_memory()  # this Redis has no maxmemory: no limit
        full = Admission(client, Settings(max_redis_memory=1))
        with pytest.raises(ProtocolError) as refused:
            full.check_memory()
        assert (refused.value.code, refused.value.retry_after) == ("busy", 60)
    finally:
        client.close()


def test_start_rate_limits_take_nothing_from_a_window_when_another_refuses(
    redis_url: str,
) -> None:
    client = connect(redis_url, 2)
    prefix = f"t{secrets.token_hex(4)}"
    try:
        one = Admission(client, Settings(start_rate_limit="2/minute"), prefix=prefix)
        one.start("10.0.0.1", 1)
        one.start("10.0.0.1", 1)
        with pytest.raises(ProtocolError) as refused:
            one.start("10.0.0.1", 1)
        assert refused.value.code == "limit" and "2 a minute" in refused.value.message
        one.start("10.0.0.2", 2)  # another address has its own allowance

        two = Admission(client, Settings(start_rate_limit="3/minute;5/hour"), prefix=prefix)
        two.start("10.0.0.3", 3)
        for _ in range(3):  # refused by the minute's window each time...
            with pytest.raises(ProtocolError):
                two.start("10.0.0.3", 1)
        # ...which took nothing from the hour's: 2 of its 5 are still there.
        hourly = Admission(client, Settings(start_rate_limit="5/hour"), prefix=prefix)
        hourly.start("10.0.0.3", 2)
        with pytest.raises(ProtocolError):
            hourly.start("10.0.0.3", 1)
    finally:
        client.close()
