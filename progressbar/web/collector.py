"""Garbage collection in a web process with many open connections.

A full collection looks at every object the collector tracks, and it stops
every connection of the process while it does: with a thousand connections
and tasks coming and going, one took about 100 ms, and one came every 2 s
(`python -m bench.churn --gc`), which set the push latency's tail. Most of
what it looks at lives on (the connections, the rooms, the caches), and what
it frees is mostly new.

So each full collection's survivors are frozen (`gc.freeze()`): the next full
collection looks only at what was made since. Frozen objects are still freed
when nothing refers to them any more; only garbage in reference cycles among
them waits, for the periodic pass that unfreezes everything and looks at it
all once (every `RECHECK_EVERY` seconds).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

# Seconds between full collections that look at everything, frozen or not.
RECHECK_EVERY = 600.0

_installed: list[Callable[[str, dict[str, Any]], None]] = []


def keep_full_collections_short(
    recheck_every: float = RECHECK_EVERY, clock: Callable[[], float] = time.monotonic
) -> Callable[[str, dict[str, Any]], None]:
    """Freeze what is alive now and what survives each full collection from
    now on, all of it looked at again every `recheck_every` seconds. Returns
    the collector callback it installed."""
    last_recheck = clock()

    def after_full_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal last_recheck
        if phase != "stop" or info["generation"] != 2:
            return
        if clock() - last_recheck >= recheck_every:
            # The next full collection looks at everything once.
            last_recheck = clock()
            gc.unfreeze()
        else:
            gc.freeze()

    gc.freeze()
    if not _installed:
        _installed.append(after_full_collection)
        gc.callbacks.append(after_full_collection)
    return _installed[0]
