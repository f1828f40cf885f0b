"""Numbers that JSON has no text for (NaN, ±infinity), returned and reported by
real tasks on a real worker (tests/valuetasks.py): every answer and every push
stays JSON a browser can parse, and such a task still ends, however it ends."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from itsdangerous import URLSafeSerializer

from progressbar.snapshot import TERMINAL_STATES
from tests.stack import (
    ROOT,
    Process,
    RawSocketIO,
    Stack,
    pool_pids,
    start_worker,
    strict_json,
    wait_until,
)


@pytest.fixture(scope="module")
def values_worker(stack_env: dict[str, str], logs_dir: Path) -> Iterator[Process]:
    """A worker of the demo app with the kinds of tests/valuetasks.py, on their queue."""
    args = ("-c", "2", "-Q", "values")
    worker = start_worker(stack_env, logs_dir, "values-worker", *args, app="tests.valuetasks")
    yield worker
    worker.stop()


class Owner:
    """An identity that starts tasks from the terminal (`flask progress start
    --as`) and reads them over HTTP and Socket.IO with its signed cookie."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.identity = f"values-{secrets.token_hex(4)}"
        signed = URLSafeSerializer(stack.secret, salt="progressbar.identity").dumps(self.identity)
        self.cookie = f"progressbar_identity={signed}"
        self.http = requests.Session()
        self.http.headers["Cookie"] = self.cookie

    def start(self, kind: str, *params: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "tests.valuetasks:flask_app", "progress"]
            + ["start", kind, *params, "--as", self.identity, "--detach"],
            cwd=ROOT,
            env=self.stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    def api(self, path: str, method: str = "GET") -> Any:
        """An answer of the HTTP API, parsed as strict JSON."""
        answer = self.http.request(
            method, self.stack.base_url + "/api" + path, json={} if method == "POST" else None
        )
        return strict_json(answer.text)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.api(f"/tasks/{task_id}")["task"]

    def wait(self, task_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            task = self.task(task_id)
            return task if task["state"] in states else None

        return wait_until(reached, timeout, f"{task_id} in {sorted(states)}", interval=0.1)


@pytest.fixture
def owner(stack: Stack, web: str, values_worker: Process) -> Owner:
    return Owner(stack)


def test_a_result_of_nan_and_infinities_is_shown_as_null(owner: Owner) -> None:
    task_id = owner.start("nan_result")
    task = owner.wait(task_id, set(TERMINAL_STATES))
    assert task["state"] == "succeeded"
    assert task["result"] == {"mean": None, "spread": None, "low": None, "count": 0}
    # The owner's list, over HTTP and as the page gets it over Socket.IO.
    assert [t["task_id"] for t in owner.api("/tasks")["tasks"]] == [task_id]
    page = RawSocketIO(owner.stack.base_url, owner.cookie)
    try:
        (listed,) = strict_json(page.call('["list"]'))
        assert listed["ok"] and listed["tasks"][0]["state"] == "succeeded"
        (watched,) = strict_json(page.call(f'["subscribe",{{"task_id":"{task_id}"}}]'))
        assert watched["task"]["result"]["mean"] is None
    finally:
        page.close()


def test_a_task_reporting_nan_of_infinity_can_be_cancelled(owner: Owner) -> None:
    task_id = owner.start("nan_progress", "--seconds", "60")
    running = owner.wait(task_id, {"running"})
    # Not a number: the bar shows no total and no percent, rather than breaking.
    assert (running["current"], running["total"], running["percent"]) == (0, None, None)
    page = RawSocketIO(owner.stack.base_url, owner.cookie)
    try:
        strict_json(page.call(f'["subscribe",{{"task_id":"{task_id}"}}]'))
        answer = owner.api(f"/tasks/{task_id}/cancel", "POST")
        assert answer["ok"] and answer["outcome"] == "requested", answer
        # Every push on the way to the end is JSON a browser reads.
        while True:
            _, snapshot = strict_json(page.next_push())
            if snapshot["state"] in TERMINAL_STATES:
                break
        assert snapshot["state"] == "cancelled"
    finally:
        page.close()
    assert owner.api("/tasks")["tasks"][0]["state"] == "cancelled"


def test_a_task_reporting_nan_is_lost_when_its_process_dies(
    owner: Owner, values_worker: Process
) -> None:
    task_id = owner.start("nan_progress", "--seconds", "60")
    owner.wait(task_id, {"running"})
    for pid in pool_pids(values_worker.pid):
        os.kill(pid, signal.SIGKILL)
    lost = owner.wait(task_id, set(TERMINAL_STATES), timeout=15)
    assert lost["state"] == "lost"
    assert lost["error"] == "The worker process running it died."
    assert owner.api("/tasks")["tasks"][0]["state"] == "lost"
