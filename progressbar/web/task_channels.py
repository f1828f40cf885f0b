"""The task channels a web process listens to: those of the rooms it hosts.

Each task's pushes go on a channel of its own (`messages.task_channel`). The
message queue's listener subscribes to a task's channel when the first
watcher here joins its room and unsubscribes when the last one leaves, so a
web process hears the pushes it delivers and no others: adding web processes
adds capacity, instead of each one paying for every push of the cluster.

A join waits until Redis has confirmed the subscription (Redis answers a
connection's commands in order), so whatever the joiner reads from the store
afterwards is no older than the first push it will be sent.

The latest push heard of each room is kept too, once its subscription is
confirmed: a watcher joining a room already heard here is answered with it
instead of a read of the store. Every change of a task's snapshot but its
creation is pushed, in order, so that push is the stored snapshot or an
older one whose successors are on their way to the joiner, now in the room;
a task started here stands on its first snapshot until its first push.
A connection lost forgets them all (pushes published meanwhile were missed).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..messages import task_channel


class TaskChannels:
    """Subscriptions of the listener's connection, and the joins waiting for them."""

    def __init__(self, channel: str, create_event: Callable[[], Any]) -> None:
        self.channel = channel
        self.create_event = create_event
        # Rooms heard here: subscribed, or being subscribed.
        self.rooms: set[str] = set()
        # The listener's connection; None until it connects.
        self.pubsub: Any = None
        # Set once the shared channel, subscribed last on connecting, is confirmed.
        self.ready = create_event()
        # Per channel, an event for each SUBSCRIBE sent and not yet confirmed, in order.
        self._pending: dict[bytes, deque[Any]] = {}
        self._stale: list[Any] = []
        # The snapshot JSON of the latest push heard of each room, since its
        # subscription was confirmed.
        self._latest: dict[str, str] = {}

    def channel_of(self, room: str) -> str:
        return task_channel(self.channel, room)

    def add(self, room: str) -> None:
        """Hear `room`'s pushes from now on (its first watcher here joined)."""
        self.rooms.add(room)
        name = self.channel_of(room)
        done = self.create_event()
        self._pending.setdefault(name.encode(), deque()).append(done)
        if self.pubsub is None:
            # The listener is connecting: it subscribes every room heard
            # here once its connection is up, this one included.
            return
        try:
            self.pubsub.subscribe(name)
        except Exception:
            # Connection lost: on connecting again, the listener subscribes
            # every room heard here, then has the store push each of them again.
            done.set()

    def remove(self, room: str) -> None:
        """Stop hearing `room`'s pushes (its last watcher here left)."""
        self.rooms.discard(room)
        self._latest.pop(room, None)
        try:
            self.pubsub.unsubscribe(self.channel_of(room))
        except Exception:
            pass  # a new connection subscribes only to the rooms then heard

    def heard(self, room: str, snapshot: str) -> None:
        """A push of `room` (its snapshot's JSON) is being delivered here.
        Not kept while a SUBSCRIBE of the room waits for its confirmation:
        it may come from a subscription since left, which missed the pushes
        published between its UNSUBSCRIBE and the new SUBSCRIBE."""
        if room not in self.rooms:
            return
        if self._pending and self.channel_of(room).encode() in self._pending:
            return
        self._latest[room] = snapshot

    def started(self, room: str, snapshot: str) -> None:
        """`room`'s task was just created and sent, its joiner's subscription
        confirmed: its first snapshot (which is never pushed) stands for the
        latest push until one is heard, as every push of it comes after."""
        if room not in self._latest:
            self.heard(room, snapshot)

    def unheard(self, room: str) -> None:
        """A push of `room` was delivered without `heard`: what was kept is old."""
        self._latest.pop(room, None)

    def latest(self, room: str) -> str | None:
        """The snapshot JSON of the latest push of `room` heard here, if any."""
        return self._latest.get(room)

    def wait(self, room: str, timeout: float) -> bool:
        """Wait until Redis has confirmed this process hears `room`; False on timeout."""
        deadline = time.monotonic() + timeout
        if not self.ready.wait(timeout):
            return False
        queue = self._pending.get(self.channel_of(room).encode())
        if not queue:
            return True
        return bool(queue[-1].wait(max(0.0, deadline - time.monotonic())))

    def connected(self, pubsub: Any) -> None:
        """A new connection of the listener: subscribe it to every room heard
        here, then to the shared channel, in one command.

        Joins meanwhile only note their room: the first command opens the
        connection, and opening it lets other green threads run; one that
        sent its own SUBSCRIBE through `pubsub` then would open a second
        connection, which nobody reads (its room's pushes lost, its bars
        frozen). Rooms noted while the command was sent are subscribed after it.
        """
        self._stale += [event for queue in self._pending.values() for event in queue]
        self._pending = {}
        self._latest = {}
        self.pubsub = None
        rooms = set(self.rooms)
        pubsub.subscribe(*(self.channel_of(room) for room in rooms), self.channel)
        self.pubsub = pubsub
        joined_meanwhile = self.rooms - rooms
        if joined_meanwhile:
            pubsub.subscribe(*(self.channel_of(room) for room in joined_meanwhile))

    def confirmed(self, channel: bytes) -> bool:
        """Redis confirmed a subscription; True when it is the shared channel's,
        which comes after every room's sent with it."""
        queue = self._pending.get(channel)
        if queue:
            queue.popleft().set()
            if not queue:
                del self._pending[channel]
        if channel != self.channel.encode():
            return False
        for event in self._stale:
            event.set()
        self._stale = []
        self.ready.set()
        return True

    def lost(self) -> None:
        """The listener's connection failed: joins wait for the next one."""
        self.ready.clear()
        self.pubsub = None
        self._latest = {}
