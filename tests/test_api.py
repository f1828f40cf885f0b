"""The HTTP JSON API against the live stack, and against its own OpenAPI description."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from progressbar.settings import Settings
from tests.stack import (
    ProgressClient,
    Stack,
    cookie_header,
    error_code,
    identity_cookie,
    strict_json,
    wait_until,
)


def session_for(web: str) -> requests.Session:
    """A client with its own identity, as a script keeping its cookies would be."""
    http = requests.Session()
    http.get(web + "/", timeout=5).raise_for_status()
    return http


def post(http: requests.Session, url: str, body: object = None, **kw) -> requests.Response:
    return http.post(url, json={} if body is None else body, timeout=10, **kw)


def wait_state(http: requests.Session, url: str, states: set[str], timeout: float = 20) -> dict:
    """The task at `url` once it is in one of `states`; fails after `timeout`."""

    def reached() -> dict | None:
        task = http.get(url, timeout=5).json()["task"]
        return task if task["state"] in states else None

    return wait_until(reached, timeout, f"{url} in {sorted(states)}", interval=0.1)


def test_start_follow_and_list_over_http(web: str, connect) -> None:
    http = session_for(web)
    answer = post(http, f"{web}/api/tasks", {"kind": "primes", "params": {"limit": 10**6}})
    assert answer.status_code == 202
    task = answer.json()["task"]
    assert answer.headers["Location"] == f"/api/tasks/{task['task_id']}"
    assert task["state"] == "queued" and task["seq"] == 1
    final = wait_state(http, web + answer.headers["Location"], {"succeeded", "failed"})
    assert final["state"] == "succeeded" and final["result"] == 78498
    assert [t["task_id"] for t in http.get(f"{web}/api/tasks", timeout=5).json()["tasks"]] == [
        task["task_id"]
    ]
    # The same identity over Socket.IO sees the same task.
    assert connect(cookie_header(http)).call("list")["tasks"][0]["task_id"] == task["task_id"]


def test_http_errors_use_the_protocol_codes(web: str) -> None:
    http = session_for(web)
    cases = [
        ({"kind": "teleport"}, 400, "unknown_kind"),
        ({"kind": "simulate", "params": {"duration": -1}}, 400, "invalid"),
        ({"kind": "simulate", "extra": 1}, 400, "invalid"),
        (["simulate"], 400, "invalid"),
    ]
    for body, status, code in cases:
        answer = post(http, f"{web}/api/tasks", body)
        assert (answer.status_code, error_code(answer.json())) == (status, code), body
    assert (
        "params.duration"
        in post(http, f"{web}/api/tasks", {"kind": "simulate", "params": {"duration": 0}}).json()[
            "error"
        ]["message"]
    )
    missing = http.get(f"{web}/api/tasks/nope", timeout=5)
    assert (missing.status_code, error_code(missing.json())) == (404, "not_found")
    broken = http.post(
        f"{web}/api/tasks", data="{", timeout=5, headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["ok"] is False
    assert http.get(f"{web}/api/tasks", timeout=5).json()["tasks"] == []  # nothing changed


def test_cross_site_requests_are_refused(web: str) -> None:
    http = session_for(web)
    form = http.post(f"{web}/api/tasks", data={"kind": "primes"}, timeout=5)
    assert form.status_code == 415
    foreign = post(
        http, f"{web}/api/tasks", {"kind": "primes"}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and error_code(foreign.json()) == "invalid"
    same = post(
        http,
        f"{web}/api/tasks",
        {"kind": "primes", "params": {"limit": 100}},
        headers={"Origin": web},
    )
    assert same.status_code == 202
    assert len(http.get(f"{web}/api/tasks", timeout=5).json()["tasks"]) == 1


def test_cancel_over_http_and_ownership(web: str) -> None:
    owner, stranger = session_for(web), session_for(web)
    task = post(owner, f"{web}/api/tasks", {"kind": "simulate", "params": {"duration": 60}}).json()[
        "task"
    ]
    url = f"{web}/api/tasks/{task['task_id']}"
    wait_state(owner, url, {"running"})
    assert stranger.get(url, timeout=5).status_code == 404
    refused = post(stranger, url + "/cancel")
    assert (refused.status_code, error_code(refused.json())) == (404, "not_found")

    answer = post(owner, url + "/cancel")
    assert answer.status_code == 200 and answer.json()["outcome"] == "requested"
    assert wait_state(owner, url, {"cancelled"}, timeout=5)["state"] == "cancelled"
    again = post(owner, url + "/cancel").json()
    assert again["outcome"] == "finished" and again["task"]["state"] == "cancelled"


def test_limit_is_429(web: str) -> None:
    http = session_for(web)
    ids = []
    try:
        for _ in range(Settings().max_active_tasks):
            answer = post(
                http, f"{web}/api/tasks", {"kind": "simulate", "params": {"duration": 60}}
            )
            ids.append(answer.json()["task"]["task_id"])
        over = post(http, f"{web}/api/tasks", {"kind": "simulate"})
        assert (over.status_code, error_code(over.json())) == (429, "limit")
    finally:
        for task_id in ids:
            post(http, f"{web}/api/tasks/{task_id}/cancel")


def test_the_api_conforms_to_its_openapi_description(tmp_path: Path) -> None:
    """schemathesis throws generated requests at every operation. A stack of its
    own, with no worker: accepted tasks just wait in its own Redis."""
    with Stack(
        tmp_path, workers=(), webs=("web-openapi",), env_extra={"MAX_ACTIVE_TASKS": "100000"}
    ) as stack:
        base = stack.base_url
        cookie = identity_cookie(base)
        har = tmp_path / "schemathesis.har"
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base}/api/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,"
                "response_schema_conformance,response_headers_conformance",
                "--max-examples",
                "40",
                "--seed",
                "1",
                "--no-color",
                "-H",
                f"Cookie: {cookie}",
                "-H",
                f"Origin: {base}",
                # Every request and answer, to check what it was told below.
                "--report",
                "har",
                "--report-har-path",
                str(har),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            # It keeps a cache and an example database under ./.schemathesis:
            # in the test's folder, not the repository.
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
        assert generated and int(generated[1]) == int(generated[2]) >= 100, run.stdout[-2000:]
        # Everything it was told was accepted is there, for that identity.
        accepted = {
            json.loads(entry["response"]["content"]["text"])["task"]["task_id"]
            for entry in json.loads(har.read_text())["log"]["entries"]
            if entry["request"]["method"] == "POST" and entry["response"]["status"] == 202
        }
        client = ProgressClient(base, cookie)
        try:
            listed = client.call("list")
        finally:
            client.close()
        assert listed["ok"]
        assert accepted, "schemathesis started no task"
        assert accepted <= {task["task_id"] for task in listed["tasks"]}


def memory_mb(pid: int) -> dict[str, int]:
    """A process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


class Blanks:
    """A request body of `size` spaces, made as it is sent: the test holds none of it."""

    def __init__(self, size: int) -> None:
        self.left = size

    def __len__(self) -> int:  # requests sends it as Content-Length
        return self.left

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return b" " * size


def test_a_body_over_64_kb_is_refused_without_being_read(stack: Stack, web: str) -> None:
    http = session_for(web)
    pid = stack.web.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # its peak starts from now
    before = memory_mb(pid)
    answer = http.post(
        f"{web}/api/tasks",
        data=Blanks(200 * 2**20),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    after = memory_mb(pid)
    print(f"200 MB body: web RSS {before['VmRSS']} MB before, peak {after['VmHWM']} MB since")
    assert answer.status_code == 413
    assert error_code(strict_json(answer.text)) == "invalid"
    assert "64 KB" in answer.json()["error"]["message"]
    assert after["VmHWM"] - before["VmRSS"] < 16, (before, after)
    assert http.get(f"{web}/api/tasks", timeout=5).json() == {"ok": True, "tasks": []}


def test_json_nested_too_deeply_is_invalid(web: str) -> None:
    http = session_for(web)
    balanced = '{"kind":' + "[" * 30_000 + "]" * 30_000 + "}"  # 60 KB, under the limit
    for body in ("[" * 50_000, balanced):
        answer = http.post(
            f"{web}/api/tasks", data=body, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert answer.status_code == 400, answer.text
        assert error_code(strict_json(answer.text)) == "invalid"
    assert http.get(f"{web}/api/tasks", timeout=5).json() == {"ok": True, "tasks": []}
