"""Admission control as shipped, against a live stack of its own: the limits
by client address, the caps on unfinished tasks, hidden kinds, time limits
and the fair share of the workers.

Its web process trusts one proxy (TRUSTED_PROXIES=1), so each test's clients
come from addresses of their own, given in X-Forwarded-For as nginx would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from progressbar.settings import Settings
from progressbar.web.address import address_of
from tests.stack import (
    ProgressClient,
    Stack,
    as_shipped,
    cookie_header,
    error_code,
    extra_web,
    wait_until,
)

SHIPPED = Settings()
SLOTS = 4  # the worker's pool: a fair share of 0.5 is 2 slots
_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


def new_address() -> str:
    return next(_addresses)


@pytest.fixture(scope="module")
def admitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("admission"),
        worker_args=("-c", str(SLOTS)),
        env_extra={**as_shipped(), "TRUSTED_PROXIES": "1"},
    )
    with stack:
        yield stack


def http_from(address: str) -> requests.Session:
    """A script at `address`, behind the trusted proxy; it keeps its cookies."""
    http = requests.Session()
    http.headers["X-Forwarded-For"] = address
    return http


def start(http: requests.Session, base: str, kind: str, **params: object) -> requests.Response:
    return http.post(f"{base}/api/tasks", json={"kind": kind, "params": params}, timeout=10)


def wait_ended(http: requests.Session, base: str, task_id: str, timeout: float = 30) -> dict:
    def ended() -> dict | None:
        task = http.get(f"{base}/api/tasks/{task_id}", timeout=5).json()["task"]
        return task if task["state"] in {"succeeded", "failed", "cancelled", "lost"} else None

    return wait_until(ended, timeout, f"task {task_id} ended", interval=0.1)


def client_from(base: str, http: requests.Session) -> ProgressClient:
    """A Socket.IO client of the same script: its address, and its cookie if it has one."""
    cookie = cookie_header(http) or None
    return ProgressClient(
        base, cookie, headers={"X-Forwarded-For": http.headers["X-Forwarded-For"]}
    )


def identified(base: str) -> requests.Session:
    """A browser at an address of its own, with the identity its page asked for."""
    http = http_from(new_address())
    http.get(f"{base}/progressbar/identity", timeout=5).raise_for_status()
    return http


# -- the client address -----------------------------------------------------


def test_the_address_is_the_peer_unless_a_proxy_is_trusted() -> None:
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    assert address_of(environ, 0) == "127.0.0.1"  # a header anyone can write
    # nginx appended the peer it saw; what the client wrote stays to its left.
    assert address_of(environ, 1) == "203.0.113.9"
    assert address_of(environ, 2) == "6.6.6.6"
    assert address_of(environ, 3) == "127.0.0.1"  # fewer hops than trusted: not ours
    assert address_of({"REMOTE_ADDR": "10.1.1.1"}, 1) == "10.1.1.1"


def test_settings_refuse_a_rate_limit_they_cannot_read() -> None:
    with pytest.raises(ValueError, match="PROGRESSBAR_START_RATE_LIMIT"):
        Settings.from_config({"PROGRESSBAR_START_RATE_LIMIT": "many"})
    assert Settings.from_config({"PROGRESSBAR_START_RATE_LIMIT": "off"}).start_rate_limit is None
    with pytest.raises(ValueError, match="PROGRESSBAR_FAIR_SHARE"):
        Settings.from_config({"PROGRESSBAR_FAIR_SHARE": "2"})
    assert SHIPPED.max_active_tasks < SHIPPED.worker_concurrency  # a visitor never fills them


# -- new identities and starts per address ----------------------------------


def test_a_client_without_cookies_gets_no_fresh_allowance(admitted: Stack) -> None:
    base, address = admitted.base_url, new_address()
    cookies: list[str] = []
    answers = []
    for _ in range(3 * 10):
        # No cookie is ever sent back: each start would be a new identity.
        answer = start(http_from(address), base, "simulate", duration=3)
        answers.append(answer)
        if answer.status_code == 202:
            cookies.append(answer.headers["Set-Cookie"].split(";")[0])
    refused = [a for a in answers if a.status_code != 202]
    assert len(cookies) <= 10, len(cookies)  # NEW_IDENTITY_RATE_LIMIT: 10 a minute
    assert refused and all(a.status_code == 429 for a in refused)
    assert {error_code(a.json()) for a in refused} == {"limit"}
    assert "new identities" in refused[0].json()["error"]["message"]
    assert int(refused[0].headers["Retry-After"]) >= 1
    # The page's own way to get an identity is refused the same way, and so
    # is a Socket.IO connection without a cookie.
    asked = http_from(address).get(f"{base}/progressbar/identity", timeout=5)
    assert (asked.status_code, error_code(asked.json())) == (429, "limit")
    with pytest.raises(socketio.exceptions.ConnectionError):
        client_from(base, http_from(address))
    # Another address is served as ever.
    other = http_from(new_address())
    assert start(other, base, "primes", limit=100).status_code == 202
    for cookie in cookies:
        session = http_from(address)
        session.headers["Cookie"] = cookie
        for task in session.get(f"{base}/api/tasks", timeout=5).json()["tasks"]:
            session.post(f"{base}/api/tasks/{task['task_id']}/cancel", json={}, timeout=5)


def test_starts_per_address_are_rate_limited(admitted: Stack) -> None:
    base, http = admitted.base_url, http_from(new_address())
    accepted = 0
    while True:
        answer = start(http, base, "primes", limit=100)
        if answer.status_code != 202:
            break
        accepted += 1
        wait_ended(http, base, answer.json()["task"]["task_id"])
        assert accepted <= 30, "no limit on starts"
    assert accepted == 30  # START_RATE_LIMIT: 30 a minute
    assert (answer.status_code, error_code(answer.json())) == (429, "limit")
    assert "tasks started from your address" in answer.json()["error"]["message"]
    assert int(answer.headers["Retry-After"]) >= 1


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
    admitted: Stack, tmp_path: Path
) -> None:
    # The same web process with no proxy trusted: every header lies.
    env = {**admitted.env, "TRUSTED_PROXIES": "0"}
    with extra_web(env, tmp_path, "web-no-proxy") as base:
        codes = [
            http_from(new_address()).get(f"{base}/progressbar/identity", timeout=5).status_code
            for _ in range(12)
        ]
    assert codes.count(204) == 10 and codes[-1] == 429, codes  # all one address: 127.0.0.1


# -- what counts toward the caps --------------------------------------------


def test_a_group_counts_its_parts(admitted: Stack) -> None:
    base, http = admitted.base_url, http_from(new_address())
    group = start(http, base, "batch", parts=SHIPPED.max_active_tasks, duration=30)
    assert group.status_code == 202
    try:
        more = start(http, base, "simulate", duration=1)
        assert (more.status_code, error_code(more.json())) == (429, "limit")
        assert "a group counts its parts" in more.json()["error"]["message"]
    finally:
        task_id = group.json()["task"]["task_id"]
        http.post(f"{base}/api/tasks/{task_id}/cancel", json={}, timeout=5)
    assert wait_ended(http, base, task_id)["state"] == "cancelled"
    # Its parts ended with it: the places are free again.
    again = start(http, base, "batch", parts=SHIPPED.max_active_tasks, duration=0.2)
    assert again.status_code == 202, again.json()
    assert wait_ended(http, base, again.json()["task"]["task_id"])["state"] == "succeeded"


def test_past_the_cap_of_all_unfinished_tasks_everyone_is_told_busy(
    admitted: Stack, tmp_path: Path
) -> None:
    env = {**admitted.env, "MAX_ACTIVE_TASKS_TOTAL": "8"}
    with extra_web(env, tmp_path, "web-cap") as base:
        # Two visitors of four tasks each fill it.
        visitors = [http_from(new_address()) for _ in range(2)]
        started = [start(v, base, "batch", parts=4, duration=30) for v in visitors]
        assert [s.status_code for s in started] == [202, 202]
        newcomer = http_from(new_address())
        try:
            over = start(newcomer, base, "simulate", duration=1)
            assert (over.status_code, error_code(over.json())) == (503, "busy")
            assert int(over.headers["Retry-After"]) >= 1
            assert newcomer.get(f"{base}/api/tasks", timeout=5).json()["tasks"] == []
        finally:
            for v, s in zip(visitors, started, strict=True):
                v.post(f"{base}/api/tasks/{s.json()['task']['task_id']}/cancel", json={}, timeout=5)
        for v, s in zip(visitors, started, strict=True):
            wait_ended(v, base, s.json()["task"]["task_id"])
        assert start(newcomer, base, "primes", limit=100).status_code == 202


def test_clients_cannot_start_hidden_kinds(admitted: Stack) -> None:
    base = admitted.base_url
    http = identified(base)
    over_http = start(http, base, "ticker", updates=10**6, rate=0.1)
    assert (over_http.status_code, error_code(over_http.json())) == (400, "unknown_kind")
    client = client_from(base, http)
    try:
        answer = client.call("start", {"kind": "ticker", "params": {"updates": 10**6}})
        assert error_code(answer) == "unknown_kind"
        assert client.call("list")["tasks"] == []
    finally:
        client.close()


# -- time limits -------------------------------------------------------------


def test_a_task_past_its_time_limit_ends_failed_and_says_so(
    admitted: Stack, tmp_path: Path
) -> None:
    env = {**admitted.env, "TASK_TIME_LIMIT": "1"}
    with extra_web(env, tmp_path, "web-time-limit") as base:
        http = http_from(new_address())
        answer = start(http, base, "primes", limit=10**9)  # minutes of sieving
        final = wait_ended(http, base, answer.json()["task"]["task_id"])
    assert final["state"] == "failed"
    assert final["error"] == "It ran past its time limit and was stopped."


# -- the fair share of the workers ------------------------------------------


def test_one_identity_cannot_hold_every_worker_slot(admitted: Stack) -> None:
    base = admitted.base_url
    heavy = client_from(base, identified(base))
    newcomer = client_from(base, identified(base))
    try:
        heavy_ids = [heavy.start("simulate", duration=4, seed=i)["task_id"] for i in range(SLOTS)]
        # Every slot it may take is taken before the newcomer comes.
        wait_until(
            lambda: (
                sum(any(p["state"] == "running" for p in heavy.pushes_for(t)) for t in heavy_ids)
                >= SLOTS // 2
            ),
            20,
            "the heavy identity running",
        )
        mine = newcomer.start("simulate", duration=0.5, seed=9)["task_id"]
        done = newcomer.wait_terminal(mine, timeout=30)
        assert done["state"] == "succeeded"
        finals = [heavy.wait_terminal(t, timeout=60) for t in heavy_ids]
        assert all(f["state"] == "succeeded" for f in finals)
        # The newcomer did not wait for the heavy identity's tasks: it ended
        # before any of those that had to wait for a slot.
        assert done["_received"] < max(f["_received"] for f in finals)
        # And the heavy identity never ran more than its share at once.
        spans = [
            (
                min(p["_received"] for p in heavy.pushes_for(t) if p["state"] == "running"),
                f["_received"],
            )
            for t, f in zip(heavy_ids, finals, strict=True)
        ]
        most = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
        assert most <= SLOTS // 2, spans
    finally:
        heavy.close()
        newcomer.close()
