"""A second app adopts progressbar as a library: the wheel that `pip install .`
builds, a minimal Flask app of its own (tests/hostapp: its own task kind, its
own identities, its own page), a real worker, Redis, Socket.IO and Chromium.

The app runs from the installed wheel, not from this checkout: its processes
start in tests/hostapp with only the wheel's folder on PYTHONPATH.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
import requests
import socketio
from playwright.sync_api import Browser, expect

import progressbar
from tests.stack import (
    ROOT,
    free_port,
    page_errors,
    process_env,
    served_app,
)

HOSTAPP = ROOT / "tests" / "hostapp"
DIST_INFO = f"flask_progressbar-{progressbar.__version__}.dist-info"


@pytest.fixture(scope="module")
def host_env(site: Path, redis_url: str) -> dict[str, str]:
    # A Redis database of its own: the demo's worker must not take its tasks.
    url = redis_url.rsplit("/", 1)[0] + "/1"
    return process_env(url, "host-secret", PYTHONPATH=str(site))


@pytest.fixture(scope="module")
def host(host_env: dict[str, str], logs_dir: Path) -> Iterator[str]:
    """Base URL of the host app under `flask run`, with its own worker."""
    port = free_port()
    args = [sys.executable, "-m", "flask", "--app", "hostapp", "run", "--port", str(port)]
    with served_app(host_env, logs_dir, "hostapp", args, port, HOSTAPP) as base_url:
        yield base_url





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
