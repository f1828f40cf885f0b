"""Pushes written straight to websockets (web/direct_writes.py): the frame is
what a client reads, and a watcher that stops reading for a while, so that the
server's writes to it are taken only in part, still gets every push, whole and
in order."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from wsproto.frame_protocol import FrameProtocol, Opcode

from progressbar.web.direct_writes import text_frame
from tests.stack import ProgressClient, Stack, identity_cookie

TICKERS = 50


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_frame_is_one_whole_text_message_to_a_client(size: int) -> None:
    text = ("é" * size)[:size]
    reader = FrameProtocol(client=True, extensions=[])
    reader.receive_bytes(text_frame(text))
    frames = list(reader.received_frames())
    assert [(f.opcode, f.payload, f.message_finished) for f in frames] == [
        (Opcode.TEXT, text, True)
    ]


@pytest.fixture(scope="module")
def tickers_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose clients may start the hidden `ticker` kind, many at once,
    served with 4 KB send buffers."""
    logs: Path = tmp_path_factory.mktemp("direct-writes")
    env = {"START_HIDDEN_KINDS": "1", "MAX_ACTIVE_TASKS": "1000"}
    stack = Stack(logs, worker_args=("--pool", "threads", "-c", "60"), env_extra=env)
    stack.web_args = (sys.executable, "-m", "tests.small_buffers_web")
    with stack:
        yield stack


def test_a_browser_offer_of_compression_is_declined(tickers_stack: Stack) -> None:
    # As Chromium offers it. Accepted, each watcher would cost a compressor
    # and a compression of every push.
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    ws = websocket.create_connection(
        tickers_stack.base_url.replace("http://", "ws://")
        + "/socket.io/?EIO=4&transport=websocket",
        header=[offer],
        timeout=10,
    )
    try:
        assert "sec-websocket-extensions" not in {k.lower() for k in ws.getheaders()}
        assert ws.recv().startswith("0")
    finally:
        ws.close()


def test_a_watcher_that_stops_reading_gets_every_push_whole_and_in_order(
    tickers_stack: Stack,
) -> None:
    base = tickers_stack.base_url
    cookie = identity_cookie(base)
    owner = ProgressClient(base, cookie)
    # A receive buffer of 4 KB: the server's send buffer fills while the
    # watcher does not read, and its writes are taken in part.
    ws = websocket.create_connection(
        base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
        header=[f"Cookie: {cookie}"],
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
        timeout=30,
    )
    try:
        assert ws.recv().startswith("0")
        ws.send("40/progress,")
        assert ws.recv().startswith("40/progress,")
        ids = [owner.start("ticker", updates=40, rate=10)["task_id"] for _ in range(TICKERS)]
        for n, task_id in enumerate(ids, 1):
            ws.send(f'42/progress,{n}["subscribe",{{"task_id":"{task_id}"}}]')
        seqs: dict[str, list[int]] = {task_id: [] for task_id in ids}
        ended: set[str] = set()
        acks = received = 0
        while len(ended) < TICKERS:
            received += 1
            if received % 100 == 0:
                time.sleep(0.3)  # not reading, while about 500 pushes a second are sent
            text = ws.recv()
            if text == "2":
                ws.send("3")
            elif text.startswith("43/progress,"):
                acks += 1
            else:
                assert text.startswith('42/progress,["progress",'), text[:200]
                snapshot = json.loads(text[len("42/progress,") :])[1]
                seqs[snapshot["task_id"]].append(snapshot["seq"])
                if snapshot["state"] == "succeeded":
                    ended.add(snapshot["task_id"])
    finally:
        ws.close()
        owner.close()
    assert acks == TICKERS
    for task_id, seen in seqs.items():
        assert seen == list(range(seen[0], seen[-1] + 1)), (task_id, seen)
