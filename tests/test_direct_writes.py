"""A websocket's packets are written by whoever sends them, in the order sent,
never interleaved; a client that takes nothing gets a task of its own, and the
sender goes on. Over engineio's own websocket handler, no writer task per
connection is started."""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import engineio
import pytest
import websocket
from engineio import packet
from engineio.socket import Socket

from progressbar.web.direct_writes import FRAME, Writer, take_over_writers, write_directly
from tests.stack import ProgressClient, Stack, identity_cookie

# Tickers watched by the one connection that stops reading now and then.
TICKERS = 50


class WebSocket:
    """What a Writer uses of a websocket; `during_send` runs as another green
    thread would while a send waits for the socket."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False
        self.sending = False
        self.interleaved = False
        self.during_send: Any = None
        self.fail = False

    def send(self, data: str) -> None:
        if self.fail:
            raise BrokenPipeError
        self.interleaved |= self.sending
        self.sending = True
        hook, self.during_send = self.during_send, None
        if hook is not None:
            hook()
        self.sent.append(data)
        self.sending = False

    def close(self) -> None:
        self.closed = True


class Tasks:
    """A spawn that runs nothing until told."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def __call__(self, target: Any) -> Any:
        self.started.append(target)
        return self

    def run_all(self) -> None:
        while self.started:
            self.started.pop(0)()

    def join(self) -> None:
        self.run_all()


def message(text: str) -> packet.Packet:
    return packet.Packet(packet.MESSAGE, data=text)


def writer_of(ws: WebSocket, room: list[bool] | None = None) -> tuple[Writer, Tasks]:
    room = room if room is not None else [True]
    tasks = Tasks()
    return Writer(ws, lambda: room[0], tasks), tasks


def test_packets_are_written_by_the_sender_in_the_order_sent() -> None:
    ws = WebSocket()
    writer, tasks = writer_of(ws)
    for text in ("a", "b", "c"):
        writer.put(message(text))
    assert ws.sent == ["4a", "4b", "4c"]
    assert tasks.started == []


def test_a_packet_sent_while_another_is_written_follows_it_whole() -> None:
    ws = WebSocket()
    writer, _ = writer_of(ws)
    ws.during_send = lambda: writer.put(message("second"))
    writer.put(message("first"))
    assert ws.sent == ["4first", "4second"]
    assert not ws.interleaved


def test_a_client_that_takes_nothing_gets_a_task_and_the_sender_goes_on() -> None:
    ws = WebSocket()
    room = [False]
    writer, tasks = writer_of(ws, room)
    writer.put(message("a"))
    writer.put(message("b"))
    assert ws.sent == []
    assert len(tasks.started) == 1
    room[0] = True
    tasks.run_all()
    assert ws.sent == ["4a", "4b"]
    writer.put(message("c"))
    assert ws.sent == ["4a", "4b", "4c"]
    assert tasks.started == []


def test_no_more_closes_the_websocket_once_what_waits_is_written() -> None:
    ws = WebSocket()
    room = [False]
    writer, tasks = writer_of(ws, room)
    writer.put(message("last"))
    writer.put(None)
    assert not ws.closed
    room[0] = True
    writer.join()
    assert ws.sent == ["4last"]
    assert ws.closed
    writer.put(message("too late"))
    assert ws.sent == ["4last"]


def test_a_websocket_that_cannot_be_written_to_is_closed_and_the_sender_goes_on() -> None:
    ws = WebSocket()
    writer, _ = writer_of(ws)
    ws.fail = True
    writer.put(message("a"))
    assert ws.closed
    ws.fail = False
    writer.put(message("b"))
    assert ws.sent == []


class Stopped(BaseException):
    """What a green thread killed or timed out mid-send sees."""


def test_a_sender_stopped_mid_write_closes_the_websocket_it_half_wrote() -> None:
    ws = WebSocket()
    writer, _ = writer_of(ws)

    def stop() -> None:
        raise Stopped

    ws.during_send = stop
    try:
        writer.put(message("half"))
    except Stopped:
        pass
    assert ws.closed
    writer.put(message("after"))
    assert ws.sent == []


class EngineWebSocket(WebSocket):
    """A websocket as engineio's handler sees it: the client's packets come from `incoming`."""

    def __init__(self) -> None:
        super().__init__()
        self.incoming: queue.Queue[str | None] = queue.Queue()
        self.socket = self  # where engineio sets its timeout, and the fd is found

    def wait(self) -> str | None:
        return self.incoming.get(timeout=10)

    def settimeout(self, seconds: float) -> None:
        pass

    def fileno(self) -> int:
        return 0


def test_engineio_websockets_are_written_by_their_senders_without_a_writer_task() -> None:
    eio = engineio.Server(async_mode="threading")
    take_over_writers(eio, lambda fd: True)
    socket = Socket(eio, "sid")
    socket.send(packet.Packet(packet.OPEN, {"sid": "sid"}))
    ws = EngineWebSocket()
    threads_before = threading.active_count()
    handler = threading.Thread(target=socket._websocket_handler, args=(ws,))
    handler.start()
    try:
        # The handler's own thread is the only one more: no writer.
        _until(lambda: ws.sent == ['0{"sid":"sid"}'])
        assert threading.active_count() == threads_before + 1
        socket.send(message("pushed"))
        assert ws.sent[-1] == "4pushed"  # written before send returned
        ws.incoming.put("3")  # a pong, read as before
    finally:
        ws.incoming.put(None)  # the client goes
        handler.join(10)
    assert not handler.is_alive()
    assert ws.closed and socket.closed


def test_under_threads_engineio_keeps_its_own_writer() -> None:
    # A Writer relies on green threads not switching between its checks.
    eio = engineio.Server(async_mode="threading")
    start = eio.start_background_task
    write_directly(eio)
    assert eio.start_background_task == start


def _until(condition: Any) -> None:
    done = threading.Event()
    for _ in range(200):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("never happened")


@pytest.fixture(scope="module")
def tickers_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose clients may start the hidden `ticker` kind, many at once,
    served with 4 KB send buffers: a watcher that stops reading soon has the
    writes to it taken only in part."""
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


def _eventlet() -> tuple[Any, Any, Any]:
    """eventlet, its green socket and its RFC 6455 websocket, imported
    without its warning of its own deprecation (the suite's warnings fail)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet
        from eventlet.greenio import GreenSocket
        from eventlet.websocket import RFC6455WebSocket
    return eventlet, GreenSocket, RFC6455WebSocket


def test_eventlet_frames_the_socket_takes_in_part_are_finished_whole_and_in_order() -> None:
    # A real eventlet websocket over a socket pair with small buffers: the
    # sender writes each frame straight to the socket, as far as it takes it;
    # the rest of a frame is finished by a task, and a frame eventlet sends
    # itself meanwhile (a pong) waits for it rather than cutting into it.
    eventlet, GreenSocket, RFC6455WebSocket = _eventlet()

    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = RFC6455WebSocket(GreenSocket(ours), {}, version=13)
    client = RFC6455WebSocket(GreenSocket(theirs), {}, version=13, client=True)
    tasks: list[Any] = []
    writer = Writer(ws, lambda: True, lambda work: tasks.append(eventlet.spawn(work)) or tasks[-1])
    assert writer.frames is not None
    texts = [f"{n:03d}:" + "x" * 3000 for n in range(60)]
    for text in texts:
        writer.put(message(text))
    # The socket took some; the sender did not wait for the rest.
    assert len(tasks) == 1 and writer.writing
    pong = eventlet.spawn(ws.send, "pong", control_code=0xA)
    received = [client.wait() for _ in texts]
    pong.wait()
    tasks[0].wait()
    assert received == ["4" + text for text in texts]
    assert not writer.writing and writer.frames.rest is None
    writer.put(message("after"))  # written at once again
    assert client.wait() == "4after" and len(tasks) == 1
    ours.close()
    theirs.close()


def test_a_packet_sent_to_many_eventlet_websockets_is_framed_once() -> None:
    eventlet, GreenSocket, RFC6455WebSocket = _eventlet()

    class Counted(RFC6455WebSocket):  # type: ignore[misc]
        packed = 0

        def _pack_message(self, *args: Any, **kwargs: Any) -> bytes:
            Counted.packed += 1
            return super()._pack_message(*args, **kwargs)  # type: ignore[no-any-return]

    pairs = [socket.socketpair() for _ in range(3)]
    try:
        websockets = [Counted(GreenSocket(ours), {}, version=13) for ours, _ in pairs]
        writers = [Writer(ws, lambda: True, eventlet.spawn) for ws in websockets]
        push = message("a push to a room")
        for writer in writers:
            writer.put(push)
        for _, theirs in pairs:
            client = RFC6455WebSocket(GreenSocket(theirs), {}, version=13, client=True)
            assert client.wait() == "4a push to a room"
        assert Counted.packed == 1  # framed once, for all three
        assert getattr(push, FRAME).endswith(b"4a push to a room")
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
