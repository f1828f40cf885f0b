"""Chaos: many tasks, several identities, killed workers and a Redis restart.

Afterwards every task is terminal, and what its owner sees is right: correct
results, failures only where asked for, `lost` only with a reason, and nobody
sees anybody else's tasks.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.work import count_primes
from progressbar.settings import Settings
from tests.stack import TERMINAL, ProgressClient, Stack, identity_cookie, wait_until

IDENTITIES = 8
TASKS_EACH = Settings().max_active_tasks  # the default per-identity limit: all at once


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(
        tmp_path,
        secret="chaos",
        workers=("chaos0", "chaos1"),
        webs=("chaos-web",),
        worker_args=("-c", "4"),
        # A message a killed worker had taken but not yet received comes back
        # after the visibility timeout: 10 s here, so it runs within the wait.
        env_extra={"VISIBILITY_TIMEOUT": "10"},
        persistent=True,
    ) as stack:
        yield stack


def test_chaos(stack: Stack) -> None:
    rng = random.Random(2026)
    base = stack.base_url
    clients = [ProgressClient(base, identity_cookie(base)) for _ in range(IDENTITIES)]
    try:
        expected: dict[str, tuple[int, dict]] = {}  # task id -> (owner index, params)
        for owner, client in enumerate(clients):
            for _ in range(TASKS_EACH):
                if rng.random() < 0.4:
                    params = {"limit": rng.choice([10**4, 10**5, 10**6, 3 * 10**6])}
                    task = client.start("primes", **params)
                else:
                    params = {"duration": rng.uniform(1, 6), "seed": rng.randrange(1000)}
                    if rng.random() < 0.2:
                        params["fail_at"] = rng.randrange(20, 90)
                    task = client.start("simulate", **params)
                expected[task["task_id"]] = (owner, params)

        # The chaos: pool processes and a whole worker killed, Redis restarted.
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 1.5))
            pids = stack.pool_pids(rng.choice(stack.workers))
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
        os.kill(stack.worker_processes["chaos0"].pid, signal.SIGKILL)
        stack.start_worker("chaos0", celery_name="chaos0-again")
        stack.redis.stop()
        time.sleep(2)
        stack.start_redis()

        def all_terminal() -> bool:
            return all(t["state"] in TERMINAL for c in clients for t in c.call("list")["tasks"])

        wait_until(all_terminal, 90, "every task terminal", interval=0.5)

        outcomes: dict[str, int] = {}
        for owner, client in enumerate(clients):
            tasks = client.call("list")["tasks"]
            mine = {task_id for task_id, (o, _) in expected.items() if o == owner}
            assert {t["task_id"] for t in tasks} == mine  # exactly its own tasks
            for task in tasks:
                _, params = expected[task["task_id"]]
                outcomes[task["state"]] = outcomes.get(task["state"], 0) + 1
                if task["state"] == "succeeded":
                    if task["kind"] == "primes":
                        assert task["result"] == count_primes(params["limit"])
                    else:
                        assert "fail_at" not in params
                        assert task["percent"] == 100.0
                elif task["state"] == "failed":
                    assert "fail_at" in params, task["error"]
                    assert f"fail_at={params['fail_at']}" in task["error"]
                else:
                    assert task["state"] == "lost", task
                    assert task["error"]
                # What was pushed to the owner came in order and ends where the record
                # does. A resync after Redis returned may repeat a state: same seq,
                # same content, which clients ignore.
                pushed = client.pushes_for(task["task_id"])
                seqs = [p["seq"] for p in pushed]
                assert seqs == sorted(seqs)
                for a, b in zip(pushed, pushed[1:], strict=False):
                    if a["seq"] == b["seq"]:
                        assert {**a, "_received": 0} == {**b, "_received": 0}
                assert not pushed or pushed[-1]["seq"] <= task["seq"]
        print(f"chaos: {len(expected)} tasks -> {outcomes}")
        assert outcomes.get("succeeded", 0) > 0
    finally:
        for client in clients:
            client.close()
