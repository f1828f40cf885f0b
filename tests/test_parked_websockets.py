"""Open websockets are parked between messages, under `python app.py`
(eventlet's hub) and under the extension's gunicorn configuration (gevent's
loop): they are served as before, however a client arrives (websocket or
polling upgraded), however it leaves (close frame, Engine.IO or Socket.IO
goodbye, dropped TCP connection, or gone silent), however its messages come
(several at once, one in pieces); and WEB_MAX_CONNECTIONS (gunicorn's
worker_connections) still bounds the connections served at once."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import socketio
import websocket

from progressbar.web.parked_readers import READERS
from progressbar.web.parked_websockets import _read_frame, _whole_frame
from tests.stack import (
    ProgressClient,
    RawSocketIO,
    Stack,
    hearing,
    identity_cookie,
    wait_until,
)

# The stack's WEB_MAX_CONNECTIONS: room for a watcher and READERS + 1 more.
LIMIT = 6


SERVERS = ["eventlet", "gevent"]


def web_args(server: str) -> tuple[str, ...]:
    """The web process: the demo's `python app.py`, or the app under the
    extension's gunicorn configuration with room for LIMIT connections."""
    if server == "eventlet":
        return (sys.executable, "app.py")
    gunicorn = (sys.executable, "-m", "gunicorn", "-c", "python:progressbar.web.gunicorn")
    return (*gunicorn, "--worker-connections", str(LIMIT), "app:app")


@pytest.fixture(scope="module", params=SERVERS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp(f"parked-{request.param}")
    env = {"WEB_MAX_CONNECTIONS": str(LIMIT), "START_HIDDEN_KINDS": "1"}
    with Stack(logs, env_extra=env, web_args=web_args(request.param)) as s:
        yield s


def long_task(stack: Stack, cookie: str) -> str:
    """A task of a minute that reports 10 times a second, watched by nobody
    once started."""
    owner = ProgressClient(stack.base_url, cookie)
    try:
        task_id = owner.start("ticker", updates=600, rate=10)["task_id"]
        owner.wait_for(task_id, lambda s: s["state"] == "running")
    finally:
        owner.close()
    wait_until(lambda: hearing(stack, task_id) == 0, 5, "the owner gone")
    return task_id


def watch(raw: RawSocketIO, task_id: str) -> None:
    answer = raw.call(f'["subscribe",{{"task_id":"{task_id}"}}]')
    assert answer.startswith('[{"ok":true'), answer
    assert f'"task_id":"{task_id}"' in raw.next_push()


def close_frame(raw: RawSocketIO) -> None:
    raw.ws.close()


def engineio_goodbye(raw: RawSocketIO) -> None:
    raw.ws.send("1")


def socketio_goodbye(raw: RawSocketIO) -> None:
    raw.ws.send("41/progress,")


def dropped(raw: RawSocketIO) -> None:
    # No closing handshake: the TCP connection just ends.
    raw.ws.sock.shutdown(socket.SHUT_RDWR)
    raw.ws.sock.close()


@pytest.mark.parametrize("leave", [close_frame, engineio_goodbye, socketio_goodbye, dropped])
def test_a_watcher_that_leaves_is_let_go_however_it_leaves(stack: Stack, leave: object) -> None:
    cookie = identity_cookie(stack.base_url)
    task_id = long_task(stack, cookie)
    # Several rounds: the sockets' numbers are used again by the next ones.
    for _ in range(3):
        raw = RawSocketIO(stack.base_url, cookie)
        try:
            watch(raw, task_id)
            assert hearing(stack, task_id) == 1
            leave(raw)  # type: ignore[operator]
            wait_until(lambda: hearing(stack, task_id) == 0, 5, "the watcher let go")
        finally:
            raw.ws.close()
    # Those that come next are served.
    raw = RawSocketIO(stack.base_url, cookie)
    try:
        watch(raw, task_id)
    finally:
        raw.close()


def test_no_more_connections_than_the_limit_are_served_at_once(stack: Stack) -> None:
    cookie = identity_cookie(stack.base_url)
    task_id = long_task(stack, cookie)
    raws = [RawSocketIO(stack.base_url, cookie) for _ in range(LIMIT)]
    try:
        for raw in raws:
            watch(raw, task_id)
        # One more waits, parked websockets holding every place.
        more: list[RawSocketIO] = []
        waiting = threading.Thread(
            target=lambda: more.append(RawSocketIO(stack.base_url, cookie)), daemon=True
        )
        waiting.start()
        waiting.join(2)
        assert waiting.is_alive() and not more
        raws.pop().close()  # a place freed: served
        waiting.join(10)
        assert more, "served once a place was free"
        raws += more
        watch(more[0], task_id)
        for raw in raws:  # and the others still get every push
            assert f'"task_id":"{task_id}"' in raw.next_push()
    finally:
        for raw in raws:
            raw.close()
    wait_until(lambda: hearing(stack, task_id) == 0, 5, "every watcher let go")


def test_several_messages_in_one_segment_are_each_answered(stack: Stack) -> None:
    raw = RawSocketIO(stack.base_url, identity_cookie(stack.base_url))
    try:
        texts = [f'42/progress,{n}["subscribe",{{"task_id":"nope-{n}"}}]' for n in (1, 2, 3)]
        raw.ws.sock.sendall(
            b"".join(
                websocket.ABNF.create_frame(t, websocket.ABNF.OPCODE_TEXT).format() for t in texts
            )
        )
        for n in (1, 2, 3):
            assert '"code":"not_found"' in raw.answer(n)
    finally:
        raw.close()


def test_an_upgrade_whose_session_closed_meanwhile_leaves_the_server_serving(
    stack: Stack,
) -> None:
    base = stack.base_url
    opened = requests.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5).text
    sid = json.loads(opened[1:])["sid"]
    ws = websocket.create_connection(
        base.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}",
        timeout=5,
    )
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        # The session ends over polling while its websocket is being upgraded.
        polled = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        requests.post(polled, data="1", timeout=5)
        ws.send("5")
    finally:
        ws.close()
    # New connections, one of them on the websocket's old socket number.
    for _ in range(3):
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    cookie = identity_cookie(base)
    raw = RawSocketIO(base, cookie)
    try:
        watch(raw, long_task(stack, cookie))
    finally:
        raw.close()


def test_a_polling_page_upgraded_to_websocket_is_served_and_let_go(stack: Stack) -> None:
    cookie = identity_cookie(stack.base_url)
    task_id = long_task(stack, cookie)
    page = socketio.Client(reconnection=False)
    pushes: list[dict[str, object]] = []
    page.on("progress", pushes.append, namespace="/progress")
    page.connect(
        stack.base_url,
        namespaces=["/progress"],
        headers={"Cookie": cookie},
        transports=["polling", "websocket"],
        wait_timeout=10,
    )
    try:
        wait_until(lambda: page.transport() == "websocket", 10, "the upgrade to websocket")
        answer = page.call("subscribe", {"task_id": task_id}, namespace="/progress", timeout=10)
        assert answer["ok"], answer
        seq = answer["task"]["seq"]
        wait_until(lambda: any(p["seq"] > seq for p in pushes), 10, "a push after the answer")
    finally:
        page.disconnect()
    wait_until(lambda: hearing(stack, task_id) == 0, 5, "the page let go")


def test_a_message_that_comes_in_pieces_is_read_whole_and_others_meanwhile(
    stack: Stack,
) -> None:
    cookie = identity_cookie(stack.base_url)
    task_id = long_task(stack, cookie)
    slow, other = RawSocketIO(stack.base_url, cookie), RawSocketIO(stack.base_url, cookie)
    try:
        text = f'42/progress,1["subscribe",{{"task_id":"{task_id}"}}]'
        frame = websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()
        slow.ws.sock.sendall(frame[:5])  # the head and part of the mask
        watch(other, task_id)  # served while the rest has not come
        slow.ws.sock.sendall(frame[5:])
        assert slow.answer(1).startswith('[{"ok":true'), "the whole message, answered"
    finally:
        slow.close()
        other.close()


@pytest.fixture(scope="module", params=SERVERS)
def quick_pings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs: Path = tmp_path_factory.mktemp(f"parked-pings-{request.param}")
    env = {"PING_INTERVAL": "1", "PING_TIMEOUT": "1", "START_HIDDEN_KINDS": "1"}
    with Stack(logs, env_extra=env, web_args=web_args(request.param)) as s:
        yield s


def test_a_watcher_gone_silent_is_let_go_and_told(quick_pings: Stack) -> None:
    cookie = identity_cookie(quick_pings.base_url)
    task_id = long_task(quick_pings, cookie)
    for _ in range(2):  # and the next one on the same socket number too
        raw = RawSocketIO(quick_pings.base_url, cookie)
        try:
            watch(raw, task_id)
            # Reads nothing, answers no ping: the server closes the connection.
            wait_until(lambda: hearing(quick_pings, task_id) == 0, 10, "the silent one let go")
            assert told_goodbye(raw)
        finally:
            raw.ws.close()


def told_goodbye(raw: RawSocketIO) -> bool:
    """Whether what the client reads after pings and pushes ends with the
    websocket closed."""
    try:
        while True:
            text = raw.ws.recv()
            if text == "":  # the closing frame
                return True
            assert text == "2" or text.startswith("42/progress,"), text
    except websocket.WebSocketConnectionClosedException:
        return True


def test_only_a_whole_message_counts_as_read_without_waiting() -> None:
    # What decides whether a message is read by the shared readers (whole,
    # never waits) or by a green thread of its own (may wait for the rest).
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    sock = SimpleNamespace(fd=theirs)

    def frame(data: str, opcode: int = websocket.ABNF.OPCODE_TEXT, fin: int = 1) -> bytes:
        return websocket.ABNF.create_frame(data, opcode, fin).format()

    def waiting(data: bytes) -> int:
        ours.sendall(data)
        whole = _whole_frame(sock)
        try:
            while theirs.recv(1 << 20):
                pass  # read it all, for the next case
        except BlockingIOError:
            pass
        return whole

    try:
        text = frame('42/progress,1["list",{}]')
        assert waiting(text) == len(text)
        assert not waiting(text[:5])  # the rest has not come
        assert waiting(text + text[:3]) == len(text)  # one whole, and part of the next
        long = frame("x" * 70_000)  # a 64-bit length, past what is peeked
        assert waiting(long) == len(long) and not waiting(long[:-1])
        assert not waiting(frame("ping", websocket.ABNF.OPCODE_PING))  # control frame
        assert not waiting(frame("par", fin=0))  # first part of a fragmented message
        unmasked = websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_TEXT, 0, "hi").format()
        assert not waiting(unmasked)  # eventlet's reader refuses it
        assert not waiting(b"")  # nothing at all
    finally:
        ours.close()
        theirs.close()


def test_a_whole_frame_is_read_at_once_and_unmasked() -> None:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    sock = SimpleNamespace(fd=theirs)

    def read(frame: websocket.ABNF) -> str | bytes:
        data = frame.format()
        ours.sendall(data + b"next")
        assert _whole_frame(sock) == len(data)
        return _read_frame(SimpleNamespace(socket=sock), len(data))

    try:
        texts = ("", "4", '42/progress,7["subscribe",{"task_id":"é✓"}]', "y" * 300, "z" * 70_000)
        for text in texts:  # lengths of 7, 16 and 64 bits, the last past what is peeked
            assert read(websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT)) == text
            assert theirs.recv(4) == b"next"  # the next frame's bytes are left where they were
        binary = bytes(range(256)) * 3
        assert read(websocket.ABNF.create_frame(binary, websocket.ABNF.OPCODE_BINARY)) == binary
        assert theirs.recv(4) == b"next"
        with pytest.raises(ValueError):
            read(websocket.ABNF.create_frame(b"\xff\xfe", websocket.ABNF.OPCODE_TEXT))
    finally:
        ours.close()
        theirs.close()


def test_a_frame_read_in_the_hubs_turn_never_waits_for_a_missing_part() -> None:
    # The hub reads a frame the peek found whole; should the socket hold less
    # after all, it keeps what came for a reader, which reads the rest.
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    ws = SimpleNamespace(socket=SimpleNamespace(fd=theirs))
    text = '42/progress,3["unsubscribe",{"task_id":"abc"}]'
    data = websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()
    try:
        ours.sendall(data[:9])
        first = _read_frame(ws, len(data), wait=False)
        assert first == bytearray(data[:9])
        ours.sendall(data[9:])
        assert _read_frame(ws, len(data), first=bytes(first)) == text
    finally:
        ours.close()
        theirs.close()


def test_messages_that_come_with_the_upgrade_are_answered_at_once(stack: Stack) -> None:
    # A page upgrading from polling sends what it buffered right after the
    # upgrade packet, often in the same segment: read then, not once the
    # client next says something (its pong, up to a ping interval later).
    base, cookie = stack.base_url, identity_cookie(stack.base_url)
    polling = requests.Session()
    polled = f"{base}/socket.io/?EIO=4&transport=polling"
    sid = json.loads(polling.get(polled, headers={"Cookie": cookie}, timeout=5).text[1:])["sid"]
    url = base.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    ws = websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=5)
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        polling.get(f"{polled}&sid={sid}", headers={"Cookie": cookie}, timeout=5)  # its NOOP
        texts = ["5", "40/progress,"]
        ws.sock.sendall(b"".join(websocket.ABNF.create_frame(t, 1).format() for t in texts))
        answer = ws.recv()  # within the 5 s timeout; the next ping is 25 s away
        while answer in ("2", "6"):
            answer = ws.recv()
        assert answer.startswith("40/progress,"), answer
    finally:
        ws.close()


def test_a_client_that_pings_without_reading_holds_up_nobody(stack: Stack) -> None:
    # Its pongs wait for it alone, and nothing more is read from it meanwhile.
    cookie = identity_cookie(stack.base_url)
    other = RawSocketIO(stack.base_url, cookie)
    url = stack.base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    small = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
    pingers = [
        websocket.create_connection(url, header=[f"Cookie: {cookie}"], timeout=5, sockopt=small)
        for _ in range(READERS_AND_ONE)
    ]
    done = threading.Event()

    def ping_forever(ws: websocket.WebSocket) -> None:
        burst = websocket.ABNF.create_frame(b"x" * 125, websocket.ABNF.OPCODE_PING).format() * 500
        try:
            while not done.is_set():
                ws.sock.sendall(burst)
        except OSError:
            pass  # let go by the server, or stopped

    threads = [threading.Thread(target=ping_forever, args=(ws,), daemon=True) for ws in pingers]
    try:
        for thread in threads:
            thread.start()
        time.sleep(3)  # the buffers between them and the server full
        for _ in range(3):  # answered within the client's 10 s, every time
            assert '"ok":true' in other.call('["list",{}]')
    finally:
        done.set()
        for ws in pingers:
            ws.sock.close()
        other.close()


# One more than the readers every parked websocket shares.
READERS_AND_ONE = READERS + 1
