"""The demo served by gunicorn's gevent worker, as a host app would serve
itself: bars over websocket and over long-polling, end to end."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from tests.stack import (
    Process,
    ProgressClient,
    RawSocketIO,
    free_port,
    identity_cookie,
    pool_pids,
    start_web,
)

# The documented line: the extension's gunicorn configuration, then the app.
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:progressbar.web.gunicorn", "app:app"]


@pytest.fixture(scope="module")
def gunicorn(stack_env: dict[str, str], worker, logs_dir: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    # gunicorn binds 0.0.0.0:$PORT, which start_web sets.
    process = start_web(GUNICORN, stack_env, port, logs_dir, "gunicorn")
    yield process, f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="module")
def served(gunicorn: tuple[Process, str]) -> str:
    return gunicorn[1]


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


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no RSS for {pid}")


def test_an_open_websocket_costs_the_worker_no_green_thread(
    gunicorn: tuple[Process, str],
) -> None:
    # Parked, an idle connection costs its socket and protocol objects
    # (about 15 KB); served by simple-websocket, two green threads more
    # (about 45 KB). Measured over a few hundred, as an operator would.
    process, base = gunicorn
    (worker_pid,) = pool_pids(process.pid)
    cookie = identity_cookie(base)
    warm = [RawSocketIO(base, cookie) for _ in range(50)]  # the worker's pools grown
    before = rss_kb(worker_pid)
    opened = [RawSocketIO(base, cookie) for _ in range(OPENED)]
    try:
        per_connection = (rss_kb(worker_pid) - before) / OPENED
        assert per_connection < 25, f"{per_connection:.1f} KB per open websocket"
        assert '"ok":true' in opened[-1].call('["list",{}]')  # and they are served
    finally:
        for raw in warm + opened:
            raw.close()


OPENED = 400


def test_a_browser_offering_compression_is_served_without_it(served: str) -> None:
    # Browsers offer permessage-deflate; as under `python app.py`, it is
    # declined (a compressor per watcher), and the page is served.
    async def follow_a_task() -> tuple[str, list[str]]:
        url = served.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        headers = {"Cookie": identity_cookie(served)}
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, headers=headers, compress=15)
            extensions = ws._response.headers.get("Sec-WebSocket-Extensions", "")
            assert (await ws.receive_str()).startswith("0")
            await ws.send_str("40/progress,")
            assert (await ws.receive_str()).startswith("40/progress,")
            start = {"kind": "primes", "params": {"limit": 1000}}
            await ws.send_str(f'42/progress,1["start",{json.dumps(start)}]')
            texts = []
            while not any('"state":"succeeded"' in t for t in texts):
                texts.append(await asyncio.wait_for(ws.receive_str(), 30))
            await ws.close()
            return extensions, texts

    # In a thread of its own: an earlier test (Playwright's) may leave an
    # event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        extensions, texts = thread.submit(asyncio.run, follow_a_task()).result(timeout=60)
    assert extensions == ""
    assert texts[0].startswith('43/progress,1[{"ok":true')
    assert any('"state":"running"' in t or '"state":"succeeded"' in t for t in texts[1:])


def test_a_worker_told_to_stop_lets_its_open_bars_go_at_once(
    stack_env: dict[str, str], worker: Process, logs_dir: Path
) -> None:
    # gunicorn waits up to graceful_timeout (30 s) for the connections it
    # serves to end; open bars never would. Closed at once, they reconnect.
    port = free_port()
    process = start_web(GUNICORN, stack_env, port, logs_dir, "gunicorn-stopping")
    base = f"http://127.0.0.1:{port}"
    cookie = identity_cookie(base)
    polling = ProgressClient(base, cookie, transport="polling")
    try:
        watching = [RawSocketIO(base, cookie) for _ in range(20)]
        task = watching[0].call('["start",{"kind":"simulate","params":{"duration":60}}]')
        task_id = json.loads(task)[0]["task"]["task_id"]
        for raw in watching[1:]:
            assert '"ok":true' in raw.call(json.dumps(["subscribe", {"task_id": task_id}]))
        told = time.monotonic()
        process.signal(signal.SIGTERM)  # gunicorn's master tells its worker to stop
        # Each websocket's connection ends (parked, with the worker), as
        # under `python app.py`; the poller's request is answered, closed.
        for raw in watching:
            raw.messages_until_closed()
        process.popen.wait(15)
        stopped_s = time.monotonic() - told
        print(f"{len(watching)} websockets and a poller let go, stopped in {stopped_s:.1f} s")
        assert stopped_s < 10, f"stopped {stopped_s:.1f} s after being told"
        assert "Worker graceful timeout" not in process.log.read_text()
    finally:
        polling.close()
        process.stop()


def test_a_connection_whose_first_request_comes_late_is_answered(served: str) -> None:
    # After a restart the worker is busy with every page reconnecting; a
    # connection's first request may be read seconds after it was accepted.
    # gunicorn's own 2 s closed such connections without an answer.
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        time.sleep(3)
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
