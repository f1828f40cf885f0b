"""The operating system's own `select.poll`, which eventlet and gevent replace
when they patch `select`. A poll with a zero timeout never waits, so a green
process may ask it whether a socket is ready without a turn of its hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def poll(async_mode: str) -> Callable[[], Any] | None:
    """`select.poll` as it was before `async_mode` (Socket.IO's) patched it;
    None in modes that patch nothing (threading)."""
    if async_mode == "eventlet":
        import eventlet.patcher

        return eventlet.patcher.original("select").poll  # type: ignore[no-any-return]
    if async_mode == "gevent":
        import gevent.monkey

        return gevent.monkey.get_original("select", "poll")  # type: ignore[no-any-return]
    return None
