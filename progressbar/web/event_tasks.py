"""The events of one Socket.IO namespace handled by a few long-lived tasks,
rather than by a task started for each.

python-socketio starts a task (a green thread, or a thread under `flask run`)
for every event it receives: under churn, hundreds a second, each with its
own frame stack to allocate and free (16 KB mapped and unmapped under
Python 3.11) and its switches in and out. Here the namespace's events are
queued, in the order they came, and a few tasks (as many as the namespace
handles at once) take them one after the other: a burst waits its turn, in
order. They are started at the first event and kept.

Only python-socketio's event handling is taken over, only for the namespace
given, and only when it is started the way this knows (its
`_handle_event_internal`, with the arguments it passes); anything else is
started as before.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from socketio import Server

log = logging.getLogger(__name__)

# What python-socketio starts for an event, and how many arguments it passes:
# (server, sid, eio_sid, data, namespace, ack id).
HANDLE_EVENT = Server._handle_event_internal
HANDLE_EVENT_ARGS = 6


class EventTasks:
    """Stands in for `server.start_background_task`: an event of `namespace`
    is queued for the handlers; anything else is started by `start`."""

    def __init__(self, server: Any, namespace: str, handlers: int) -> None:
        self.server = server
        self.namespace = namespace
        self.handlers = handlers
        self.start: Callable[..., Any] = server.start_background_task
        self.queue: Any = None
        # Under threads, two first events could each make a queue.
        self._starting = threading.Lock()

    def __call__(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            getattr(target, "__func__", None) is HANDLE_EVENT
            and len(args) == HANDLE_EVENT_ARGS
            and not kwargs
            and args[4] == self.namespace
        ):
            if self.queue is None:
                self._start_handlers()
            self.queue.put(partial(target, *args))
            return None
        return self.start(target, *args, **kwargs)

    def _start_handlers(self) -> None:
        # Made at the first event, in the server's async mode, once its green
        # threads (if any) have patched what they patch.
        with self._starting:
            if self.queue is not None:
                return
            queue = self.server.eio.create_queue()
            for _ in range(self.handlers):
                self.start(self._handle_forever, queue)
            self.queue = queue

    def _handle_forever(self, queue: Any) -> None:
        while True:
            job = queue.get()
            try:
                job()
            except BaseException as exc:  # a Timeout too: the handler goes on
                if not_to_survive(exc):
                    raise
                # python-socketio's own task would have ended here; this one
                # goes on to the next event.
                log.exception("a Socket.IO event failed")


def not_to_survive(exc: BaseException) -> bool:
    """Whether a long-lived task should end with `exc`: the process exiting,
    or the task itself being killed; not a Timeout or an error of one job."""
    if isinstance(exc, (Exception, SystemExit, KeyboardInterrupt)):
        return isinstance(exc, (SystemExit, KeyboardInterrupt))
    greenlet = sys.modules.get("greenlet")
    return greenlet is not None and isinstance(exc, greenlet.GreenletExit)


def handle_events_in_tasks(server: Any, namespace: str, handlers: int) -> EventTasks:
    """Have `server` (python-socketio's) hand `namespace`'s events to
    `handlers` long-lived tasks."""
    tasks = EventTasks(server, namespace, handlers)
    server.start_background_task = tasks
    return tasks
