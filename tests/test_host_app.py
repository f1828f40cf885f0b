"""A second app adopts progressbar as a library: the wheel that `pip install .`
builds, a minimal Flask app of its own (tests/hostapp: its own task kind, its
own identities, its own page), a real worker, Redis, Socket.IO and Chromium.

The app runs from the installed wheel, not from this checkout: its processes
start in tests/hostapp with only the wheel's folder on PYTHONPATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
import requests
import socketio
from celery import Celery
from playwright.sync_api import Browser, expect

import progressbar
from tests.stack import (
    ROOT,
    Process,
    ProgressClient,
    cookie_header,
    error_code,
    free_port,
    page_errors,
    process_env,
    start_web,
    start_worker,
)

HOSTAPP = ROOT / "tests" / "hostapp"
DIST_INFO = f"flask_progressbar-{progressbar.__version__}.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` would install, built from a copy of this
    checkout's files (no stale build/ folder can slip anything in)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    (source / "node_modules").symlink_to(ROOT / "node_modules")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", "-w", str(out), str(source)],
        check=True,
        cwd=source,
    )
    (found,) = out.glob("flask_progressbar-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the wheel installed; its dependencies come from this venv."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
        + ["--target", str(target), str(wheel)],
        check=True,
    )
    return target


@pytest.fixture(scope="module")
def host_env(site: Path, redis_url: str) -> dict[str, str]:
    # A Redis database of its own: the demo's worker must not take its tasks.
    url = redis_url.rsplit("/", 1)[0] + "/1"
    return process_env(url, "host-secret", PYTHONPATH=str(site))


@pytest.fixture(scope="module")
def host(host_env: dict[str, str], logs_dir: Path) -> Iterator[str]:
    """Base URL of the host app under `flask run`, with its own worker."""
    worker = start_worker(
        host_env, logs_dir, "hostworker", "-c", "2", app="hostapp.worker", cwd=HOSTAPP
    )
    try:
        port = free_port()
        args = [sys.executable, "-m", "flask", "--app", "hostapp", "run", "--port", str(port)]
        web: Process = start_web(args, host_env, port, logs_dir, "hostweb", cwd=HOSTAPP)
        yield f"http://127.0.0.1:{port}"
        web.stop()
    finally:
        worker.stop()


def signed_in(base_url: str, name: str) -> str:
    """The Cookie header of a browser that signed in as `name`."""
    session = requests.Session()
    session.get(f"{base_url}/login", params={"name": name}, timeout=5).raise_for_status()
    return cookie_header(session)


@pytest.fixture
def client_of(host: str) -> Iterator:
    clients: list[ProgressClient] = []

    def open_client(name: str) -> ProgressClient:
        client = ProgressClient(host, signed_in(host, name))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def test_the_wheel_holds_the_library_with_its_metadata_and_browser_client(
    wheel: Path, site: Path, host_env: dict[str, str]
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = Parser().parsestr(
            archive.read(f"{DIST_INFO}/METADATA").decode()
        )
    # Installed as flask-progressbar (a name free on PyPI), imported as progressbar.
    assert meta["Name"] == "flask-progressbar"
    assert meta["Version"] == progressbar.__version__
    requires = " ".join(meta.get_all("Requires-Dist") or [])
    for dependency in ("Flask", "Flask-SocketIO", "python-socketio", "celery", "redis"):
        assert dependency in requires
    assert "progressbar/static/index.js" in names
    assert "progressbar/static/vendor/socket.io.esm.min.js" in names
    assert "progressbar/py.typed" in names
    # Both processes' code and the Lua scripts the store loads from the package.
    assert {"progressbar/web/namespace.py", "progressbar/worker/task.py"} <= names
    assert "progressbar/lua/write.lua" in names
    assert meta["License-Expression"] == "MIT"
    assert f"{DIST_INFO}/licenses/LICENSE" in names
    # rich only for the terminal watcher, as an extra.
    always = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert not [r for r in always if r.startswith("rich")]
    # The library alone: no demo, no tests.
    assert {name.split("/")[0] for name in names} == {
        "progressbar",
        DIST_INFO,
    }
    where = subprocess.run(
        [sys.executable, "-c", "import progressbar; print(progressbar.__file__)"],
        cwd=HOSTAPP,
        env=host_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(site))


def test_the_host_kind_runs_to_its_result_for_its_owner_only(client_of) -> None:
    ann = client_of("ann")
    task = ann.start("thumbnails", images=12, seconds_each=0.05)
    assert task["kind"] == "thumbnails" and task["state"] == "queued"
    final = ann.wait_terminal(task["task_id"], timeout=30)
    assert final["state"] == "succeeded", final
    assert final["result"] == {"thumbnails": 12}
    assert (final["current"], final["total"], final["percent"]) == (12, 12, 100)
    pushes = ann.pushes_for(task["task_id"])
    seqs = [p["seq"] for p in pushes]
    assert seqs == sorted(set(seqs))
    assert any(p["state"] == "running" and 0 < p["current"] < 12 for p in pushes)

    # Ann in another tab sees it; Bob, another signed-in user, does not.
    listed = client_of("ann").call("list")
    assert [t["task_id"] for t in listed["tasks"]] == [task["task_id"]]
    bob = client_of("bob").call("subscribe", {"task_id": task["task_id"]})
    assert bob["error"]["code"] == "not_found"


def test_the_host_kinds_params_are_checked_and_its_errors_reach_the_owner(client_of) -> None:
    ann = client_of("ann")
    too_many = ann.call("start", {"kind": "thumbnails", "params": {"images": 501}})
    assert too_many["error"]["code"] == "invalid"
    assert "params.images" in too_many["error"]["message"]
    # The library brings no kinds of its own: the demo's are not here.
    assert ann.call("start", {"kind": "simulate"})["error"]["code"] == "unknown_kind"

    task = ann.start("thumbnails", images=5, seconds_each=0.01, broken=3)
    final = ann.wait_terminal(task["task_id"], timeout=30)
    assert (final["state"], final["error"]) == ("failed", "Image 3 cannot be read")
    assert final["current"] == 2


@pytest.fixture
def host_celery(host: str, host_env: dict[str, str]) -> Iterator[Celery]:
    """A Celery client of the host's broker and result backend."""
    celery = Celery(broker=host_env["REDIS_URL"], backend=host_env["REDIS_URL"])
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
    assert host_celery.send_task("hostapp.tasks.add", args=(2, 3)).get(timeout=10) == 5


def signed_in_session(base_url: str, name: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base_url}/login", params={"name": name}, timeout=5).raise_for_status()
    return session


def started_by_view(session: requests.Session, url: str, **form: str) -> str:
    """The id of the task a host view started, from the page it redirects to."""
    answer = session.post(url, data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    assert location.startswith("/follow/")
    return location.removeprefix("/follow/")


def test_a_host_view_starts_a_tracked_task_with_server_arguments(host: str, client_of) -> None:
    task_id = started_by_view(signed_in_session(host, "ann"), f"{host}/convert", text="a\nb\nc")
    ann = client_of("ann")
    watched = ann.call("subscribe", {"task_id": task_id})
    assert watched["ok"] and watched["task"]["kind"] == "hostapp.tasks.convert"
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
    ann = signed_in_session(host, "ann")
    task_id = started_by_view(ann, f"{host}/convert?shared=1", text="x\n" * 40)
    bob = client_of("bob")
    watched = bob.call("subscribe", {"task_id": task_id})
    assert watched["ok"], watched
    assert error_code(bob.call("cancel", {"task_id": task_id})) == "not_found"
    assert task_id not in [t["task_id"] for t in bob.call("list")["tasks"]]
    final = bob.wait_terminal(task_id, timeout=30)
    assert final["state"] == "succeeded" and final["result"]["lines"] == 40
    # Over HTTP too: readable by id, not cancellable.
    carol = signed_in_session(host, "carol")
    assert carol.get(f"{host}/api/tasks/{task_id}", timeout=5).json()["task"]["seq"] >= 1
    refused = carol.post(f"{host}/api/tasks/{task_id}/cancel", json={}, timeout=5)
    assert refused.status_code == 404


def test_a_group_built_in_code_is_one_monotonic_bar(host: str, client_of) -> None:
    task_id = started_by_view(signed_in_session(host, "ann"), f"{host}/batch")
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


def test_the_hosts_own_api_blueprint_and_public_pages_are_left_alone(host: str) -> None:
    assert requests.get(f"{host}/api/about", timeout=5).json() == {"app": "hostapp"}
    about = requests.get(f"{host}/about", timeout=5)
    assert about.status_code == 200
    assert "Set-Cookie" not in about.headers and "Cookie" not in about.headers.get("Vary", "")


def test_nobody_signed_in_is_refused_over_socketio_and_http(host: str) -> None:
    client = socketio.Client(reconnection=False)
    refusals: list[object] = []
    client.on("connect_error", refusals.append, namespace="/progress")
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(host, namespaces=["/progress"], transports=["websocket"], wait_timeout=5)
    client.disconnect()
    assert refusals == [
        {
            "message": "sign in to start and follow tasks",
            "data": {"code": "unauthorized", "message": "sign in to start and follow tasks"},
        }
    ]
    answer = requests.get(f"{host}/api/tasks", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


def test_the_host_page_fills_its_own_bar_in_chromium(browser: Browser, host: str) -> None:
    context = browser.new_context(base_url=host)
    page = context.new_page()
    errors = page_errors(page)
    page.goto("/login?name=carol")
    page.get_by_role("button", name="Make thumbnails").click()
    bar = page.get_by_role("progressbar")
    # Mid-way, then full: the bar the library drew into the host's own element.
    page.wait_for_function(
        """() => { const p = document.querySelector("#thumbnails progress");
                   return p && p.value > 0 && p.value < 100; }""",
        timeout=10000,
    )
    expect(page.locator("#thumbnails [data-state]").first).to_have_attribute(
        "data-state", "succeeded", timeout=20000
    )
    expect(bar).to_have_attribute("aria-valuenow", "100")
    # A reload brings the finished bar back from the server's record.
    page.reload()
    expect(page.locator("#thumbnails [data-state]").first).to_have_attribute(
        "data-state", "succeeded", timeout=5000
    )
    expect(bar).to_have_attribute("aria-valuenow", "100")
    context.close()
    assert errors == [], errors


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
