"""Messages a worker took and then forgot, put back in their queue.

When the broker connection drops (Redis restarted), Celery's consumer
reconnects and forgets the requests it had received but not started: their
delivery tags belonged to the old connection. Their messages stay aside in the
broker (kombu's Redis `unacked`) until the visibility timeout, an hour by
default. The worker's main process remembers the tracked requests it received
and, once its consumer has restarted, puts the forgotten ones back at the head
of their queue, so they run as soon as a slot is free.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from .. import logs

log = logging.getLogger(__name__)


class Held:
    """Tracked requests this worker received, with the consumer generation
    (its restart count) that received them."""

    def __init__(self) -> None:
        self._requests: dict[int, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def received(self, request: Any, generation: int) -> None:
        with self._lock:
            self._requests[id(request)] = (request, generation)

    def forgotten(self, generation: int, reserved: Any = ()) -> list[Any]:
        """Requests received before generation `generation` that never started
        nor were acknowledged: their consumer forgot them. Requests done with
        (started, acknowledged: finished, revoked, rejected) are dropped."""
        found = []
        with self._lock:
            for key, (request, received_in) in list(self._requests.items()):
                if request.acknowledged or request.time_start is not None:
                    del self._requests[key]
                elif received_in < generation and request not in reserved:
                    found.append(request)
        return found

    def drop(self, requests: list[Any]) -> None:
        with self._lock:
            for request in requests:
                self._requests.pop(id(request), None)


def put_back(celery_app: Celery, requests: list[Any]) -> None:
    """Return these requests' messages to the head of their queue (kombu's
    Redis transport). Brokers that redeliver on their own (AMQP requeues a
    closed channel's messages) need nothing. Raises if the broker is down."""
    with celery_app.connection_for_write() as connection:
        # One quick try: the heartbeat thread calling this must not wait out
        # kombu's reconnect backoff while the broker is still down.
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5)
        qos = connection.default_channel.qos
        restore = getattr(qos, "restore_by_tag", None)
        if restore is None:
            return
        for request in requests:
            # Pushed where the consumer takes next: it keeps its place.
            restore(request.message.delivery_tag, leftmost=False)
            log.warning(
                "put back in its queue after a broker reconnect",
                extra=logs.task_extra(request.id),
            )
