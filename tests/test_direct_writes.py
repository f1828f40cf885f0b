"""A websocket's packets are written by whoever sends them, in the order sent,
never interleaved; a client that takes nothing gets a task of its own, and the
sender goes on. Over engineio's own websocket handler, no writer task per
connection is started."""

from __future__ import annotations

import queue
import threading
from typing import Any

import engineio
from engineio import packet
from engineio.socket import Socket

from progressbar.web.direct_writes import Writer, take_over_writers, write_directly


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
