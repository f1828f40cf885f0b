"""The real stack for a benchmark run: redis-server, web processes, one worker."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Self

from tests.stack import Stack


def scenario_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line of a `python -m bench.NAME` scenario: its docstring's
    first paragraph as help, and `--set NAME=VALUE` (as often as needed) for
    settings of the stack's processes, read as `dict(args.set)`."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", type=_setting)
    return parser


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE")
    return name, value


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class BenchStack(Stack):
    """The test stack, for a benchmark run: one worker, `webs` web processes
    on the same Redis, logs in a folder of its own. `worker_args` picks the pool."""

    def __init__(
        self,
        worker_args: tuple[str, ...] = (),
        env_extra: dict[str, str] | None = None,
        webs: int = 1,
    ) -> None:
        super().__init__(
            Path(tempfile.mkdtemp(prefix="progressbar-bench-")),
            secret="bench",
            workers=("bench",),
            webs=tuple(f"web{i}" for i in range(webs)),
            worker_args=worker_args,
            # The scenarios start the demo's hidden `ticker` kind as a client would.
            env_extra={"START_HIDDEN_KINDS": "1", **(env_extra or {})},
        )

    def __enter__(self) -> Self:
        # A run stopped from outside (`timeout`, a test's time limit) ends
        # as on Ctrl-C: the stack's processes are stopped, not left running.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_terminate)
        return super().__enter__()


def _exit_on_terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)
