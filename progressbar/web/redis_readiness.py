"""redis-py's look for unread data on a connection, made without a turn of
the green hub.

Before each command, redis-py's pool asks whether the connection it hands out
holds anything unread, with a timeout of zero. In a green process that check
goes through the hub: eventlet's `select` has no `poll`, so redis-py falls
back to a selector, and gevent's `poll` waits on the hub even for zero. Either
way the socket is registered with the hub, the hub runs a turn, and the socket
is unregistered: two `epoll_ctl` calls and a switch to the hub and back for
every command, about a quarter of a round trip's CPU. A zero-timeout `poll`
never waits, so the process's own `poll` gives the same answer at once.

Only the zero-timeout check changes; a check that may wait still waits on the
hub. Nothing changes when redis-py has no such check (other versions).
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from . import unpatched

try:
    from redis._parsers import hiredis as _hiredis_parser
except ImportError:  # pragma: no cover - a redis-py without this module
    _hiredis_parser = None  # type: ignore[assignment]

CanRead = Callable[[Any, float], bool]


def check_without_hub(async_mode: str) -> bool:
    """Under `async_mode` "eventlet" or "gevent", answer redis-py's
    zero-timeout readiness checks with the process's own `poll`. Whether it
    did (other modes, a redis-py without the check, or done already: no)."""
    green: CanRead | None = getattr(_hiredis_parser, "_socket_can_read", None)
    poll = unpatched.poll(async_mode)
    if green is None or poll is None or getattr(green, "without_hub", False):
        return False
    _hiredis_parser._socket_can_read = without_hub(green, poll)  # type: ignore[assignment]
    return True


def without_hub(green: CanRead, poll: Callable[[], Any]) -> CanRead:
    """`green`, but for a zero timeout, which `poll` (unpatched) answers:
    whether the socket has something to read, or is closed or failed."""

    def can_read(sock: Any, timeout: float) -> bool:
        if timeout != 0:
            return green(sock, timeout)
        # TLS may hold decrypted bytes above the socket.
        if hasattr(sock, "pending") and sock.pending():
            return True
        # A poll object of its own each time: unlike `direct_writes`' probe,
        # shared by green threads, this check may also run in real threads
        # (an app's own), which must not register on one object at once.
        poller = poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    can_read.without_hub = True  # type: ignore[attr-defined]
    return can_read
