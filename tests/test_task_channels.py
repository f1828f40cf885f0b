"""Which pushes a web process hears: the room read from a push's raw text, the
bookkeeping of the listener's subscriptions (on a recording connection: no
Redis), and rooms let go when their task ends. The live behaviour, across web
processes, is in test_scale.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import socketio

from progressbar.messages import EVENT, NAMESPACE, push_message, push_parts, task_channel
from progressbar.web.message_queue import ResilientRedisManager, let_go_after_ends
from progressbar.web.task_channels import TaskChannels


def raw_push(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(push_message(snapshot), separators=(",", ":")).encode()


def test_the_snapshot_and_room_of_a_push_are_read_without_decoding_it() -> None:
    snapshot = {"task_id": "abc", "state": "running", "message": "é ]"}
    text, room = push_parts(raw_push(snapshot)) or (b"", "")
    assert (json.loads(text), room) == (snapshot, "abc")


def test_a_snapshot_holding_the_push_format_itself_does_not_fool_it() -> None:
    inner = raw_push({"task_id": "decoy"}).decode()
    tricky = {"task_id": "real", "result": {"text": inner, "list": [1], "binary": False}}
    text, room = push_parts(raw_push(tricky)) or (b"", "")
    assert (json.loads(text), room) == (tricky, "real")


def test_anything_else_on_the_channel_is_not_a_push() -> None:
    other = {**push_message({"task_id": "x"}), "host_id": "a-web-process"}
    assert push_parts(json.dumps(other, separators=(",", ":")).encode()) is None
    assert push_parts(b'{"method":"enter_room","room":"x"}') is None
    assert push_parts(b"") is None


class Connection:
    """Records the commands a PubSub would send; `down` makes them fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []
        self.down = False

    def subscribe(self, *channels: str) -> None:
        if self.down:
            raise ConnectionError("Redis is down")
        self.sent.append(("SUBSCRIBE", *channels))

    def unsubscribe(self, *channels: str) -> None:
        if self.down:
            raise ConnectionError("Redis is down")
        self.sent.append(("UNSUBSCRIBE", *channels))


def confirm(channels: TaskChannels, name: str) -> bool:
    return channels.confirmed(name.encode())


def connected() -> tuple[TaskChannels, Connection]:
    """Channels on a connection whose shared channel Redis has confirmed."""
    channels, connection = TaskChannels("pb", threading.Event), Connection()
    channels.connected(connection)
    assert connection.sent == [("SUBSCRIBE", "pb")]
    assert confirm(channels, "pb")
    return channels, connection


def test_a_join_waits_for_redis_to_confirm_its_subscription() -> None:
    channels, connection = connected()
    channels.add("t1")
    assert connection.sent[-1] == ("SUBSCRIBE", task_channel("pb", "t1"))
    assert not channels.wait("t1", 0.01)  # not confirmed yet
    assert not confirm(channels, task_channel("pb", "t1"))
    assert channels.wait("t1", 0.01)


def test_a_room_left_and_joined_again_waits_for_its_own_confirmation() -> None:
    channels, connection = connected()
    channels.add("t1")
    channels.remove("t1")
    channels.add("t1")
    assert connection.sent[-2][0] == "UNSUBSCRIBE"
    confirm(channels, task_channel("pb", "t1"))  # the first SUBSCRIBE's answer
    assert not channels.wait("t1", 0.01)
    confirm(channels, task_channel("pb", "t1"))
    assert channels.wait("t1", 0.01)


def test_a_new_connection_subscribes_every_room_heard_before_the_shared_channel() -> None:
    channels, old = connected()
    channels.add("t1")  # never confirmed: the connection drops
    channels.lost()
    old.down = True
    channels.add("t2")  # while down
    assert not channels.wait("t2", 0.01)
    new = Connection()
    channels.connected(new)
    [(command, *rooms, shared)] = new.sent
    assert (command, sorted(rooms), shared) == (
        "SUBSCRIBE",
        [task_channel("pb", "t1"), task_channel("pb", "t2")],
        "pb",
    )
    confirm(channels, task_channel("pb", "t1"))
    confirm(channels, task_channel("pb", "t2"))
    assert confirm(channels, "pb")  # the caller resyncs now
    assert channels.wait("t1", 0.01) and channels.wait("t2", 0.01)


class Opening(Connection):
    """A PubSub whose first command opens its connection; other green threads
    run meanwhile (`meanwhile`), as they do while eventlet connects a socket.
    A command sent through it before it is open would open a second one."""

    def __init__(self, meanwhile: Any) -> None:
        super().__init__()
        self.meanwhile = meanwhile
        self.open = False
        self.opened_twice = False

    def subscribe(self, *channels: str) -> None:
        if not self.open:
            hook, self.meanwhile = self.meanwhile, None
            if hook is None:
                self.opened_twice = True  # a second command found it still opening
            else:
                hook()
            self.open = True
        super().subscribe(*channels)


def test_a_join_while_the_listener_connects_is_heard_on_its_connection() -> None:
    channels = TaskChannels("pb", threading.Event)
    channels.add("t1")  # before the listener first connects
    connection = Opening(meanwhile=lambda: channels.add("t2"))
    channels.connected(connection)
    assert not connection.opened_twice
    assert connection.sent == [
        ("SUBSCRIBE", task_channel("pb", "t1"), "pb"),
        ("SUBSCRIBE", task_channel("pb", "t2")),
    ]
    assert confirm(channels, "pb")
    assert channels.wait("t1", 0.01)
    assert not channels.wait("t2", 0.01)  # its own SUBSCRIBE is not confirmed yet
    confirm(channels, task_channel("pb", "t1"))
    confirm(channels, task_channel("pb", "t2"))
    assert channels.wait("t2", 0.01)


def test_the_latest_push_of_a_room_is_kept_while_it_is_heard() -> None:
    channels, connection = connected()
    channels.add("t1")
    confirm(channels, task_channel("pb", "t1"))
    channels.heard("t1", '{"seq":2}')
    channels.heard("t1", '{"seq":3}')
    channels.heard("t2", '{"seq":9}')  # not heard here
    assert (channels.latest("t1"), channels.latest("t2")) == ('{"seq":3}', None)
    channels.unheard("t1")  # delivered another way: what was kept is old
    assert channels.latest("t1") is None
    channels.heard("t1", '{"seq":4}')
    channels.remove("t1")
    assert channels.latest("t1") is None


def test_a_push_from_a_subscription_since_left_is_not_kept() -> None:
    """Left and joined again: pushes between the UNSUBSCRIBE and the new
    SUBSCRIBE were missed, so one heard before the new one is confirmed is old."""
    channels, connection = connected()
    channels.add("t1")
    confirm(channels, task_channel("pb", "t1"))
    channels.remove("t1")
    channels.add("t1")
    channels.heard("t1", '{"seq":2}')  # sent before the UNSUBSCRIBE
    assert channels.latest("t1") is None
    confirm(channels, task_channel("pb", "t1"))
    channels.heard("t1", '{"seq":4}')
    assert channels.latest("t1") == '{"seq":4}'


def test_a_lost_connection_forgets_every_push_heard() -> None:
    channels, connection = connected()
    channels.add("t1")
    confirm(channels, task_channel("pb", "t1"))
    channels.heard("t1", '{"seq":2}')
    channels.lost()
    assert channels.latest("t1") is None
    channels.connected(Connection())
    confirm(channels, task_channel("pb", "t1"))
    confirm(channels, "pb")
    assert channels.latest("t1") is None


def test_a_task_started_here_stands_on_its_first_snapshot_until_its_first_push() -> None:
    channels, connection = connected()
    channels.add("t1")
    confirm(channels, task_channel("pb", "t1"))
    channels.started("t1", '{"seq":1}')
    assert channels.latest("t1") == '{"seq":1}'
    channels.heard("t1", '{"seq":2}')
    channels.started("t1", '{"seq":1}')  # a push came first: it stays
    assert channels.latest("t1") == '{"seq":2}'
    channels.started("t2", '{"seq":1}')  # its starter left already
    assert channels.latest("t2") is None


def test_an_apps_own_message_queue_lets_the_watchers_of_an_ended_task_go() -> None:
    """Under an app's own Socket.IO server (its RedisManager), as under the
    extension's: once a task's end is sent to its room, the room is left."""
    manager = socketio.RedisManager("redis://127.0.0.1:1/0", write_only=True)
    socketio.Server(client_manager=manager, async_mode="threading")
    for sid in ("s1", "s2"):
        for room in (sid, "task", "other"):
            manager.basic_enter_room(sid, NAMESPACE, room, eio_sid=f"e{sid}")
    manager.basic_enter_room("s3", "/elsewhere", "task", eio_sid="es3")
    handled: list[Any] = []
    handle_emit = manager._handle_emit
    manager._handle_emit = lambda message: (handled.append(message), handle_emit(message))
    let_go_after_ends(manager)
    let_go_after_ends(manager)  # wrapped once

    def push(state: str, namespace: str = NAMESPACE) -> None:
        data = [{"task_id": "task", "state": state}]
        message = {"method": "emit", "event": EVENT, "data": data, "namespace": namespace}
        manager._handle_emit({**message, "room": "task"})

    push("running")
    assert sorted(manager.rooms[NAMESPACE]) == ["other", "s1", "s2", "task"]
    push("succeeded", "/elsewhere")  # another namespace's room of that name stays
    assert sorted(manager.rooms[NAMESPACE]) == ["other", "s1", "s2", "task"]
    assert "task" in manager.rooms["/elsewhere"]
    push("succeeded")
    assert sorted(manager.rooms[NAMESPACE]) == ["other", "s1", "s2"]
    assert len(handled) == 3  # each message handled by the app's manager once


def test_a_start_answered_after_its_task_ended_does_not_stand_for_its_latest_push() -> None:
    """A task can end (and its room be let go) before its start is answered:
    its first snapshot then must not be kept, or a watcher joining again
    would be answered "queued" with nothing to follow."""
    manager = ResilientRedisManager("redis://127.0.0.1:1/0", write_only=True)
    socketio.Server(client_manager=manager, async_mode="threading")
    for task_id in ("quick", "slow"):
        manager.basic_enter_room("s1", NAMESPACE, task_id, eio_sid="e1")
        confirm(manager.task_channels, manager.task_channels.channel_of(task_id))
    manager.note_state("quick", "succeeded")  # its end was pushed first
    for task_id in ("quick", "slow"):
        manager.started({"task_id": task_id, "state": "queued", "seq": 1})
    assert manager.task_channels.latest("quick") is None
    assert json.loads(manager.task_channels.latest("slow") or "{}")["state"] == "queued"
