"""One task pings every Engine.IO connection: each is pinged one ping interval
after it was scheduled, in order, as engineio's own task per connection would."""

from __future__ import annotations

import threading
from typing import Any

import engineio
from engineio import packet
from engineio.socket import Socket

from progressbar.web.pings import Pinger, share_pings
from tests.clock import Clock


class Server:
    """What the pinger uses of an engineio.Server; its sleep moves the clock."""

    ping_interval = 25

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds


class Connection:
    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.closing = self.closed = False
        self.last_ping: float | None = None
        self.sent: list[Any] = []

    def send(self, pkt: packet.Packet) -> None:
        self.sent.append(pkt.packet_type)


def pinger_at(clock: Clock) -> tuple[Pinger, Server]:
    server = Server(clock)
    pinger = Pinger(server, clock)
    pinger.task = "running"  # the test drives its steps
    return pinger, server


def test_each_connection_is_pinged_one_interval_after_it_was_scheduled() -> None:
    clock = Clock()
    pinger, server = pinger_at(clock)
    a, b = Connection("a"), Connection("b")
    pinger.schedule(a)  # type: ignore[arg-type]
    clock.now += 10
    pinger.schedule(b)  # type: ignore[arg-type]
    pinged_at = {}
    while pinger.due:
        pinger.step()
        for c in (a, b):
            if c.sent and c.sid not in pinged_at:
                pinged_at[c.sid] = clock.now
    assert pinged_at == {"a": 1025.0, "b": 1035.0}
    assert a.sent == b.sent == [packet.PING]
    assert a.last_ping is not None


def test_a_closed_connection_is_not_pinged_and_the_others_still_are() -> None:
    clock = Clock()
    pinger, _ = pinger_at(clock)
    gone, here = Connection("gone"), Connection("here")
    pinger.schedule(gone)  # type: ignore[arg-type]
    pinger.schedule(here)  # type: ignore[arg-type]
    gone.closed = True
    while pinger.due:
        pinger.step()
    assert (gone.sent, here.sent) == ([], [packet.PING])


def test_a_failing_ping_does_not_stop_the_others() -> None:
    clock = Clock()
    pinger, _ = pinger_at(clock)
    broken, fine = Connection("broken"), Connection("fine")
    broken.send = lambda pkt: 1 / 0  # type: ignore[method-assign]
    pinger.schedule(broken)  # type: ignore[arg-type]
    pinger.schedule(fine)  # type: ignore[arg-type]
    while pinger.due:
        pinger.step()
    assert fine.sent == [packet.PING]


def test_with_nobody_to_ping_it_sleeps_a_whole_interval() -> None:
    clock = Clock()
    pinger, server = pinger_at(clock)
    pinger.step()
    assert server.slept == [25]


def test_engineio_ping_tasks_join_the_shared_schedule_and_other_tasks_still_start() -> None:
    eio = engineio.Server(async_mode="threading")
    pinger = share_pings(eio)
    threads_before = threading.active_count()
    sockets = [Socket(eio, f"sid{i}") for i in range(50)]
    for s in sockets:
        s.schedule_ping()  # what engineio does on connect and on every pong
    # Fifty connections, one task: the pinger's.
    assert [s for _, s in pinger.due] == sockets
    assert threading.active_count() == threads_before + 1
    done = threading.Event()
    task = eio.start_background_task(done.set)
    task.join()
    assert done.is_set()
