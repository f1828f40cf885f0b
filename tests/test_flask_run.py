"""`flask --app app run` (threading mode) serves the page and websockets too."""

from __future__ import annotations

import sys

from tests.stack import ProgressClient, free_port, identity_cookie, start_web


def test_flask_run_serves_websockets(stack_env, logs_dir, worker) -> None:
    port = free_port()
    args = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    web = start_web(args, stack_env, port, logs_dir, "flask-run")
    try:
        base = f"http://127.0.0.1:{port}"
        client = ProgressClient(base, identity_cookie(base), transport="websocket")
        try:
            assert client.sio.transport() == "websocket"
            task = client.start("simulate", duration=0.5, seed=9)
            final = client.wait_terminal(task["task_id"], timeout=15)
            assert final["state"] == "succeeded" and final["percent"] == 100.0
            seqs = [p["seq"] for p in client.pushes_for(task["task_id"])]
            assert seqs == list(range(2, seqs[-1] + 1))
        finally:
            client.close()
    finally:
        web.stop()
