"""Chaos: many tasks, several identities, killed workers and a Redis restart.

Afterwards every task is terminal, and what its owner sees is right: correct
results, failures only where asked for, `lost` only with a reason, and nobody
sees anybody else's tasks.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

from demo.work import count_primes
from tests.stack import (
    TERMINAL,
    ProgressClient,
    free_port,
    identity_cookie,
    pool_pids,
    process_env,
    start_redis,
    start_web,
    start_worker,
    wait_until,
)

IDENTITIES = 5
TASKS_EACH = 10  # the default per-identity limit: all of them at once


def test_chaos(tmp_path) -> None:
    rng = random.Random(2026)
    redis_port = free_port()
    redis, url = start_redis(tmp_path, redis_port, persistent=True)
    # A message a killed worker had taken but not yet received comes back
    # after the visibility timeout: 10 s here, so it runs within the wait.
    env = process_env(url, "chaos", VISIBILITY_TIMEOUT="10")
    workers = [start_worker(env, tmp_path, f"chaos{i}", "-c", "4") for i in range(2)]
    port = free_port()
    web = start_web([sys.executable, "app.py"], env, port, tmp_path, "chaos-web")
    base = f"http://127.0.0.1:{port}"
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
            victim = rng.choice(workers)
            pids = pool_pids(victim.pid)
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].stop()
        workers[0] = start_worker(env, tmp_path, "chaos0-again", "-c", "4")
        redis.stop()
        time.sleep(2)
        redis = start_redis(tmp_path, redis_port, persistent=True)[0]

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
        web.stop()
        for worker in workers:
            worker.stop()
        redis.stop()
