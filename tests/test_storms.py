"""Storms: hundreds of connections asking at the same moment are all answered
with the true state, by a web process with a handful of Redis connections."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.stack import (
    ProgressClient,
    RawSocketIO,
    Stack,
    error_code,
    extra_web,
    identity_cookie,
)

STORM = 300


@contextmanager
def slow_link(port: int, delay: float) -> Iterator[int]:
    """A TCP relay to 127.0.0.1:`port` that holds every chunk `delay` seconds
    on its way, either way: a healthy Redis across a network. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", port))
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=ends, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopped.set()
        listener.close()


def test_a_storm_of_subscribes_is_answered_in_full_by_a_small_pool(
    stack_env: dict[str, str], logs_dir: Path, web: str, redis_url: str
) -> None:
    cookie = identity_cookie(web)
    owner = ProgressClient(web, cookie)
    task = owner.start("simulate", duration=30, seed=1)
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    try:
        # Two Redis connections, each round trip 40 ms: one read per subscribe
        # would keep the last of them waiting for a connection for seconds.
        with slow_link(redis_port, 0.02) as port:
            env = {
                **stack_env,
                "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "REDIS_MAX_CONNECTIONS": "2",
            }
            with extra_web(env, logs_dir, "web-small-pool") as base:
                stranger = RawSocketIO(base, identity_cookie(web))
                clients = [RawSocketIO(base, cookie) for _ in range(STORM)]
                try:
                    before = owner.call("subscribe", {"task_id": task["task_id"]})["task"]
                    subscribe = json.dumps(["subscribe", {"task_id": task["task_id"]}])
                    # Every subscribe on the wire before the first answer is read.
                    for client in [*clients, stranger]:
                        client.ws.settimeout(60)
                        client.send(subscribe)
                    answers = [json.loads(client.answer(1)) for client in clients]
                    refused = json.loads(stranger.answer(1))
                finally:
                    for client in [*clients, stranger]:
                        client.close()
    finally:
        owner.call("cancel", {"task_id": task["task_id"]})
        owner.close()
    refusals = [error_code(a[0]) for a in answers if not a[0].get("ok")]
    assert refusals == []
    seqs = [a[0]["task"]["seq"] for a in answers if a[0]["task"]["task_id"] == task["task_id"]]
    assert len(seqs) == STORM and min(seqs) >= before["seq"]
    # The one stranger in the storm learns nothing: the task is not found.
    assert error_code(refused[0]) == "not_found"


RECONNECTS = 300


def waiting_to_be_accepted(port: int) -> int:
    """Connections the kernel holds for the listener on `port`, accepted by
    no one yet (its Recv-Q)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[1])


def settled(read: Callable[[], int], checks: int = 10) -> int:
    """What `read` gives once two reads half a second apart agree."""
    last = read()
    for _ in range(checks):
        time.sleep(0.5)
        now = read()
        if now == last:
            break
        last = now
    return last


def test_a_reconnect_storm_waits_to_be_accepted_rather_than_being_dropped(
    stack: Stack, redis_url: str
) -> None:
    """After a restart every page reconnects at once, while the web process is
    busy: each connection waits in the listen queue instead of its SYN being
    dropped (which costs the client seconds of TCP retransmission)."""
    web = stack.start_web("web-backlog")
    port = stack.ports["web-backlog"]
    sockets: list[socket.socket] = []
    os.kill(web.pid, signal.SIGSTOP)  # busy: accepting nothing
    try:
        for _ in range(RECONNECTS):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sockets.append(s)
        # On loopback each connect completes in the kernel at once, or its SYN
        # is dropped because the queue is full: read the queue once it is still.
        queued = settled(lambda: waiting_to_be_accepted(port))
        assert queued == RECONNECTS
    finally:
        os.kill(web.pid, signal.SIGCONT)
        for s in sockets:
            s.close()
        web.stop()


def test_an_idle_http_connection_is_closed_so_it_holds_no_place(web: str) -> None:
    """A page's polling connection stays open after its upgrade to websocket,
    as long as the browser keeps idle connections: the web process closes it,
    or after a restart such connections would fill its `max_connections`."""
    host, port = web.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += conn.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
        # Then nothing more is asked: the server ends the connection (an
        # empty read), well before this socket's own 30 s timeout.
        while conn.recv(65536):
            pass
