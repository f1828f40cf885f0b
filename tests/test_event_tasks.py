"""The /progress namespace's events are handled by a few long-lived tasks, in
the order they came; every other task the server starts is started as before,
and a handler whose event fails goes on to the next event."""

from __future__ import annotations

import queue
import threading
from typing import Any

from socketio import Server, packet

from progressbar.web.event_tasks import handle_events_in_tasks
from progressbar.web.namespace import HANDLED_AT_ONCE as HANDLERS
from tests.stack import wait_until


class CountingServer:
    """What python-socketio's `_handle_event_internal` and EventTasks use of
    its server, under threads; it counts the tasks started, the events
    handled and the acks sent."""

    not_handled = object()
    packet_class = packet.Packet

    def __init__(self) -> None:
        self.eio = self
        self.started: list[Any] = []
        self.handled: list[str] = []
        self.acks: list[int] = []
        self.lock = threading.Lock()

    def create_queue(self) -> queue.Queue[Any]:
        return queue.Queue()

    def start_background_task(self, target: Any, *args: Any) -> threading.Thread:
        self.started.append(target)
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def _trigger_event(self, event: str, namespace: str, sid: str, *args: Any) -> Any:
        if event == "boom":
            raise RuntimeError("a handler's own error")
        with self.lock:
            self.handled.append(sid)
        return {"ok": True}

    def _send_packet(self, eio_sid: str, pkt: packet.Packet) -> None:
        with self.lock:
            self.acks.append(pkt.id)

    def event(self, n: int, name: str = "list", namespace: str = "/progress") -> None:
        # As python-socketio's `_handle_event` starts it: its own method, bound.
        handle = Server._handle_event_internal.__get__(self)  # type: ignore[attr-defined]
        self.start_background_task(handle, self, f"sid-{n}", f"eio-{n}", [name], namespace, n)


def test_events_go_to_a_few_long_lived_handlers_and_each_is_answered() -> None:
    server = CountingServer()
    handle_events_in_tasks(server, "/progress", HANDLERS)
    for n in range(200):
        server.event(n)
    wait_until(lambda: len(server.acks) == 200, 5, "every event answered", 0.01)
    # 16 handlers started once, not a task for each of the 200 events.
    assert [t.__name__ for t in server.started] == ["_handle_forever"] * HANDLERS
    assert sorted(server.acks) == list(range(200))
    # Another namespace's event, and any other task, start as before.
    server.event(1000, namespace="/elsewhere")
    wait_until(lambda: 1000 in server.acks, 5, "the other namespace's event", 0.01)
    assert server.started[-1].__name__ == "_handle_event_internal"


def test_a_handler_goes_on_after_an_event_fails() -> None:
    server = CountingServer()
    handle_events_in_tasks(server, "/progress", HANDLERS)
    for n in range(HANDLERS * 2):
        server.event(n, name="boom")
    server.event(999)
    wait_until(lambda: server.acks == [999], 5, "the event after the failures", 0.01)
    assert len(server.started) == HANDLERS
