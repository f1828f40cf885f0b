"""Operator settings that do what they say: ALLOWED_ORIGINS, TLS Redis URLs,
Redis at `maxmemory`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis
import requests
import socketio

from progressbar.settings import Settings
from tests.stack import (
    ROOT,
    Process,
    ProgressClient,
    Stack,
    error_code,
    extra_web,
    free_port,
    identity_cookie,
    process_env,
    redis_server_binary,
    start_web,
    start_worker,
    wait_until,
)

LISTED = "https://app.example"
FILLERS = 64


def connects(base_url: str, origin: str, transport: str) -> bool:
    """Does a Socket.IO connection whose requests carry this Origin open?"""
    if transport == "websocket":
        client = socketio.Client(websocket_extra_options={"origin": origin})
        headers = {}
    else:
        client = socketio.Client()
        headers = {"Origin": origin}
    try:
        client.connect(
            base_url,
            namespaces=["/progress"],
            transports=[transport],
            headers=headers,
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        return False
    client.disconnect()
    return True


def api_accepts(base_url: str, origin: str) -> bool:
    """Does the HTTP API take a state change (a cancel) from this Origin?"""
    answer = requests.post(
        f"{base_url}/api/tasks/no-such-task/cancel",
        json={},
        headers={"Origin": origin, "Cookie": identity_cookie(base_url)},
        timeout=5,
    )
    return answer.status_code != 403


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_allowed_origins_add_to_the_pages_own(
    stack_env: dict[str, str], logs_dir: Path, transport: str
) -> None:
    env = {**stack_env, "ALLOWED_ORIGINS": f"{LISTED}, https://admin.example"}
    with extra_web(env, logs_dir, f"web-origins-{transport}") as base:
        assert connects(base, base, transport)  # the app's own page
        assert connects(base, LISTED, transport)
        assert not connects(base, "http://evil.example", transport)
        # The HTTP API draws the same line.
        assert api_accepts(base, base) and api_accepts(base, LISTED)
        assert not api_accepts(base, "http://evil.example")


def make_certificates(folder: Path) -> dict[str, Path]:
    """A self-signed CA, and a server certificate it signed for 127.0.0.1."""
    files = {name: folder / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = partial(subprocess.run, check=True, capture_output=True, cwd=folder)
    run(
        ["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt"]
        + ["-days", "1", "-subj", "/CN=progressbar test CA"]
    )
    run(
        ["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr"]
        + ["-subj", "/CN=127.0.0.1"]
    )
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key"]
        + ["-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.cnf"]
    )
    return files


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """A redis-server that speaks only TLS: its port, the CA file, the log folder."""
    folder = tmp_path_factory.mktemp("tls")
    certs = make_certificates(folder)
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    args += [
        "--tls-cert-file",
        str(certs["server.crt"]),
        "--tls-key-file",
        str(certs["server.key"]),
    ]
    args += ["--tls-ca-cert-file", str(certs["ca.crt"]), "--tls-auth-clients", "no"]
    args += ["--save", "", "--appendonly", "no"]
    process = Process([redis_server_binary(), *args], dict(os.environ), folder / "redis.log")
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"
        wait_until(redis.Redis.from_url(url).ping, 10, "TLS redis-server answering PING")
        yield port, certs["ca.crt"], folder
    finally:
        process.stop()


@pytest.mark.parametrize(
    "query",
    ["ssl_cert_reqs=CERT_NONE", "ssl_cert_reqs=required&ssl_ca_certs={ca}"],
    ids=["CERT_NONE", "ca-file-required"],
)
def test_a_tls_redis_serves_the_web_process_the_worker_and_the_cli(
    tls_redis: tuple[int, Path, Path], query: str
) -> None:
    port, ca, logs = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?{query.format(ca=ca)}"
    env = process_env(url, "tls")
    name = query.split("=")[1].split("&")[0].lower()
    worker = start_worker(env, logs, f"tls-{name}", "-c", "1")
    try:
        web_port = free_port()
        web = start_web([sys.executable, "app.py"], env, web_port, logs, f"tls-web-{name}")
        try:
            base = f"http://127.0.0.1:{web_port}"
            client = ProgressClient(base, identity_cookie(base))
            try:
                task = client.start("primes", limit=1000)
                final = client.wait_terminal(task["task_id"], timeout=30)
                assert (final["state"], final["result"]) == ("succeeded", 168)
            finally:
                client.close()
            assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True
        finally:
            web.stop()
        cli = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "progress", "start", "primes"]
            + ["--limit", "1000"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip().splitlines()[-1] == "succeeded: 168"
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("CERT_NONE", "none"),
        ("cert_none", "none"),
        ("None", "none"),
        ("CERT_OPTIONAL", "optional"),
        ("optional", "optional"),
        ("CERT_REQUIRED", "required"),
        ("Required", "required"),
    ],
)
def test_every_ssl_cert_reqs_spelling_reads_as_one(given: str, read: str) -> None:
    settings = Settings.from_config(
        {"PROGRESSBAR_REDIS_URL": f"rediss://h:1/0?ssl_cert_reqs={given}"}
    )
    assert settings.redis_url == f"rediss://h:1/0?ssl_cert_reqs={read}"


def test_a_tls_url_without_ssl_cert_reqs_verifies_and_a_bad_one_is_refused() -> None:
    assert Settings.from_config({"PROGRESSBAR_REDIS_URL": "rediss://h:1/0"}).redis_url == (
        "rediss://h:1/0?ssl_cert_reqs=required"
    )
    plain = "redis://127.0.0.1:6379/0"
    assert Settings.from_config({"PROGRESSBAR_REDIS_URL": plain}).redis_url == plain
    with pytest.raises(ValueError, match="PROGRESSBAR_REDIS_URL: ssl_cert_reqs='maybe'"):
        Settings.from_config({"PROGRESSBAR_REDIS_URL": "rediss://h:1/0?ssl_cert_reqs=maybe"})


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("maxmemory"),
        secret="maxmemory",
        workers=("full-worker",),
        webs=("full-web",),
        worker_args=("-c", "1"),
    ) as stack:
        yield stack


def fill_redis(client: redis.Redis) -> None:
    """Put 4 MB in Redis, then set its `maxmemory` 1 MB below what it uses,
    without eviction: Redis is full, and stays so however little it frees."""
    for n in range(FILLERS):
        client.set(f"filler:{n}", b"x" * 64 * 1024)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used - 1024 * 1024)


def test_at_maxmemory_owners_still_read_their_tasks(full_stack: Stack) -> None:
    base = full_stack.base_url
    cookie = identity_cookie(base)
    client = ProgressClient(base, cookie)
    http = requests.Session()
    headers = {"Cookie": cookie}
    admin = redis.Redis.from_url(full_stack.redis_url)
    try:
        done = client.start("primes", limit=1000)["task_id"]
        assert client.wait_terminal(done)["state"] == "succeeded"
        fill_redis(admin)

        listed = http.get(f"{base}/api/tasks", headers=headers, timeout=5)
        assert listed.status_code == 200, listed.text
        assert [t["task_id"] for t in listed.json()["tasks"]] == [done]
        one = http.get(f"{base}/api/tasks/{done}", headers=headers, timeout=5)
        assert one.status_code == 200 and one.json()["task"]["state"] == "succeeded"
        assert [t["task_id"] for t in client.call("list")["tasks"]] == [done]
        assert client.call("subscribe", {"task_id": done})["task"]["state"] == "succeeded"

        # A start is refused, clearly, and leaves nothing behind.
        refused = client.call("start", {"kind": "primes", "params": {"limit": 1000}})
        # `busy` from the memory guard, or `unavailable` if Redis refused first.
        assert error_code(refused) in ("busy", "unavailable"), refused
        posted = http.post(f"{base}/api/tasks", json={"kind": "primes"}, headers=headers, timeout=5)
        assert posted.status_code == 503 and error_code(posted.json()) in ("busy", "unavailable")
        health = http.get(f"{base}/healthz", timeout=5).json()
        assert health["status"] == "memory_pressure", health
        assert health["redis"]["memory"]["pressure"] is True
        assert (
            health["redis"]["memory"]["used_bytes"] >= 0.9 * health["redis"]["memory"]["max_bytes"]
        )
    finally:
        admin.delete(*(f"filler:{n}" for n in range(FILLERS)))
        admin.config_set("maxmemory", 0)
        admin.close()
    # Room again: the service is as it was.
    # The memory guard reads Redis's memory at most once a second.
    started = wait_until(
        lambda: client.call("start", {"kind": "primes", "params": {"limit": 1000}}).get("task"),
        10,
        "a start accepted again",
        interval=0.2,
    )
    again = started["task_id"]
    assert client.wait_terminal(again, timeout=30)["state"] == "succeeded"
    assert [t["task_id"] for t in client.call("list")["tasks"]] == [again, done]
    wait_until(
        lambda: http.get(f"{base}/healthz", timeout=5).json()["status"] == "ok", 10, "healthz ok"
    )
    client.close()
