"""The /progress namespace's dispatch, in process: events of a connection run
as the `Caller` its connect settled, a few at a time (a push arriving during
a burst of events waits behind a few, not behind the whole burst), and what
no handler takes is answered, never dropped."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask

from progressbar.web.namespace import (
    HANDLED_AT_ONCE,
    Answer,
    Caller,
    ProgressNamespace,
    answered,
)
from progressbar.web.payloads import RESERVED_MARK, UNREADABLE


class HeldNamespace(ProgressNamespace):
    """Its `list` is held until released, counting how many run at once."""

    def __init__(self) -> None:
        super().__init__("/progress")
        self.lock = threading.Lock()
        self.now = self.most = self.handled = 0
        self.release = threading.Event()
        self.callers["sid-1"] = Caller("sid-1", "ann", "192.0.2.1", Flask(__name__))

    @answered
    def on_list(self, caller: Caller, payload: Any) -> Answer:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.release.wait(10)
        with self.lock:
            self.now -= 1
            self.handled += 1
        return {"identity": caller.identity}


def test_a_burst_of_events_is_handled_a_few_at_a_time_and_every_one_answered() -> None:
    namespace = HeldNamespace()
    answers: list[Any] = []
    burst = [
        threading.Thread(target=lambda: answers.append(namespace.trigger_event("list", "sid-1")))
        for _ in range(HANDLED_AT_ONCE * 4)
    ]
    for thread in burst:
        thread.start()
    waited = threading.Event()
    for _ in range(100):  # until as many as may are being handled
        if namespace.now == HANDLED_AT_ONCE:
            break
        waited.wait(0.02)
    namespace.release.set()
    for thread in burst:
        thread.join(10)
    assert namespace.most == HANDLED_AT_ONCE
    assert namespace.handled == len(burst)
    assert answers == [{"ok": True, "identity": "ann"}] * len(burst)


def test_an_event_runs_in_the_app_context_of_its_connection() -> None:
    app = Flask("host")

    class Where(ProgressNamespace):
        @answered
        def on_list(self, caller: Caller, payload: Any) -> Answer:
            from flask import current_app, has_request_context

            return {"app": current_app.name, "request_context": has_request_context()}

    namespace = Where("/progress")
    namespace.callers["sid-1"] = Caller("sid-1", "ann", "192.0.2.1", app)
    answer = namespace.trigger_event("list", "sid-1", None)
    assert answer == {"ok": True, "app": "host", "request_context": False}


def error_of(answer: Any) -> tuple[str, str]:
    assert answer["ok"] is False, answer
    return answer["error"]["code"], answer["error"]["message"]


def test_what_no_handler_takes_is_answered_invalid() -> None:
    namespace = HeldNamespace()
    namespace.release.set()
    assert error_of(namespace.trigger_event("teleport", "sid-1", {})) == (
        "invalid",
        "unknown event 'teleport'",
    )
    code, _ = error_of(namespace.trigger_event(UNREADABLE, "sid-1"))
    assert code == "invalid"
    # A client's event named as the server's own, as the packet class marks it.
    assert error_of(namespace.trigger_event(RESERVED_MARK + "disconnect", "sid-1")) == (
        "invalid",
        "unknown event 'disconnect'",
    )
    # Methods that are not event handlers are not events.
    assert error_of(namespace.trigger_event("_join", "sid-1", "room"))[0] == "invalid"
    assert namespace.callers.keys() == {"sid-1"}


def test_two_payloads_are_invalid_and_an_unknown_connection_is_unauthorized() -> None:
    namespace = HeldNamespace()
    namespace.release.set()
    assert error_of(namespace.trigger_event("list", "sid-1", {}, {})) == (
        "invalid",
        "send one payload object",
    )
    assert error_of(namespace.trigger_event("list", "sid-gone", {}))[0] == "unauthorized"
