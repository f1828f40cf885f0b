"""Session fixtures that start the real stack: redis-server, the web process, a worker."""

from __future__ import annotations

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
    free_port,
    identity_cookie,
    process_env,
    start_redis,
    start_web,
    start_worker,
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
def redis_url(logs_dir: Path) -> Iterator[str]:
    process, url = start_redis(logs_dir)
    yield url
    process.stop()


@pytest.fixture(scope="session")
def stack_env(redis_url: str, logs_dir: Path) -> dict[str, str]:
    return process_env(redis_url, "test-secret")


@pytest.fixture(scope="session")
def worker(stack_env: dict[str, str], logs_dir: Path) -> Iterator[Process]:
    process = start_worker(stack_env, logs_dir, "worker")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def web(stack_env: dict[str, str], logs_dir: Path, worker: Process) -> Iterator[str]:
    """Base URL of `python app.py` (eventlet), with a worker behind it."""
    port = free_port()
    process = start_web([sys.executable, "app.py"], stack_env, port, logs_dir, "web")
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture
def cookie(web: str) -> str:
    """A fresh identity: the session cookie the page would have set."""
    return identity_cookie(web)


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


__all__ = ["ROOT"]
