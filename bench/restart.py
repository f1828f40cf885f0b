"""`python -m bench.restart --watchers N --tickers T`: N open bars on one web
process (`python app.py`), each watching one of T running tickers; the web
process is restarted on its port, and every bar must come back: resubscribed
(a correct ack) and moving again (a push on its new connection).

Each bar reconnects as the browser client does (socket.io-client 4 under
`progressbar/static/connection.js` and `client.js`): a dropped transport waits
1 s ± 50% before its first try, then doubles (2 s, 4 s ± 50%) up to 5 s; a try
that gets no answer gives up after 20 s; on connect it subscribes again, with
a 5 s ack timeout, and a bar that heard nothing for 30 s asks again. It opens
as the page does by default: a polling handshake (the namespace connect on
it), then the websocket upgrade; once a websocket has worked, it reconnects
with one first. It carries its identity cookie every time.
The load generator speaks the text protocol over one aiohttp session, so that
ten thousand bars fit beside the server (see bench/connections.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.connections import (
    ACK_HEAD,
    SERVERS,
    raise_open_files,
    settle_ack,
    tree_cpu_seconds,
    tree_rss_mb,
)
from bench.fanout import start_tickers
from bench.scenarios import summary
from bench.stack import BenchStack
from tests.stack import identity_cookie

IDENTITIES = 10
NAMESPACE = "/progress"
# socket.io-client 4's defaults, which the browser client keeps.
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 5.0
JITTER = 0.5
CONNECT_TIMEOUT_S = 20.0
# progressbar/static: connection.js ACK_TIMEOUT_MS, client.js QUIET_AFTER_MS.
ACK_TIMEOUT_S = 5.0
QUIET_AFTER_S = 30.0
# The target: every bar back within this long after the restart.
TARGET_S = 30.0
GIVE_UP_S = 120.0
# The bars' first connects are spread over this long (pages open over time).
FIRST_OPEN_S = 10.0
SETTINGS = {
    "MAX_ACTIVE_TASKS": "100000",
    # As shipped: a bar that kept its cookie mints no identity when it comes back.
    "NEW_IDENTITY_RATE_LIMIT": "10/minute",
}


def log(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def backoff(attempt: int) -> float:
    """socket.io-client's delay before reconnect try `attempt` (0 first), in s."""
    ms = RECONNECT_MIN_S * 1000 * 2**attempt
    rand = random.random()
    deviation = int(rand * JITTER * ms)
    ms = ms - deviation if int(rand * 10) & 1 == 0 else ms + deviation
    return min(ms, RECONNECT_MAX_S * 1000) / 1000


class Refused(Exception):
    """A connect the server answered with an error: its code."""


def _connected(packets: list[str]) -> None:
    """Refused unless the packets hold the namespace's connect."""
    if any(p.startswith(f"40{NAMESPACE},") for p in packets):
        return
    error = next((p for p in packets if p.startswith(f"44{NAMESPACE},")), None)
    if error is None:
        raise Refused(f"no connect: {packets[0][:40]}")
    data = json.loads(error[len(f"44{NAMESPACE},") :])
    raise Refused((data.get("data") or {}).get("code") or data.get("message", "refused"))


class Bar:
    """One page's bar: a connection that comes back, as the browser client's does."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, client: str, cookie: str, task_id: str
    ) -> None:
        self.http = http
        self.client = client
        self.upgraded = False
        self.stage = ""
        self.base_url = base_url
        self.headers = {"Cookie": cookie}
        self.task_id = task_id
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.heard_at = time.monotonic()
        self.asking = False
        self._ids = 0
        self.acks: dict[int, asyncio.Future[Any]] = {}
        # Since the last `since()`: when this bar was back (ack and push), and on which try.
        self.mark = 0.0
        self.acked = self.pushed = False
        self.back_at: float | None = None
        self.opened_at = 0.0
        self.tries = 0
        self.ack_codes: Counter[str] = Counter()
        self.connect_failures: Counter[str] = Counter()

    def since(self, mark: float) -> None:
        self.mark = mark
        self.acked = self.pushed = False
        self.back_at = None
        self.tries = 0
        self.ack_codes.clear()
        self.connect_failures.clear()

    async def live(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            self.tries += 1
            try:
                await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_S)
            except Exception as exc:  # every failed try is retried, as the browser does
                self.connect_failures[f"{_failure(exc)} ({self.stage})"] += 1
                await _sleep(stop, backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            asyncio.create_task(self.subscribe())
            await self._read()
            if not stop.is_set():
                await _sleep(stop, backoff(0))

    async def _open(self) -> None:
        if self.client == "websocket" or (self.client == "browser" and self.upgraded):
            try:
                await self._open_websocket()
                return
            except Exception:
                # The browser goes on to polling in the same try (tryAllTransports).
                if self.client == "websocket":
                    raise
        await self._open_polling()
        self.upgraded = True

    async def _open_websocket(self) -> None:
        self.stage = "websocket"
        url = self._url("websocket")
        ws = await self.http.ws_connect(url, headers=self.headers, autoping=False)
        try:
            await self._connect_namespace(ws)
        except BaseException:
            await ws.close()
            raise
        self.ws = ws
        self.opened_at = time.monotonic()

    async def _open_polling(self) -> None:
        self.stage = "handshake"
        url = self._url("polling")
        async with self.http.get(url, headers=self.headers) as response:
            opened = await _text(response)
        if not opened.startswith("0"):
            raise Refused(f"no open packet: {opened[:40]}")
        sid = json.loads(opened[1:])["sid"]
        url += f"&sid={sid}"
        self.stage = "namespace"
        async with self.http.post(url, data=f"40{NAMESPACE},", headers=self.headers) as response:
            await _text(response)
        async with self.http.get(url, headers=self.headers) as response:
            _connected((await _text(response)).split("\x1e"))
        self.stage = "upgrade"
        ws_url = self._url("websocket") + f"&sid={sid}"
        ws = await self.http.ws_connect(ws_url, headers=self.headers, autoping=False)
        await ws.send_str("2probe")
        if await ws.receive_str() != "3probe":
            await ws.close()
            raise Refused("no probe answer")
        await ws.send_str("5")
        self.ws = ws
        self.opened_at = time.monotonic()

    def _url(self, transport: str) -> str:
        base = self.base_url.replace("http", "ws", 1) if transport == "websocket" else self.base_url
        return f"{base}/socket.io/?EIO=4&transport={transport}"

    async def _connect_namespace(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        opened = await ws.receive_str()
        if not opened.startswith("0"):
            raise Refused(f"no open packet: {opened[:40]}")
        self.stage = "namespace"
        await ws.send_str(f"40{NAMESPACE},")
        _connected([await ws.receive_str()])

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            text = message.data
            if not isinstance(text, str):
                continue
            if text == "2":
                await self.ws.send_str("3")
            elif text.startswith("42/progress,"):
                self.heard_at = time.monotonic()
                if not self.pushed and self.opened_at >= self.mark:
                    self.pushed = True
                    self._maybe_back()
            elif text.startswith(ACK_HEAD):
                settle_ack(self.acks, text)
        self.ws = None
        for future in self.acks.values():
            future.cancel()
        self.acks.clear()

    def _maybe_back(self) -> None:
        # Back: a correct ack and a push, both on a connection opened since the mark.
        if self.acked and self.pushed and self.back_at is None:
            self.back_at = time.monotonic()

    async def subscribe(self) -> None:
        """client.js #subscribe: one question per quiet period."""
        ws = self.ws
        if ws is None or self.asking:
            return
        self.asking = True
        self.heard_at = time.monotonic()
        self._ids += 1
        ack_id = self._ids
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        payload = json.dumps(["subscribe", {"task_id": self.task_id}])
        try:
            await ws.send_str(f"42{NAMESPACE},{ack_id}{payload}")
            answer = await asyncio.wait_for(asyncio.shield(future), ACK_TIMEOUT_S)
        except TimeoutError:
            self.ack_codes["timeout"] += 1
            # The browser drops an ack that comes late, but the server joined
            # the room all the same and its pushes move the bar: a late
            # answer still counts, as "late ok".
            future.add_done_callback(self._late)
            return
        except (asyncio.CancelledError, ConnectionError):
            self.acks.pop(ack_id, None)
            self.ack_codes["offline"] += 1
            return
        finally:
            self.asking = False
        self._answered(answer, False)

    def _late(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            self._answered(future.result(), True)

    def _answered(self, answer: Any, late: bool) -> None:
        ok = answer.get("ok") and (answer.get("task") or {}).get("task_id") == self.task_id
        code = ("late ok" if late else "ok") if ok else (answer.get("error") or {}).get("code")
        self.ack_codes[code or "wrong"] += 1
        if ok and self.opened_at >= self.mark:
            self.heard_at = time.monotonic()
            self.acked = True
            self._maybe_back()

    def needs_asking(self, now: float) -> bool:
        return self.ws is not None and not self.asking and now - self.heard_at >= QUIET_AFTER_S


def _failure(exc: BaseException) -> str:
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused" if isinstance(exc.os_error, ConnectionRefusedError) else "connect error"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"http {exc.status}"
    return type(exc).__name__


async def _text(response: aiohttp.ClientResponse) -> str:
    response.raise_for_status()
    return await response.text()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def ask_quiet(bars: list[Bar], stop: asyncio.Event) -> None:
    """client.js #askQuiet, for every page at once: every second."""
    while not stop.is_set():
        now = time.monotonic()
        for bar in bars:
            if bar.needs_asking(now):
                asyncio.create_task(bar.subscribe())
        await _sleep(stop, 1)


async def all_back(bars: list[Bar], give_up: float) -> float:
    """Seconds until every bar is back (or `give_up` passed)."""
    began = time.monotonic()
    while time.monotonic() - began < give_up:
        if all(bar.back_at is not None for bar in bars):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - began


def listen_overflows() -> int:
    """Connections this machine's listening sockets dropped so far, their
    accept queue full (all sockets: other processes count too)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split(), values.split(), strict=True))
            return int(fields["ListenOverflows"])
    return 0


class Sampler:
    """The web process's CPU and peak RSS while it serves the comeback (with
    its children's: gunicorn's worker)."""

    def __init__(self) -> None:
        self.pid = 0
        self.peak_mb = 0.0
        self.cpu_at_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, pid: int) -> None:
        self.pid = pid
        self.cpu_at_start = tree_cpu_seconds(pid)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))

    def stop(self) -> tuple[float, float]:
        """CPU seconds used since `start`, and RSS now."""
        self._stop.set()
        self._thread.join()
        return tree_cpu_seconds(self.pid) - self.cpu_at_start, tree_rss_mb(self.pid)


def comeback(bars: list[Bar], restarted_at: float) -> dict[str, Any]:
    back = [(b.back_at - restarted_at) * 1000 for b in bars if b.back_at is not None]
    codes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for bar in bars:
        codes.update(bar.ack_codes)
        failures.update(bar.connect_failures)
    stats = summary(back)
    return {
        "back": len(back),
        "not_back": len(bars) - len(back),
        "back_s": {
            k.replace("_ms", "_s"): v and round(v / 1000, 2) for k, v in stats.items() if k != "n"
        },
        "acks": dict(codes.most_common()),
        "connect_failures": dict(failures.most_common()),
        "tries_p50": sorted(b.tries for b in bars)[len(bars) // 2],
        "tries_max": max(b.tries for b in bars),
    }


def restart(
    watchers: int,
    tickers: int,
    rate: float = 1.0,
    client: str = "browser",
    profile: str | None = None,
    server: str = "eventlet",
) -> dict[str, Any]:
    """The scenario on a stack of its own: open the bars, restart the web
    process on its port, and time every bar's return. `client`: how a bar
    opens. "browser": as the page's client, polling then the upgrade at
    first, websocket first (polling behind it) once a websocket has worked;
    "polling": polling then the upgrade every time (the client before it
    remembered); "websocket": a page served SOCKETIO_TRANSPORTS=websocket.
    `profile`: a file for py-spy's samples of the new web process, as
    collapsed stacks (py-spy must be installed). `server`: what serves the
    web process, as in bench.connections ("gevent": the gunicorn
    configuration; its stop, bars open, is part of the restart's time)."""
    raise_open_files()
    stack = BenchStack(("--pool", "threads", "-c", str(tickers + 10)), SETTINGS)
    stack.web_args = SERVERS[server]
    with stack:
        cookies = [identity_cookie(stack.base_url) for _ in range(min(IDENTITIES, tickers))]
        owned = [
            (cookie, start_tickers(stack, cookie, len(range(i, tickers, len(cookies))), rate))
            for i, cookie in enumerate(cookies)
        ]
        task_ids = [(cookie, task) for cookie, tasks in owned for task in tasks]
        # The tickers end with the stack's worker.
        return {
            "watchers": watchers,
            "tickers": len(task_ids),
            "rate": rate,
            "client": client,
            "server": server,
            **asyncio.run(_run(stack, task_ids, watchers, client, profile)),
        }


async def _run(
    stack: BenchStack,
    task_ids: list[tuple[str, str]],
    watchers: int,
    client: str,
    profile: str | None,
) -> dict[str, Any]:
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        bars = [
            Bar(http, stack.base_url, client, *task_ids[i % len(task_ids)]) for i in range(watchers)
        ]
        began = time.monotonic()
        for bar in bars:
            bar.since(began)

        async def open_later(bar: Bar) -> None:
            await asyncio.sleep(random.uniform(0, FIRST_OPEN_S) if watchers > 100 else 0)
            await bar.live(stop)

        lives = [asyncio.create_task(open_later(bar)) for bar in bars]
        quiet = asyncio.create_task(ask_quiet(bars, stop))
        log(f"opening {watchers} bars")
        opened_s = await all_back(bars, GIVE_UP_S + FIRST_OPEN_S)
        log(f"opened in {opened_s:.1f} s; restarting the web process")
        opened = comeback(bars, began)
        # The load generator's collector pauses would count as the server's time.
        gc.collect()
        gc.freeze()
        await asyncio.sleep(2)
        old_rss = tree_rss_mb(stack.web.pid)

        restarted_at = time.monotonic()
        for bar in bars:
            bar.since(restarted_at)
        generator_cpu = resource.getrusage(resource.RUSAGE_SELF)
        overflows = listen_overflows()
        web = await asyncio.to_thread(stack.start_web, "web0")
        down_s = time.monotonic() - restarted_at
        sampler = Sampler()
        sampler.start(web.pid)
        spy = None
        if profile:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(web.pid),
                    "-o",
                    profile,
                    "-f",
                    "raw",
                    "-r",
                    "50",
                    "-d",
                    "60",
                ],
                stdout=subprocess.DEVNULL,
            )
        log(f"serving again after {down_s:.1f} s")
        await all_back(bars, GIVE_UP_S)
        log("every bar back" if all(b.back_at for b in bars) else "gave up")
        took = time.monotonic() - restarted_at
        web_cpu_s, web_rss = sampler.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait)
        after = resource.getrusage(resource.RUSAGE_SELF)
        result = comeback(bars, restarted_at)
        result["listen_overflows"] = listen_overflows() - overflows
        stop.set()
        # Cut, not closed one by one: the stack stops next.
        for life in [*lives, quiet]:
            life.cancel()
        await asyncio.gather(*lives, quiet, return_exceptions=True)
        gc.unfreeze()
    every_back = result["not_back"] == 0
    return {
        "opened": {"seconds": round(opened_s, 2), **opened},
        "old_web_rss_mb": round(old_rss, 1),
        "down_s": round(down_s, 2),
        "all_back_s": round(took, 2) if every_back else None,
        **result,
        "web_cpu_s": round(web_cpu_s, 2),
        "web_cpu": round(web_cpu_s / took, 2),
        "web_rss_mb": round(web_rss, 1),
        "web_peak_rss_mb": round(sampler.peak_mb, 1),
        "load_generator_cpu": round(
            (after.ru_utime + after.ru_stime - generator_cpu.ru_utime - generator_cpu.ru_stime)
            / took,
            2,
        ),
        "target_s": TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1.0, help="updates/s of each ticker")
    parser.add_argument("--client", choices=("browser", "polling", "websocket"), default="browser")
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy samples of the comeback, collapsed stacks"
    )
    parser.add_argument("--server", choices=sorted(SERVERS), default="eventlet")
    args = parser.parse_args()
    result = restart(
        args.watchers, args.tickers, args.rate, args.client, args.profile, args.server
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
