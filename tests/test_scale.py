"""Two web processes and two workers on one Redis: nothing may assume one process."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.stack import (
    ROOT,
    Process,
    ProgressClient,
    free_port,
    identity_cookie,
    process_env,
    start_redis,
    start_web,
    start_worker,
    wait_until,
)


class Cluster:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.redis, url = start_redis(logs, persistent=True)
        self.env = process_env(url, "scale")
        self.workers = {n: start_worker(self.env, logs, n, "-c", "2") for n in ("w1", "w2")}
        self.ports = {n: free_port() for n in ("a", "b")}
        self.webs = {n: self.start_web(n) for n in ("a", "b")}

    def start_web(self, name: str) -> Process:
        args = [sys.executable, "app.py"]
        return start_web(args, self.env, self.ports[name], self.logs, f"web-{name}")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        for process in [*self.webs.values(), *self.workers.values(), self.redis]:
            process.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("scale"))
    yield cluster
    cluster.stop()


@pytest.fixture
def pair(cluster: Cluster) -> Iterator[tuple[ProgressClient, ProgressClient]]:
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


def test_killing_one_worker_leaves_the_other_serving(cluster: Cluster, pair) -> None:
    a, b = pair
    tasks = [a.start("simulate", duration=60, seed=i)["task_id"] for i in range(4)]
    for task_id in tasks:  # two per worker: both pools are full
        a.wait_for(task_id, lambda s: s["state"] == "running", timeout=10)
    os.kill(cluster.workers["w1"].pid, signal.SIGKILL)
    killed = time.time()
    try:
        lost = []
        deadline = time.monotonic() + 12
        while len(lost) < 2 and time.monotonic() < deadline:
            lost = [t for t in tasks if any(p["state"] == "lost" for p in a.pushes_for(t))]
            time.sleep(0.1)
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
        cluster.workers["w1"].stop()
        cluster.workers["w1"] = start_worker(cluster.env, cluster.logs, "w1", "-c", "2")


def test_restarting_web_b_loses_no_bar_on_a(cluster: Cluster, pair) -> None:
    a, b = pair
    task = a.start("simulate", duration=4, seed=5)
    a.wait_for(task["task_id"], lambda s: s["state"] == "running")
    cluster.webs["b"].stop()
    cluster.webs["b"] = cluster.start_web("b")
    final = a.wait_terminal(task["task_id"], timeout=15)
    assert final["state"] == "succeeded"
    seqs = [p["seq"] for p in a.pushes_for(task["task_id"])]
    assert seqs == list(range(seqs[0], final["seq"] + 1))  # nothing lost on a


def test_websocket_only_transport_needs_no_sticky_sessions(cluster: Cluster, tmp_path) -> None:
    import socketio

    port = free_port()
    env = {**cluster.env, "SOCKETIO_TRANSPORTS": "websocket"}
    web = start_web([sys.executable, "app.py"], env, port, tmp_path, "web-ws-only")
    try:
        base = f"http://127.0.0.1:{port}"
        assert 'data-transports="websocket"' in requests.get(base, timeout=5).text
        polling = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            polling.connect(base, namespaces=["/progress"], transports=["polling"], wait_timeout=5)
        client = ProgressClient(base, identity_cookie(base), transport="websocket")
        try:
            task = client.start("primes", limit=1000)
            assert client.wait_terminal(task["task_id"])["result"] == 168
        finally:
            client.close()
    finally:
        web.stop()


def start_nginx(cluster: Cluster, tmp_path: Path, sticky: bool) -> tuple[Process, str]:
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
def test_behind_nginx(cluster: Cluster, tmp_path: Path, sticky: bool, transport: str) -> None:
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


def test_a_lost_task_is_still_reported_when_a_web_process_is_gone(cluster: Cluster, pair) -> None:
    a, b = pair
    task = a.start("simulate", duration=60, seed=9)
    a.wait_for(task["task_id"], lambda s: s["state"] == "running")
    os.kill(cluster.webs["b"].pid, signal.SIGKILL)  # one watchdog fewer
    pids = [worker.pid for worker in cluster.workers.values()]
    try:
        # Kill whichever worker runs it: both, then bring them back.
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        final = a.wait_terminal(task["task_id"], timeout=12)
        assert final["state"] == "lost"
        assert [p["state"] for p in a.pushes_for(task["task_id"])].count("lost") == 1
    finally:
        cluster.webs["b"].stop()
        cluster.webs["b"] = cluster.start_web("b")
        for name in list(cluster.workers):
            cluster.workers[name].stop()
            cluster.workers[name] = start_worker(cluster.env, cluster.logs, name, "-c", "2")
