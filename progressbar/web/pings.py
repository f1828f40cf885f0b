"""Engine.IO's pings sent by one background task per server, not one per connection.

python-engineio (4.x) starts a task per connection that sleeps `ping_interval`
and then pings the client, again after every answer: under eventlet or gevent a
green thread each (its own stack, Python frames and timer), under threading a
thread: about 8 KB of every idle connection's memory under eventlet. Every
such wait is equally long, so the connections due for a
ping form a queue in the order they were scheduled: one task sleeps until the
first is due and pings whoever is. Clients see the same pings at the same times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engineio import packet
from engineio.socket import Socket

log = logging.getLogger(__name__)


class Pinger:
    """The ping schedule of one Engine.IO server."""

    def __init__(self, eio: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.eio = eio
        self.clock = clock
        self.due: deque[tuple[float, Socket]] = deque()
        self.task: Any = None
        self._starting = threading.Lock()

    def schedule(self, socket: Socket) -> None:
        """Ping `socket` one ping interval from now."""
        self.due.append((self.clock() + self.eio.ping_interval, socket))
        if self.task is None:
            with self._starting:
                if self.task is None:
                    self.task = self.spawn(self.run)

    def spawn(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """Start a task as the server itself would."""
        return type(self.eio).start_background_task(self.eio, target, *args, **kwargs)

    def run(self) -> None:
        while True:
            self.step()

    def step(self) -> None:
        """Ping the first connection in line if it is due, else sleep until it is."""
        if not self.due:
            # Whoever comes next is due a whole interval from now, or later.
            self.eio.sleep(self.eio.ping_interval)
            return
        when, socket = self.due[0]
        wait = when - self.clock()
        if wait > 0:
            self.eio.sleep(wait)
            return
        self.due.popleft()
        try:
            ping(socket)
        except Exception:
            log.exception("ping of %s failed", socket.sid)


def ping(socket: Socket) -> None:
    """What engineio's own per-connection task does once its wait is over."""
    if not socket.closing and not socket.closed:
        socket.last_ping = time.time()
        socket.send(packet.Packet(packet.PING))


def share_pings(eio: Any) -> Pinger:
    """Have `eio` (an engineio.Server) schedule its pings on one shared task.

    Only the per-connection ping task is taken over; if the library starts it
    otherwise than as `Socket._send_ping`, nothing changes.
    """
    pinger = Pinger(eio)

    def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__func__", None) is Socket._send_ping and not args and not kwargs:
            pinger.schedule(target.__self__)
            return None
        return pinger.spawn(target, *args, **kwargs)

    eio.start_background_task = start_background_task
    return pinger
