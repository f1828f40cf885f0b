"""The benchmark command runs from start to end (quick sizes; its figures are not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import ROOT


# The scenarios start stacks of their own (four web processes for the
# scale-out, another for idle connections): about a minute alone, more
# beside the rest of the suite.
@pytest.mark.timeout(300)
def test_bench_quick_writes_table_json_and_plot(tmp_path: Path) -> None:
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        # Terminated, it stops the stacks it started (a kill would leave them).
        bench.terminate()
        stdout, stderr = bench.communicate(timeout=25)
    assert bench.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert "| scenario | measured | target |" in stdout
    results = json.loads((tmp_path / "quick.json").read_text())
    assert {
        "latency",
        "browser",
        "reporter",
        "idle",
        "fanout",
        "push_vs_poll",
        "connections",
        "restart",
        "restart_gevent",
    } <= set(results)
    assert results["latency"]["n"] > 10 and results["browser"]["n"] > 10
    assert results["idle"]["app_messages"] == 0
    assert all(f["lost"] == 0 for f in results["fanout"])
    # Every idle watcher opened, and each was answered in its task's room.
    assert results["connections"] and all(
        c["opened"] == c["watchers"] and c["subscribe_refused"] == 0 for c in results["connections"]
    )
    # Every bar came back after the restart, under both servers.
    assert all(results[key]["not_back"] == 0 for key in ("restart", "restart_gevent"))
    assert results["restart_gevent"]["server"] == "gevent"
    assert (tmp_path / "quick.png").read_bytes().startswith(b"\x89PNG")
