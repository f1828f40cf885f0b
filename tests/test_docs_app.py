"""A third app, written as Flask's documentation writes a Flask + Celery app
(tests/docsapp: its own celery_init_app with a FlaskTask and a result backend,
its own SocketIO with an event of its own, its own `api` blueprint), adopts
progressbar in a few lines and runs from the built wheel: views that start
tracked tasks, Celery's retries, Ignore, Reject and time limits, results kept,
shared tasks, groups built in code, a form post followed in Chromium.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio
from celery import Celery
from playwright.sync_api import Browser, expect

from tests.stack import (
    ROOT,
    RawSocketIO,
    cookie_header,
    error_code,
    free_port,
    page_errors,
    process_env,
    served_app,
    signed_in,
    strict_json,
)

DOCSAPP = ROOT / "tests" / "docsapp"


@pytest.fixture(scope="module")
def docs_env(site: Path, redis_url: str) -> dict[str, str]:
    # A Redis database of its own: the demo's worker must not take its tasks.
    url = redis_url.rsplit("/", 1)[0] + "/2"
    return process_env(url, "host-secret", PYTHONPATH=str(site))


@pytest.fixture(scope="module")
def host(docs_env: dict[str, str], logs_dir: Path) -> Iterator[str]:
    """Base URL of the app served by gunicorn as the README says (the
    extension's configuration: one gevent worker), with its own worker."""
    args = [sys.executable, "-m", "gunicorn", "-c", "python:progressbar.web.gunicorn"]
    args += ["docsapp:create_app()"]
    # gunicorn binds $PORT; the app's own SocketIO is told it runs under gevent.
    env = {**docs_env, "DOCSAPP_ASYNC_MODE": "gevent"}
    with served_app(env, logs_dir, "docsapp", args, free_port(), DOCSAPP) as base_url:
        yield base_url





@pytest.fixture
def host_celery(host: str, docs_env: dict[str, str]) -> Iterator[Celery]:
    """A Celery client of the host's broker and result backend."""
    celery = Celery(broker=docs_env["REDIS_URL"], backend=docs_env["REDIS_URL"])
    yield celery
    celery.close()


def test_a_retry_keeps_the_bar_live_and_celery_keeps_the_result(
    client_of, host_celery: Celery
) -> None:
    ann = client_of("ann")
    task = ann.start("scan")
    final = ann.wait_terminal(task["task_id"], timeout=30)
    assert (final["state"], final["result"]) == ("succeeded", {"attempts": 2}), final
    pushes = ann.pushes_for(task["task_id"])
    seqs = [p["seq"] for p in pushes]
    assert seqs == sorted(set(seqs))
    waiting = [p for p in pushes if p["message"].startswith("Attempt 1 did not finish")]
    assert len(waiting) == 1, [p["message"] for p in pushes]
    assert waiting[0]["state"] == "running"
    assert waiting[0]["message"] == (
        "Attempt 1 did not finish (ConnectionError); trying again in 1 s."
    )
    # Between the attempts the bar stays where the first one left it.
    assert waiting[0]["current"] == 5
    # Celery's result backend has the value too, as for any task.
    assert host_celery.AsyncResult(task["task_id"]).get(timeout=10) == {"attempts": 2}


def test_ignore_reject_and_time_limits_end_the_bar_saying_so(client_of) -> None:
    ann = client_of("ann")
    skipped = ann.wait_terminal(ann.start("skip")["task_id"], timeout=30)
    assert (skipped["state"], skipped["message"]) == ("cancelled", "Its worker skipped it.")
    refused = ann.wait_terminal(ann.start("refuse")["task_id"], timeout=30)
    assert (refused["state"], refused["error"]) == ("failed", "Its worker rejected it.")
    overrun = ann.wait_terminal(ann.start("overrun")["task_id"], timeout=30)
    assert overrun["state"] == "failed"
    assert overrun["error"] == "It ran past its time limit and was stopped."
    assert 0 < overrun["current"] < 100


def test_a_plain_host_task_keeps_its_result(host_celery: Celery) -> None:
    assert host_celery.send_task("docsapp.tasks.add", args=(2, 3)).get(timeout=10) == 5


def started_by_view(session: requests.Session, url: str, **form: str) -> str:
    """The id of the task a host view started, from the page it redirects to."""
    answer = session.post(url, data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    assert location.startswith("/follow/")
    return location.removeprefix("/follow/")


def test_a_host_view_starts_a_tracked_task_with_server_arguments(host: str, client_of) -> None:
    task_id = started_by_view(signed_in(host, "ann"), f"{host}/convert", text="a\nb\nc")
    ann = client_of("ann")
    watched = ann.call("subscribe", {"task_id": task_id})
    assert watched["ok"] and watched["task"]["kind"] == "docsapp.tasks.convert"
    final = ann.wait_terminal(task_id, timeout=30)
    assert (final["state"], final["result"]) == ("succeeded", {"lines": 3, "text": "A\nB\nC"})
    assert [t["task_id"] for t in client_of("ann").call("list")["tasks"]][0] == task_id
    # Another user cannot see it, nor cancel it.
    bob = client_of("bob")
    assert error_code(bob.call("subscribe", {"task_id": task_id})) == "not_found"
    assert error_code(bob.call("cancel", {"task_id": task_id})) == "not_found"


def test_a_shared_task_can_be_watched_by_anyone_with_its_id_but_not_cancelled(
    host: str, client_of
) -> None:
    ann = signed_in(host, "ann")
    task_id = started_by_view(ann, f"{host}/convert?shared=1", text="x\n" * 40)
    bob = client_of("bob")
    watched = bob.call("subscribe", {"task_id": task_id})
    assert watched["ok"], watched
    assert error_code(bob.call("cancel", {"task_id": task_id})) == "not_found"
    assert task_id not in [t["task_id"] for t in bob.call("list")["tasks"]]
    final = bob.wait_terminal(task_id, timeout=30)
    assert final["state"] == "succeeded" and final["result"]["lines"] == 40
    # Over HTTP too: readable by id, not cancellable.
    carol = signed_in(host, "carol")
    assert carol.get(f"{host}/api/tasks/{task_id}", timeout=5).json()["task"]["seq"] >= 1
    refused = carol.post(f"{host}/api/tasks/{task_id}/cancel", json={}, timeout=5)
    assert refused.status_code == 404


def test_a_group_built_in_code_is_one_monotonic_bar(host: str, client_of) -> None:
    task_id = started_by_view(signed_in(host, "ann"), f"{host}/batch")
    ann = client_of("ann")
    first = ann.call("subscribe", {"task_id": task_id})["task"]
    assert first["kind"] == "album" and len(first["children"]) == 3
    final = ann.wait_terminal(task_id, timeout=30)
    assert final["state"] == "succeeded" and final["percent"] == 100
    percents = [p["percent"] or 0 for p in ann.pushes_for(task_id)]
    assert percents == sorted(percents)


def test_the_hosts_own_socketio_server_serves_its_event_and_the_bars(host: str, client_of) -> None:
    own = socketio.Client(reconnection=False)
    own.connect(host, namespaces=["/host"], transports=["websocket"], wait_timeout=5)
    try:
        assert own.call("hello", "ann", namespace="/host", timeout=5) == "hello ann"
    finally:
        own.disconnect()
    ann = client_of("ann")  # /progress on the same server
    final = ann.wait_terminal(ann.start("thumbnails", images=3, seconds_each=0.01)["task_id"])
    assert final["state"] == "succeeded"
    assert len(ann.pushes_for(final["task_id"])) >= 2  # pushed on the host's channel


def test_an_unreadable_event_on_the_hosts_own_server_is_acked_invalid(host: str) -> None:
    page = RawSocketIO(host, cookie_header(signed_in(host, "ann")))
    try:
        (answer,) = strict_json(page.call('["start",' + "[" * 30_000 + "]" * 30_000 + "]"))
        assert error_code(answer) == "invalid"
        assert strict_json(page.call('["list"]'))[0]["ok"] is True
    finally:
        page.close()
    own = socketio.Client(reconnection=False)  # and the host's own event still works
    own.connect(host, namespaces=["/host"], transports=["websocket"], wait_timeout=5)
    try:
        assert own.call("hello", "ann", namespace="/host", timeout=5) == "hello ann"
    finally:
        own.disconnect()

def test_the_hosts_own_api_blueprint_and_public_pages_are_left_alone(host: str) -> None:
    assert requests.get(f"{host}/api/about", timeout=5).json() == {"app": "docsapp"}
    about = requests.get(f"{host}/about", timeout=5)
    assert about.status_code == 200
    assert "Set-Cookie" not in about.headers and "Cookie" not in about.headers.get("Vary", "")


def test_a_form_post_to_the_host_view_leads_to_a_page_that_follows_the_bar(
    browser: Browser, host: str
) -> None:
    context = browser.new_context(base_url=host)
    page = context.new_page()
    errors = page_errors(page)
    page.goto("/login?name=dora")
    page.get_by_label("Text to convert").fill("\n".join(["line"] * 30))
    page.get_by_role("button", name="Convert").click()
    page.wait_for_url("**/follow/*")
    bar = page.get_by_role("progressbar")
    expect(page.locator("#task [data-state]").first).to_have_attribute(
        "data-state", "succeeded", timeout=20000
    )
    expect(bar).to_have_attribute("aria-valuenow", "100")
    context.close()
    assert errors == [], errors
