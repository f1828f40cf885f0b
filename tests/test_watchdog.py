"""The watchdog in the running stack: every web process runs it from its
start, whatever serves it, with or without Socket.IO clients; no other process
does. A record never sent ends; a cancel always ends a task; a queued bar says
when no worker is alive. (Its verdicts one by one: tests/test_store.py.)"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests

from progressbar.service import new_id
from progressbar.snapshot import queued_snapshot
from progressbar.store import Store, connect
from progressbar.web.watchdog import NEVER_SENT, NO_WORKER
from tests.stack import (
    Process,
    ProgressClient,
    Stack,
    free_port,
    identity_cookie,
    wait_until,
)

# Short graces, so that the stack's tests wait seconds rather than the defaults.
CANCEL_GRACE = 2.0
SEND_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    graces = {"CANCEL_GRACE": str(CANCEL_GRACE), "SEND_TIMEOUT": str(SEND_TIMEOUT)}
    logs = tmp_path_factory.mktemp("watchdog")
    with Stack(logs, secret="watchdog", worker_args=("-c", "2"), env_extra=graces) as stack:
        yield stack


@pytest.fixture
def client(stack: Stack) -> Iterator[ProgressClient]:
    with closing(ProgressClient(stack.base_url, identity_cookie(stack.base_url))) as client:
        yield client


def restart_worker(stack: Stack) -> None:
    """The stack's worker again, under a new node name (the old one may linger)."""
    stack.start_worker(stack.workers[0], celery_name=f"worker-{time.monotonic_ns()}")


SERVERS = {
    "python app.py": [sys.executable, "app.py"],
    "flask run": [sys.executable, "-m", "flask", "--app", "app", "run", "--port", "{port}"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "python:progressbar.web.gunicorn"]
    + ["app:app"],
}


@pytest.mark.parametrize("server", SERVERS)
def test_every_web_process_runs_the_watchdog_from_its_start(
    stack: Stack, server: str, tmp_path: Path
) -> None:
    port = free_port()
    args = [arg.format(port=port) for arg in SERVERS[server]]
    env = {**stack.env, "PORT": str(port), "HOST": "127.0.0.1"}
    web = Process(args, env, tmp_path / "web.log")
    try:
        # Not one request: it runs all the same.
        web.wait_for_log("watchdog: running", timeout=30)
    finally:
        web.stop()


def test_no_watchdog_in_a_worker_or_the_cli(stack: Stack, tmp_path: Path) -> None:
    # The CLI follows its task for seconds: a watchdog would say it runs after one.
    start = [sys.executable, "-m", "flask", "--app", "app", "progress", "start", "simulate"]
    cli = Process([*start, "--duration", "3"], stack.env, tmp_path / "cli.log")
    try:
        assert cli.popen.wait(30) == 0
    finally:
        cli.stop()
    assert cli.log_lines("succeeded") and not cli.log_lines("watchdog: running")
    assert stack.worker.alive() and not stack.worker.log_lines("watchdog: running")


def test_without_any_socketio_connection_a_dead_workers_task_ends_lost(stack: Stack) -> None:
    # A web process of its own that only ever serves HTTP.
    stack.start_web("http-only")
    base = stack.url("http-only")
    http = requests.Session()
    http.get(base + "/progressbar/identity", timeout=5).raise_for_status()
    started = http.post(
        base + "/api/tasks", json={"kind": "simulate", "params": {"duration": 60}}, timeout=5
    ).json()
    url = f"{base}/api/tasks/{started['task']['task_id']}"
    wait_until(lambda: http.get(url, timeout=5).json()["task"]["state"] == "running", 15, "running")
    os.kill(stack.worker.pid, signal.SIGKILL)
    killed = time.monotonic()
    try:
        # LOST_TIMEOUT (5 s) after the last heartbeat, plus the scan's second.
        final = wait_until(
            lambda: (t := http.get(url, timeout=5).json()["task"])["state"] != "running" and t,
            15,
            "the task no longer running",
        )
        assert final["state"] == "lost" and "stopped responding" in final["error"]
        print(f"lost, over HTTP only, {time.monotonic() - killed:.1f} s after kill -9")
    finally:
        restart_worker(stack)


def test_a_record_its_web_process_never_sent_ends_lost(stack: Stack) -> None:
    # What a web process killed between a task's record and its message leaves.
    store = Store(connect(stack.redis_url, 2), ttl=600, channel="progressbar")
    # As the service makes them: never beginning with `-`, which the command
    # line would take for an option.
    task_id = new_id()
    created = time.time()
    store.create(task_id, "cli:tester", queued_snapshot(task_id, "primes", created))
    watch = [sys.executable, "-m", "flask", "--app", "app", "progress", "watch", task_id]
    cli = Process([*watch, "--as", "cli:tester"], stack.env, stack.logs / "cli-watch.log")
    try:
        assert cli.popen.wait(SEND_TIMEOUT + 15) == 3  # the CLI's status for lost
        print(f"never-sent record lost {time.time() - created:.1f} s after its creation")
        assert cli.log_lines(f"lost: {NEVER_SENT}")
    finally:
        cli.stop()
        store.redis.close()


def test_a_task_that_ignores_cancel_is_terminated_and_ends_cancelled(
    client: ProgressClient,
) -> None:
    # Both pool processes taken by calls that never check for a cancel.
    stuck = [client.start("blocking", duration=120)["task_id"] for _ in range(2)]
    for task_id in stuck:
        client.wait_for(task_id, lambda s: s["state"] == "running")
    behind = client.start("simulate", duration=0.5, seed=1)["task_id"]
    # Longer than SEND_TIMEOUT: a task waiting in the queue is left waiting.
    time.sleep(SEND_TIMEOUT + 1.5)
    assert client.call("subscribe", {"task_id": behind})["task"]["state"] == "queued"

    asked = time.time()
    for task_id in stuck:
        answer = client.call("cancel", {"task_id": task_id})
        assert answer["ok"] and answer["outcome"] == "requested", answer
        assert f"if it has not stopped {CANCEL_GRACE:g} s from now" in answer["message"]
    for task_id in stuck:
        final = client.wait_terminal(task_id, timeout=CANCEL_GRACE + 10)
        assert final["state"] == "cancelled", final
        assert "terminated on its worker" in final["message"]
        assert client.pushes_for(task_id)[-1] is final  # nothing after the end
        print(f"cancelled {final['_received'] - asked:.1f} s after the request")
    # Their pool processes were freed: the task behind them runs now, not in 2 minutes.
    assert client.wait_terminal(behind, timeout=20)["state"] == "succeeded"


def test_a_task_started_with_no_worker_alive_says_so_then_runs(
    stack: Stack, client: ProgressClient
) -> None:
    stack.worker.stop()
    try:
        health = f"{stack.base_url}/healthz"
        wait_until(lambda: requests.get(health, timeout=5).status_code == 503, 15, "no worker")
        task = client.start("simulate", duration=0.5, seed=2)
        noted = client.wait_for(task["task_id"], lambda s: s["message"] == NO_WORKER, timeout=10)
        print(f"no-worker note {noted['_received'] - task['created_at']:.1f} s after the start")
        assert noted["state"] == "queued" and noted["seq"] == 2
    finally:
        restart_worker(stack)
    final = client.wait_terminal(task["task_id"], timeout=30)
    assert final["state"] == "succeeded"
    assert any(
        p["state"] == "running" and p["message"] != NO_WORKER
        for p in client.pushes_for(task["task_id"])
    )
