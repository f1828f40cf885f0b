"""`python -m bench.flood [--seconds 10]`: one hostile client floods the stack
while an honest newcomer starts a short task.

The stack runs as the Procfile runs it (one prefork worker with its default
slots, one `python app.py`), with one trusted proxy in front: every request
carries `X-Forwarded-For`, so the flood comes from one client address and the
newcomer from another, as they would through nginx.

The flood, for `--seconds`, all from that one address: HTTP starts without
cookies (each a new identity), HTTP starts under one identity, groups of 6
hour-long parts, the hidden `ticker` kind, and Socket.IO connections without
cookies that start ten tasks each. Printed: what was accepted and refused (by
error code), how long the newcomer's 0.5 s task took from start to
`succeeded` during the flood and after it, and the peaks of Redis memory and
of the web process's RSS.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis
import requests
import socketio

from bench.stack import BenchStack, rss_mb, scenario_parser
from progressbar.snapshot import TERMINAL_STATES
from tests.stack import as_shipped

FLOODER = "203.0.113.7"
NEWCOMER = "198.51.100.23"
LONG = {"kind": "simulate", "params": {"duration": 30}}
GROUP = {"kind": "batch", "params": {"parts": 6, "duration": 3600}}
HIDDEN = {"kind": "ticker", "params": {"updates": 10**6, "rate": 0.1}}
NEWCOMER_WAIT = 120.0


def outcome(response: requests.Response) -> str:
    """'ok', or the refusal's error code (or HTTP status)."""
    try:
        body = response.json()
    except ValueError:
        return f"http {response.status_code}"
    if response.ok:
        return "ok"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else f"http {response.status_code}"


def refused_code(data: Any) -> str | None:
    """The error code a refused Socket.IO connection carries, if any: the
    server's refusal is `{"message": ..., "data": {"code": ..., "message": ...}}`."""
    error = data.get("data") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


class Flood:
    """Clients that start tasks as fast as they can until `stop` is set."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.counts: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    def count(self, client: str, what: str) -> None:
        with self._lock:
            self.counts.setdefault(client, Counter())[what] += 1

    def http(self, client: str, payload: dict[str, Any], keep_cookie: bool) -> None:
        session = requests.Session()
        session.headers["X-Forwarded-For"] = FLOODER
        while not self.stop.is_set():
            if not keep_cookie:
                session.cookies.clear()
            try:
                answer = session.post(f"{self.base_url}/api/tasks", json=payload, timeout=10)
                self.count(client, outcome(answer))
            except requests.RequestException as exc:
                self.count(client, type(exc).__name__)

    def socketio(self, client: str) -> None:
        while not self.stop.is_set():
            sio = socketio.Client(reconnection=False)
            refusal: list[Any] = []
            sio.on("connect_error", refusal.append, namespace="/progress")
            try:
                sio.connect(
                    self.base_url,
                    namespaces=["/progress"],
                    headers={"X-Forwarded-For": FLOODER},
                    transports=["websocket"],
                    wait_timeout=10,
                )
                for _ in range(10):
                    answer = sio.call("start", LONG, namespace="/progress", timeout=10)
                    self.count(client, "ok" if answer.get("ok") else answer["error"]["code"])
            except socketio.exceptions.ConnectionError as exc:
                code = refused_code(refusal[0]) if refusal else None
                self.count(client, f"connection refused: {code}" if code else f"{exc}"[:80])
            except Exception as exc:  # counted, and the flood goes on
                self.count(client, type(exc).__name__)
            finally:
                sio.disconnect()

    def clients(self) -> dict[str, Callable[[], None]]:
        return {
            "http, no cookie (3 threads)": lambda: self.http("http, no cookie", LONG, False),
            "http, one identity": lambda: self.http("http, one identity", LONG, True),
            "http, groups of 6": lambda: self.http("http, groups of 6", GROUP, False),
            "http, hidden kind": lambda: self.http("http, hidden kind", HIDDEN, False),
            "socket.io, no cookie": lambda: self.socketio("socket.io, no cookie"),
        }


def newcomer_latency(base_url: str) -> float | None:
    """Seconds from a newcomer's start of a 0.5 s task to `succeeded`; None
    if it was refused or had not succeeded within NEWCOMER_WAIT."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = NEWCOMER
    session.get(f"{base_url}/progressbar/identity", timeout=10)
    started = time.monotonic()
    answer = session.post(
        f"{base_url}/api/tasks",
        json={"kind": "simulate", "params": {"duration": 0.5}},
        timeout=30,
    )
    if not answer.ok:
        print(f"  newcomer refused: {answer.status_code} {answer.text[:200]}")
        return None
    task_id = answer.json()["task"]["task_id"]
    while time.monotonic() - started < NEWCOMER_WAIT:
        task = session.get(f"{base_url}/api/tasks/{task_id}", timeout=30).json()["task"]
        if task["state"] in TERMINAL_STATES:
            return time.monotonic() - started if task["state"] == "succeeded" else None
        time.sleep(0.05)
    return None


class Peaks:
    """Samples Redis's used memory and the web process's RSS twice a second."""

    def __init__(self, redis_url: str, web_pid: int) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.web_pid = web_pid
        self.redis_mb = self.rss_mb = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self) -> tuple[float, float]:
        used = int(self.client.info("memory")["used_memory"]) / 2**20
        return used, rss_mb(self.web_pid)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                used, rss = self.sample()
            except redis.RedisError:
                continue
            self.redis_mb, self.rss_mb = max(self.redis_mb, used), max(self.rss_mb, rss)


def flood(seconds: float, env: dict[str, str]) -> dict[str, Any]:
    """The flood and its figures, on a stack with the shipped limits and one
    trusted proxy; `env` adds settings."""
    shipped = {**as_shipped(), "START_HIDDEN_KINDS": "0", "TRUSTED_PROXIES": "1"}
    with BenchStack(env_extra={**shipped, **env}) as stack:
        base = stack.base_url
        peaks = Peaks(stack.redis_url, stack.web.pid)
        idle_redis, idle_rss = peaks.sample()
        quiet = newcomer_latency(base)
        peaks.thread.start()
        attack = Flood(base)
        threads = [
            threading.Thread(target=run, daemon=True)
            for name, run in attack.clients().items()
            for _ in range(3 if "3 threads" in name else 1)
        ]
        for thread in threads:
            thread.start()
        time.sleep(min(2.0, seconds / 2))
        during: list[float | None] = []
        newcomer = threading.Thread(target=lambda: during.append(newcomer_latency(base)))
        newcomer.start()
        time.sleep(max(0.0, seconds - min(2.0, seconds / 2)))
        attack.stop.set()
        for thread in threads:
            thread.join(30)
        newcomer.join(NEWCOMER_WAIT + 30)
        after = newcomer_latency(base)
        peaks.stop.set()
        end_redis, end_rss = peaks.sample()
        return {
            "seconds": seconds,
            "counts": {k: dict(v) for k, v in attack.counts.items()},
            "accepted": sum(c["ok"] for c in attack.counts.values()),
            "refused": sum(sum(c.values()) - c["ok"] for c in attack.counts.values()),
            "newcomer_s": {
                "before": quiet,
                "during": during[0] if during else None,
                "after": after,
            },
            "redis_mb": {"idle": idle_redis, "peak": peaks.redis_mb, "end": end_redis},
            "web_rss_mb": {"idle": idle_rss, "peak": peaks.rss_mb, "end": end_rss},
        }


def show(result: dict[str, Any]) -> None:
    def secs(value: float | None) -> str:
        return "never (refused, failed or > 120 s)" if value is None else f"{value:.2f} s"

    print(f"flood of {result['seconds']:g} s from one client address")
    for client, counts in result["counts"].items():
        print(f"  {client:<24} {json.dumps(counts, sort_keys=True)}")
    print(f"  accepted {result['accepted']}, refused {result['refused']}")
    for when, value in result["newcomer_s"].items():
        print(f"  newcomer's 0.5 s task, {when + ' the flood':<18} {secs(value)}")
    for name, unit in (("redis_mb", "Redis used memory"), ("web_rss_mb", "web RSS")):
        figures = result[name]
        print(
            f"  {unit:<18} idle {figures['idle']:.1f} MB, peak {figures['peak']:.1f} MB,"
            f" end {figures['end']:.1f} MB"
        )


def main() -> None:
    parser = scenario_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    result = flood(args.seconds, dict(args.set))
    show(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
