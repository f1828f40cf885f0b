"""The demo served by gunicorn's gevent worker, as a host app would serve
itself: bars over websocket and over long-polling, end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.stack import ProgressClient, free_port, identity_cookie, start_web

# The documented line: the extension's gunicorn configuration, then the app.
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:progressbar.web.gunicorn", "app:app"]


@pytest.fixture(scope="module")
def served(stack_env: dict[str, str], worker, logs_dir: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    # gunicorn binds 0.0.0.0:$PORT, which start_web sets.
    process = start_web(GUNICORN, stack_env, port, logs_dir, "gunicorn")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_gunicorn_with_gevent_serves_live_bars(served: str, transport: str) -> None:
    client = ProgressClient(served, identity_cookie(served), transport=transport)
    try:
        task = client.start("primes", limit=2_000_000)
        final = client.wait_terminal(task["task_id"], timeout=30)
        assert (final["state"], final["result"]) == ("succeeded", 148933)
        seqs = [p["seq"] for p in client.pushes_for(task["task_id"])]
        assert seqs == sorted(set(seqs)) and len(seqs) >= 2
    finally:
        client.close()
