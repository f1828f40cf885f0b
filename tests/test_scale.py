"""Two web processes and two workers on one Redis: nothing may assume one process."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests

from progressbar.store import Store, connect
from tests.stack import (
    ROOT,
    Process,
    ProgressClient,
    Stack,
    extra_web,
    free_port,
    hearing,
    identity_cookie,
    page_transports,
    wait_until,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Web processes `a` and `b`, workers `w1` and `w2`."""
    with Stack(
        tmp_path_factory.mktemp("scale"),
        secret="scale",
        workers=("w1", "w2"),
        webs=("a", "b"),
        worker_args=("-c", "2"),
        persistent=True,
    ) as cluster:
        yield cluster


@pytest.fixture
def pair(cluster: Stack) -> Iterator[tuple[ProgressClient, ProgressClient]]:
    """One identity, one connection to each web process."""
    cookie = identity_cookie(cluster.url("a"))
    a, b = ProgressClient(cluster.url("a"), cookie), ProgressClient(cluster.url("b"), cookie)
    yield a, b
    a.close()
    b.close()


def test_a_task_started_on_b_is_watched_on_a_in_order(pair) -> None:
    a, b = pair
    task = b.start("simulate", duration=2, seed=1)
    assert a.call("subscribe", {"task_id": task["task_id"]})["ok"]
    final = a.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded"
    assert b.wait_terminal(task["task_id"], timeout=5)["seq"] == final["seq"]
    seen_on_a = [p["seq"] for p in a.pushes_for(task["task_id"])]
    seen_on_b = [p["seq"] for p in b.pushes_for(task["task_id"])]
    assert seen_on_b == list(range(2, final["seq"] + 1))  # every update, in order
    assert seen_on_a == seen_on_b[-len(seen_on_a) :]  # a: from its subscribe on, in order
    assert [t["task_id"] for t in a.call("list")["tasks"]] == [task["task_id"]]


def test_cancel_through_b_stops_a_task_watched_on_a(pair) -> None:
    a, b = pair
    task = a.start("simulate", duration=60, seed=2)
    a.wait_for(task["task_id"], lambda s: s["state"] == "running")
    asked = time.time()
    assert b.call("cancel", {"task_id": task["task_id"]})["outcome"] == "requested"
    final = a.wait_terminal(task["task_id"], timeout=5)
    assert final["state"] == "cancelled" and final["_received"] - asked < 1.5


def test_killing_one_worker_leaves_the_other_serving(cluster: Stack, pair) -> None:
    a, b = pair
    tasks = [a.start("simulate", duration=60, seed=i)["task_id"] for i in range(4)]
    for task_id in tasks:  # two per worker: both pools are full
        a.wait_for(task_id, lambda s: s["state"] == "running", timeout=10)
    os.kill(cluster.worker_processes["w1"].pid, signal.SIGKILL)
    killed = time.time()
    try:

        def lost_tasks() -> list[str]:
            return [t for t in tasks if any(p["state"] == "lost" for p in a.pushes_for(t))]

        # The two that ran on w1, and only those.
        wait_until(lambda: len(lost_tasks()) == 2, 12, "w1's two tasks lost", interval=0.1)
        lost = lost_tasks()
        assert len(lost) == 2, [a.pushes_for(t)[-1]["state"] for t in tasks]
        print(f"lost {time.time() - killed:.1f} s after kill -9 of worker w1")
        # Each lost task was reported once, though two watchdogs looked.
        for task_id in lost:
            assert [p["state"] for p in a.pushes_for(task_id)].count("lost") == 1
        for task_id in set(tasks) - set(lost):
            b.call("cancel", {"task_id": task_id})
            assert a.wait_terminal(task_id, timeout=5)["state"] == "cancelled"
        after = b.start("primes", limit=10**6)
        assert b.wait_terminal(after["task_id"], timeout=15)["result"] == 78498

        def alive() -> list[str]:
            health = requests.get(f"{cluster.url('a')}/healthz", timeout=5).json()
            return [name.split("@")[0] for name in health["workers"]["alive"]]

        wait_until(lambda: alive() == ["w2"], 10, "healthz forgetting the dead worker")
    finally:
        cluster.start_worker("w1")


def test_restarting_web_b_loses_no_bar_on_a(cluster: Stack, pair) -> None:
    a, b = pair
    task = a.start("simulate", duration=4, seed=5)
    a.wait_for(task["task_id"], lambda s: s["state"] == "running")
    cluster.start_web("b")
    final = a.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded"
    seqs = [p["seq"] for p in a.pushes_for(task["task_id"])]
    assert seqs == list(range(seqs[0], final["seq"] + 1))  # nothing lost on a


def test_websocket_only_transport_needs_no_sticky_sessions(cluster: Stack, tmp_path) -> None:
    import socketio

    env = {**cluster.env, "SOCKETIO_TRANSPORTS": "websocket"}
    with extra_web(env, tmp_path, "web-ws-only") as base:
        assert page_transports(requests.get(base, timeout=5).text) == ["websocket"]
        polling = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            polling.connect(base, namespaces=["/progress"], transports=["polling"], wait_timeout=5)
        client = ProgressClient(base, identity_cookie(base), transport="websocket")
        try:
            task = client.start("primes", limit=1000)
            assert client.wait_terminal(task["task_id"])["result"] == 168
        finally:
            client.close()


def start_nginx(cluster: Stack, tmp_path: Path, sticky: bool) -> tuple[Process, str]:
    """deploy/nginx.conf in front of web a and b, on a free port."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    port = free_port()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in cluster.ports.values())
    conf = re.sub(r"(    server 127\.0\.0\.1:\d+;\n)+", servers, conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    if not sticky:
        conf = conf.replace("    ip_hash;\n", "")
    (tmp_path / "progressbar.conf").write_text(conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"daemon off;\nuser root;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}/body; "
        f"proxy_temp_path {tmp_path}/proxy; include {tmp_path}/progressbar.conf; }}\n"
    )
    process = Process(
        ["nginx", "-p", str(tmp_path), "-c", str(main)], cluster.env, tmp_path / "nginx.log"
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(base + "/", timeout=1).ok, 10, "nginx proxying")
    return process, base


@pytest.mark.parametrize(("sticky", "transport"), [(True, "polling"), (False, "websocket")])
def test_behind_nginx(cluster: Stack, tmp_path: Path, sticky: bool, transport: str) -> None:
    nginx, base = start_nginx(cluster, tmp_path, sticky)
    try:
        cookie = identity_cookie(base)
        client = ProgressClient(base, cookie, transport=transport)
        try:
            assert client.sio.transport() == transport
            task = client.start("simulate", duration=1, seed=7)
            final = client.wait_terminal(task["task_id"], timeout=15)
            assert final["state"] == "succeeded"
            seqs = [p["seq"] for p in client.pushes_for(task["task_id"])]
            assert seqs == list(range(2, final["seq"] + 1))
        finally:
            client.close()
        api = requests.post(
            f"{base}/api/tasks",
            json={"kind": "primes"},
            timeout=5,
            headers={"Cookie": cookie, "Origin": base},
        )
        assert api.status_code == 202  # the origin check sees the proxy's host and port
    finally:
        nginx.stop()


def test_a_lost_task_is_still_reported_when_a_web_process_is_gone(cluster: Stack, pair) -> None:
    a, b = pair
    task = a.start("simulate", duration=60, seed=9)
    a.wait_for(task["task_id"], lambda s: s["state"] == "running")
    os.kill(cluster.web_processes["b"].pid, signal.SIGKILL)  # one watchdog fewer
    pids = [worker.pid for worker in cluster.worker_processes.values()]
    try:
        # Kill whichever worker runs it: both, then bring them back.
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        final = a.wait_terminal(task["task_id"], timeout=12)
        assert final["state"] == "lost"
        assert [p["state"] for p in a.pushes_for(task["task_id"])].count("lost") == 1
    finally:
        cluster.start_web("b")
        for name in cluster.workers:
            cluster.start_worker(name)


def test_only_web_processes_with_watchers_of_a_task_hear_its_pushes(cluster: Stack) -> None:
    cookie = identity_cookie(cluster.url("a"))
    a = ProgressClient(cluster.url("a"), cookie)
    b1, b2 = ProgressClient(cluster.url("b"), cookie), ProgressClient(cluster.url("b"), cookie)
    try:
        task_id = a.start("simulate", duration=60, seed=11)["task_id"]
        assert hearing(cluster, task_id) == 1  # a, from before its start was answered
        a.wait_for(task_id, lambda s: s["state"] == "running")
        answers = [b.call("subscribe", {"task_id": task_id}) for b in (b1, b2)]
        assert all(answer["ok"] for answer in answers)
        assert hearing(cluster, task_id) == 2
        b1.wait_for(task_id, lambda s: s["seq"] > answers[0]["task"]["seq"])  # b delivers it
        assert a.call("unsubscribe", {"task_id": task_id})["ok"]
        wait_until(lambda: hearing(cluster, task_id) == 1, 5, "a no longer hearing the task")
        b1.close()  # b hears it while one watcher is left there
        assert b2.call("cancel", {"task_id": task_id})["outcome"] == "requested"
        assert b2.wait_terminal(task_id, timeout=5)["state"] == "cancelled"
        # Its end delivered, b lets its watcher go: no unsubscribe needed.
        wait_until(lambda: hearing(cluster, task_id) == 0, 5, "no web process hearing the task")
        assert b2.call("unsubscribe", {"task_id": task_id}) == {"ok": True}  # still answered
        assert [p["state"] for p in a.pushes_for(task_id)].count("cancelled") == 0
        # Subscribing to a task seen ending answers its end and joins nothing.
        subscribes = subscribe_commands(cluster)
        assert b2.call("subscribe", {"task_id": task_id})["task"]["state"] == "cancelled"
        assert a.call("subscribe", {"task_id": task_id})["task"]["state"] == "cancelled"
        assert hearing(cluster, task_id) == 0
        # b saw it end: no SUBSCRIBE at all; a did not (it joined, then left).
        assert subscribe_commands(cluster) == subscribes + 1
    finally:
        a.close()
        b2.close()


def subscribe_commands(cluster: Stack) -> int:
    """How many SUBSCRIBE commands Redis has run."""
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        return int(client.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))
    finally:
        client.close()


def test_a_store_push_on_the_shared_channel_still_reaches_its_watchers(cluster: Stack) -> None:
    """A publisher without task channels (a worker of an earlier version, in a
    rolling deploy) still reaches every bar of the task, on any web process."""
    cookie = identity_cookie(cluster.url("a"))
    a, b = ProgressClient(cluster.url("a"), cookie), ProgressClient(cluster.url("b"), cookie)
    try:
        with workers_stopped(cluster):
            task_id = b.start("primes", limit=1000)["task_id"]
            assert a.call("subscribe", {"task_id": task_id})["task"]["state"] == "queued"
            assert hearing(cluster, task_id) == 2
            mark_record(cluster, task_id, {"message": '"from the shared channel"'})
            shared = Store(connect(cluster.redis_url, 2), ttl=60, channel="progressbar")
            assert shared.republish([task_id], unfinished=set()) == 1
            a.wait_for(task_id, lambda s: s["message"] == "from the shared channel")
    finally:
        a.close()
        b.close()


@contextmanager
def workers_stopped(cluster: Stack) -> Iterator[None]:
    """The cluster's workers stopped (SIGSTOP): a task started meanwhile
    stays queued, its record as written here."""
    workers = list(cluster.worker_processes.values())
    try:
        for worker in workers:
            worker.signal(signal.SIGSTOP)
        yield
    finally:
        for worker in workers:
            worker.signal(signal.SIGCONT)


def mark_record(
    cluster: Stack, task_id: str, replace: dict[str, str], state: str | None = None
) -> None:
    """Rewrite a task's stored snapshot as text: the value of each field
    named in `replace` becomes the text given (JSON, or a bare NaN); with
    `state`, the record's own state too."""
    records = redis.Redis.from_url(cluster.redis_url)
    key = f"progressbar:task:{task_id}"
    try:
        text = records.hget(key, "snapshot").decode()
        for field, value in replace.items():
            head = f'"{field}":'
            text, count = re.subn(re.escape(head) + r'("[^"]*"|[^,}]*)', head + value, text)
            assert count == 1, field
        records.hset(key, "snapshot", text)
        if state is not None:
            records.hset(key, "state", state)
    finally:
        records.close()


def test_an_old_record_with_a_bare_nan_is_still_pushed_as_null(cluster: Stack) -> None:
    """Earlier versions stored NaN as a bare literal: a push of such a record
    reaches the bar as JSON a browser can parse, the NaN made null; when it is
    the task's end, its watchers are let go of the room as after any end."""
    client = ProgressClient(cluster.url("a"), identity_cookie(cluster.url("a")))
    try:
        with workers_stopped(cluster):
            task_id = client.start("primes", limit=1000)["task_id"]
            assert hearing(cluster, task_id) == 1
            # An old record of a task that ended lost, with a bare NaN.
            ended = {"state": '"lost"', "updated_at": "NaN"}
            mark_record(cluster, task_id, ended, state="lost")
            store = Store(connect(cluster.redis_url, 2), ttl=60, channel="progressbar")
            store.task_channels = True  # as the stack's processes publish
            assert store.republish([task_id], unfinished=set()) == 1
            pushed = client.wait_for(task_id, lambda s: s["state"] == "lost")
            assert pushed["updated_at"] is None
            wait_until(lambda: hearing(cluster, task_id) == 0, 5, "the ended task let go")
    finally:
        client.close()
