"""Reads shared by concurrent callers: one read answers all who asked before it
began and none who asked after; owners are remembered, never trusted across
identities. The batching logic runs against a counting fetch; the owners
against a real redis-server."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError

from progressbar.reads import Batched, Owners, Reads
from progressbar.snapshot import queued_snapshot
from progressbar.store import Record, Store, connect
from progressbar.web import identity
from tests.stack import wait_until


class Reader:
    """A fetch that answers each key with the number of the read, and holds
    every read until it is let go."""

    def __init__(self) -> None:
        self.reads: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.started = threading.Semaphore(0)
        self.go = threading.Event()
        self.fail_read: int | None = None
        self._lock = threading.Lock()

    def fetch(self, keys: list[str]) -> dict[str, int]:
        with self._lock:
            self.reads.append(keys)
            number = len(self.reads)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.started.release()
        self.go.wait(10)
        with self._lock:
            self.running -= 1
        if number == self.fail_read:
            raise RedisConnectionError("Connection refused")
        return {key: number for key in keys}


def in_threads(batched: Batched, keys: list[str]) -> tuple[list[threading.Thread], dict]:
    """Each key asked in a thread of its own; answers (or errors) by thread."""
    answers: dict[int, object] = {}

    def ask(i: int, key: str) -> None:
        try:
            answers[i] = batched.get(key)
        except Exception as exc:
            answers[i] = exc

    threads = [threading.Thread(target=ask, args=(i, k)) for i, k in enumerate(keys)]
    for thread in threads:
        thread.start()
    return threads, answers


def test_callers_during_a_read_share_the_next_one_and_none_gets_an_older_read() -> None:
    reader = Reader()
    batched: Batched[str, int] = Batched(reader.fetch, threading.Semaphore(1))
    first, first_answer = in_threads(batched, ["a"])
    assert reader.started.acquire(timeout=10)
    # 300 callers, a third of them asking for the key on the wire right now.
    keys = [["a", "b", "c"][i % 3] for i in range(300)]
    threads, answers = in_threads(batched, keys)
    wait_until(lambda: batched.waiting() == 300, 10, "every caller waiting")
    reader.go.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert first_answer == {0: 1}
    # One read for all 300, each key once; the "a"s asked after read 1 began.
    assert reader.reads == [["a"], ["a", "b", "c"]]
    assert set(answers.values()) == {2} and len(answers) == 300


def test_a_failed_read_fails_its_callers_alone() -> None:
    reader = Reader()
    reader.fail_read = 2
    batched: Batched[str, int] = Batched(reader.fetch, threading.Semaphore(1))
    first, _ = in_threads(batched, ["a"])
    assert reader.started.acquire(timeout=10)
    threads, answers = in_threads(batched, ["b"] * 20)
    wait_until(lambda: batched.waiting() == 20, 10, "callers waiting")
    reader.go.set()
    for thread in [*first, *threads]:
        thread.join(10)
    assert len(answers) == 20
    assert all(isinstance(a, RedisConnectionError) for a in answers.values())
    # Nothing is left behind: the next caller gets a read of its own.
    assert batched.get("b") == 3


def test_reads_on_the_wire_are_bounded_and_the_rest_wait_their_turn() -> None:
    reader = Reader()
    slots = threading.Semaphore(2)
    batched: Batched[str, int] = Batched(reader.fetch, slots, max_batch=10)
    threads, answers = in_threads(batched, [f"k{i}" for i in range(100)])
    assert reader.started.acquire(timeout=10) and reader.started.acquire(timeout=10)
    # Two reads run; the other callers queue in batches of at most ten.
    wait_until(lambda: batched.waiting() > 0, 10, "callers queued")
    reader.go.set()
    for thread in threads:
        thread.join(10)
    assert len(answers) == 100 and all(isinstance(a, int) for a in answers.values())
    assert reader.most_running == 2
    assert all(len(keys) <= 10 for keys in reader.reads)
    assert sorted(k for keys in reader.reads for k in keys) == sorted(f"k{i}" for i in range(100))


def record(owner: str, shared: bool = False) -> Record:
    return Record(owner, shared, {"task_id": "x"})


def test_owners_kept_are_the_latest_seen() -> None:
    owners = Owners(size=2)
    owners.note("t1", record("alice"))
    owners.note("t2", record("bob", shared=True))
    assert owners.get("t1") == ("alice", False)  # t1 now the latest seen
    owners.note("t3", record("carol"))
    assert owners.get("t2") is None
    assert owners.get("t1") == ("alice", False) and owners.get("t3") == ("carol", False)
    # A missing task, or one whose record has no owner, is not remembered.
    owners.note("t4", Record(None, False, None))
    owners.note("t5", Record(None, False, {"task_id": "t5"}))
    assert owners.get("t4") is None and owners.get("t5") is None


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    client = connect(redis_url, 10)
    yield Store(client, ttl=60, prefix=f"t{secrets.token_hex(4)}")
    client.close()


def new_task(store: Store, owner: str, shared: bool = False) -> str:
    task_id = secrets.token_urlsafe(8)
    store.create(task_id, owner, queued_snapshot(task_id, "simulate", time.time()), shared)
    return task_id


def test_a_remembered_owner_never_lets_a_stranger_watch(store: Store) -> None:
    reads = Reads(store, pool_size=10)
    own = new_task(store, "alice")
    shared = new_task(store, "alice", shared=True)
    for task_id in (own, shared):
        assert reads.visible(task_id, "alice") is not None
        assert reads.owners.get(task_id) is not None
    # Bob asks once the owners are known: his own read or not, he is refused.
    assert not reads.may_watch(own, "bob")
    assert reads.visible(own, "bob") is None
    # A shared task may be watched by anyone with its id, but only as shared.
    assert reads.may_watch(shared, "bob")
    assert not reads.may_watch(shared, "bob", or_shared=False)
    assert reads.may_watch(shared, "alice", or_shared=False)
    # Nobody may watch what does not exist.
    assert not reads.may_watch("no-such-task", "alice")
    assert reads.owners.get("no-such-task") is None


def test_a_record_gone_is_not_found_even_with_its_owner_remembered(store: Store) -> None:
    reads = Reads(store, pool_size=10)
    task_id = new_task(store, "alice")
    assert reads.may_watch(task_id, "alice")
    store.redis.delete(f"{store.prefix}:task:{task_id}")
    assert reads.visible(task_id, "alice") is None


def test_lists_of_several_owners_are_each_their_own(store: Store) -> None:
    reads = Reads(store, pool_size=10)
    alice = [new_task(store, "alice") for _ in range(2)]
    bob = new_task(store, "bob")
    assert [t["task_id"] for t in reads.list("alice")] == alice[::-1]
    found = store.lists(["alice", "bob", "carol"])
    assert [t["task_id"] for t in found["alice"]] == alice[::-1]
    assert [t["task_id"] for t in found["bob"]] == [bob]
    assert found["carol"] == []


def test_a_cookie_checked_once_is_kept_and_a_forged_one_still_refused() -> None:
    app = Flask(__name__)
    app.secret_key = "one"
    other = Flask(__name__)
    other.secret_key = "two"
    with app.test_request_context():
        signed = identity._signer().dumps("alice")
    forged = signed[:-2] + ("AA" if not signed.endswith("AA") else "BB")

    def seen_by(flask_app: Flask, value: str) -> str | None:
        with flask_app.test_request_context(headers={"Cookie": f"{identity.COOKIE}={value}"}):
            return identity._from_cookie()

    assert seen_by(app, signed) == "alice"
    assert seen_by(app, signed) == "alice"  # kept
    assert seen_by(app, forged) is None
    # Kept under its app's secret key: another key does not take it.
    assert seen_by(other, signed) is None


def test_the_read_connections_are_opened_before_the_first_request(redis_url: str) -> None:
    # As a web process starts serving: a storm of requests right after a
    # restart then finds them open (opening one while the process is busy
    # could miss the connect timeout, and answer `unavailable`).
    client = connect(redis_url, 10)
    try:
        reads = Reads(Store(client, ttl=60, prefix="t"), pool_size=10)
        pool = reads.redis.connection_pool
        assert not pool._connections  # redis-py opens its connections on demand
        reads.open_connections()
        opened = list(pool._connections)
        assert len(opened) == reads.in_flight == 4
        assert all(connection._sock is not None for connection in opened)
        # Everything else the process does has the store's pool: the reads
        # keep theirs, and need open none in the middle of a storm.
        client.get("something else")
        reads.record("no-such-task")  # served by one of them
        assert list(pool._connections) == opened
    finally:
        client.close()
