"""The /progress namespace handles a few events at once; the rest wait their
turn rather than all running together (so a push arriving during a burst of
events waits behind a few, not behind the whole burst)."""

from __future__ import annotations

import threading
from typing import Any

from progressbar.web.namespace import HANDLED_AT_ONCE, ProgressNamespace


class CountingSocketIO:
    """Stands for Flask-SocketIO's server: each event is held until released,
    counting how many are handled at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = self.handled = 0
        self.release = threading.Event()

    def _handle_event(self, handler: Any, event: str, namespace: str, *args: Any) -> Any:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.release.wait(10)
        with self.lock:
            self.now -= 1
            self.handled += 1
        return {"ok": True}


def test_a_burst_of_events_is_handled_a_few_at_a_time_and_every_one_answered() -> None:
    namespace = ProgressNamespace("/progress")
    socketio = CountingSocketIO()
    namespace.socketio = socketio  # type: ignore[assignment]
    answers: list[Any] = []
    burst = [
        threading.Thread(target=lambda: answers.append(namespace.trigger_event("list", None)))
        for _ in range(HANDLED_AT_ONCE * 4)
    ]
    for thread in burst:
        thread.start()
    waited = threading.Event()
    for _ in range(100):  # until as many as may are being handled
        if socketio.now == HANDLED_AT_ONCE:
            break
        waited.wait(0.02)
    socketio.release.set()
    for thread in burst:
        thread.join(10)
    assert socketio.most == HANDLED_AT_ONCE
    assert socketio.handled == len(burst) and answers == [{"ok": True}] * len(burst)
