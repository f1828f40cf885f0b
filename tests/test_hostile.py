"""Hostile input and limits, against the live web process and worker."""

from __future__ import annotations

import time

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from progressbar.errors import CODES
from progressbar.settings import Settings
from tests.stack import (
    ProgressClient,
    RawSocketIO,
    error_code,
    extra_web,
    identity_cookie,
    strict_json,
    wait_until,
)

FUZZ_EXAMPLES = 4_000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
param_names = st.sampled_from(["duration", "fail_at", "seed", "label", "limit", "speed"])
start_payloads = st.fixed_dictionaries(
    {"kind": st.sampled_from(["simulate", "primes", "", "SIMULATE", "teleport"]) | json_values},
    optional={
        "params": st.dictionaries(param_names, json_values, max_size=5) | json_values,
        "priority": json_values,
    },
)
task_payloads = st.fixed_dictionaries(
    {"task_id": st.text(max_size=80) | json_values}, optional={"extra": json_values}
)
events = st.sampled_from(["start", "subscribe", "unsubscribe", "list", "cancel", "teleport"])
payloads = st.one_of(json_values, start_payloads, task_payloads)


def check_answer(answer: object) -> dict:
    assert isinstance(answer, dict), answer
    assert answer.get("ok") in (True, False), answer
    if answer["ok"] is False:
        assert error_code(answer) in CODES - {"internal"}, answer  # internal = unhandled
    return answer


def cancel_all(client: ProgressClient) -> None:
    for task in client.call("list")["tasks"]:
        client.call("cancel", {"task_id": task["task_id"]})


def test_fuzz_every_event_with_random_payloads(connect, web: str) -> None:
    client = connect(identity_cookie(web))
    started: set[str] = set()
    calls = 0

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(event=events, payload=payloads)
    def throw(event: str, payload: object) -> None:
        nonlocal calls
        calls += 1
        answer = check_answer(client.call(event, payload))
        if event == "start" and answer["ok"]:
            started.add(answer["task"]["task_id"])

    try:
        throw()
    finally:
        cancel_all(client)
    assert calls >= FUZZ_EXAMPLES
    print(f"fuzz: {calls} payloads, {len(started)} valid starts")
    # Nothing refused left a trace; everything accepted is there.
    assert {t["task_id"] for t in client.call("list")["tasks"]} == started
    # The server still serves a normal task.
    fresh = connect(identity_cookie(web))
    task = fresh.start("primes", limit=1000)
    assert fresh.wait_terminal(task["task_id"], timeout=30)["result"] == 168


def test_two_payloads_or_none_at_all(connect, cookie) -> None:
    client = connect(cookie)
    answer = client.sio.call("list", ({}, {}), namespace="/progress", timeout=5)
    assert error_code(check_answer(answer)) == "invalid"
    assert check_answer(client.sio.call("start", namespace="/progress", timeout=5))["ok"] is False


def test_active_task_limit_and_a_flood_does_not_slow_others(connect, web: str) -> None:
    flooder = connect(identity_cookie(web))
    other = connect(identity_cookie(web))
    try:
        limit = Settings().max_active_tasks
        ids = [flooder.start("simulate", duration=60, seed=i)["task_id"] for i in range(limit)]
        answer = flooder.call("start", {"kind": "simulate"})
        assert error_code(answer) == "limit"
        assert f"{limit} unfinished tasks" in answer["error"]["message"]
        assert len(flooder.call("list")["tasks"]) == limit  # the refused one left no trace

        # A flood of starts from one identity; another identity stays served.
        for _ in range(300):
            flooder.sio.emit("start", {"kind": "simulate"}, namespace="/progress")
        slowest = 0.0
        for _ in range(20):
            began = time.monotonic()
            assert other.call("list")["ok"]
            slowest = max(slowest, time.monotonic() - began)
        print(f"slowest list of another identity during a flood of 300 starts: {slowest:.3f} s")
        # Not starved: it waits at most for the flood itself to be refused
        # (0.3-0.7 s on the 2-core machine; the bound leaves room for load).
        assert slowest < 2.0, slowest

        # Finishing one frees a place.
        flooder.call("cancel", {"task_id": ids[0]})
        flooder.wait_terminal(ids[0], timeout=5)
        assert flooder.call("start", {"kind": "primes", "params": {"limit": 100}})["ok"]
    finally:
        cancel_all(flooder)


def test_an_oversized_message_is_refused_and_the_server_goes_on(connect, web: str) -> None:
    big = connect(identity_cookie(web))
    with pytest.raises(socketio.exceptions.TimeoutError):
        big.call("start", {"kind": "simulate", "params": {"label": "x" * 200_000}}, timeout=3)
    # The server dropped that connection (engine.io's max_http_buffer_size: 64 KB).
    wait_until(lambda: not big.sio.connected, 5, "oversized client disconnected")
    fine = connect(identity_cookie(web))
    assert fine.call("list") == {"ok": True, "tasks": []}


def test_an_unreadable_event_is_acked_invalid_and_the_connection_goes_on(web: str) -> None:
    page = RawSocketIO(web, identity_cookie(web))
    try:
        deep = "[" * 30_000 + "]" * 30_000  # 60 KB: under the 64 KB a message may have
        unreadable = [
            f'["start",{deep}]',  # nested too deeply to read
            "[" * 50_000,
            '["start",{"kind":',  # not JSON
            "[1,2]",  # no event name
            "[]",
        ]
        for data in unreadable:
            (answer,) = strict_json(page.call(data))
            assert error_code(answer) == "invalid", data[:20]
        (listed,) = strict_json(page.call('["list"]'))
        assert listed == {"ok": True, "tasks": []}
    finally:
        page.close()


def connect_from(base_url: str, origin: str) -> socketio.Client:
    """A websocket connection whose handshake carries this Origin header."""
    client = socketio.Client(websocket_extra_options={"origin": origin})
    client.connect(base_url, namespaces=["/progress"], transports=["websocket"], wait_timeout=5)
    return client


def test_a_foreign_origin_is_refused(web: str, stack_env, logs_dir) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect_from(web, "http://evil.example")
    connect_from(web, web).disconnect()  # the page's own origin

    env = {**stack_env, "ALLOWED_ORIGINS": "https://app.example, https://admin.example"}
    with extra_web(env, logs_dir, "web-origins") as base:
        connect_from(base, "https://admin.example").disconnect()
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect_from(base, "http://evil.example")
