"""Session fixtures that start the real stack: redis-server, the web process, a worker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.stack import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    Process,
    ProgressClient,
    Stack,
    cookie_header,
    identity_cookie,
    signed_in,
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def stack(logs_dir: Path) -> Iterator[Stack]:
    """The session's stack. Each part starts when a test first needs it (the
    store's tests want Redis alone) and everything stops at the end."""
    stack = Stack(logs_dir)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def redis_url(stack: Stack) -> str:
    stack.start_redis()
    return stack.redis_url


@pytest.fixture(scope="session")
def stack_env(stack: Stack, redis_url: str) -> dict[str, str]:
    return stack.env


@pytest.fixture(scope="session")
def worker(stack: Stack, redis_url: str) -> Process:
    return stack.start_worker("worker")


@pytest.fixture(scope="session")
def web(stack: Stack, worker: Process) -> str:
    """Base URL of `python app.py` (eventlet), with a worker behind it."""
    stack.start_web("web")
    return stack.base_url


@pytest.fixture
def cookie(web: str) -> str:
    """A fresh identity: the session cookie the page would have set."""
    return identity_cookie(web)


@pytest.fixture
def client_of(host: str) -> Iterator:
    """Socket.IO clients of a test app (its module's `host`), each signed in
    as a name; all are closed after the test."""
    clients: list[ProgressClient] = []

    def open_client(name: str) -> ProgressClient:
        client = ProgressClient(host, cookie_header(signed_in(host, name)))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def connect(web: str) -> Iterator:
    """Open Socket.IO clients on /progress; all are closed after the test."""
    clients: list[ProgressClient] = []

    def open_client(cookie: str | None = None, base_url: str = web) -> ProgressClient:
        client = ProgressClient(base_url, cookie)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


# The wheel `pip install .` builds, shared by the apps that run from it.
@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the wheel installed; its dependencies come from this venv."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check"]
        + ["--target", str(target), str(wheel)],
        check=True,
    )
    return target



