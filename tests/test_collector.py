"""The web process's collector policy: survivors of a full pass are frozen,
everything is looked at again once a period."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from progressbar.web import collector
from tests.clock import Clock


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock()
    yield clock
    for callback in collector._installed:
        gc.callbacks.remove(callback)
    collector._installed.clear()
    gc.unfreeze()


class Survivor:
    """An object the collector tracks, as a connection's objects are."""


def test_survivors_of_a_full_pass_are_frozen_and_all_looked_at_once_a_period(clock) -> None:
    after_full = collector.keep_full_collections_short(recheck_every=600, clock=clock)
    assert gc.get_freeze_count() > 0  # what was built before serving
    frozen = gc.get_freeze_count()
    survivors = [Survivor() for _ in range(100)]
    after_full("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    assert gc.get_freeze_count() >= frozen + len(survivors)
    # Young passes freeze nothing (the count may fall: another thread of the
    # process may free what was frozen).
    frozen = gc.get_freeze_count()
    young = [Survivor() for _ in range(100)]
    after_full("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
    assert gc.get_freeze_count() < frozen + len(young)
    clock.tick(600)
    after_full("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    assert gc.get_freeze_count() == 0  # the next full pass looks at everything
    after_full("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
    assert gc.get_freeze_count() > 0


def test_installed_once() -> None:
    try:
        first = collector.keep_full_collections_short()
        assert collector.keep_full_collections_short() is first
        assert gc.callbacks.count(first) == 1
    finally:
        for callback in collector._installed:
            gc.callbacks.remove(callback)
        collector._installed.clear()
        gc.unfreeze()
