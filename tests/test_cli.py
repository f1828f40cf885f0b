"""The terminal watcher, `flask progress ...`, against the live worker."""

from __future__ import annotations

import subprocess
import sys
import time

from progressbar.service import new_id
from progressbar.snapshot import queued_snapshot
from progressbar.store import Store, connect
from tests.stack import ROOT


def flask(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "progress", *args],
        cwd=ROOT,
        env={**stack_env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_draws_a_bar_and_exits_0_with_the_result(stack_env, worker) -> None:
    run = flask(stack_env, "start", "primes", "--limit", "1000000")
    assert run.returncode == 0, run.stderr
    task_id, last = run.stdout.split("\n")[0], run.stdout.strip().splitlines()[-1]
    assert len(task_id) >= 22
    assert last == "succeeded: 78498"
    assert "primes" in run.stderr and "100%" in run.stderr  # the bar, on stderr


def test_a_failed_task_exits_1_with_its_error(stack_env, worker) -> None:
    run = flask(
        stack_env, "start", "simulate", "--duration", "0.5", "--fail-at", "30", "--seed", "3"
    )
    assert run.returncode == 1
    assert run.stdout.strip().splitlines()[-1].startswith("failed: Simulated failure at")


def test_watch_follows_a_detached_task_of_the_same_identity(stack_env, worker) -> None:
    started = flask(stack_env, "start", "simulate", "--duration", "1", "--detach", "--as", "ana")
    assert started.returncode == 0
    task_id = started.stdout.strip()
    stranger = flask(stack_env, "watch", task_id, "--as", "bob")
    assert stranger.returncode == 4 and "no such task" in stranger.stderr
    watched = flask(stack_env, "watch", task_id, "--as", "ana")
    assert watched.returncode == 0
    assert watched.stdout.strip().startswith("succeeded: {")
    assert "ETA" in watched.stderr or "/s" in watched.stderr  # rate and ETA drawn


def test_bad_parameters_are_refused_before_anything_starts(stack_env) -> None:
    unknown = flask(stack_env, "start", "simulate", "--speed", "3")
    assert unknown.returncode == 4 and "simulate takes duration" in unknown.stderr
    missing = flask(stack_env, "watch")
    assert missing.returncode == 4 and "Missing argument" in missing.stderr
    no_such_option = flask(stack_env, "watch", "--bogus", "x")
    assert no_such_option.returncode == 4
    invalid = flask(stack_env, "start", "simulate", "--duration", "-5")
    assert invalid.returncode == 4 and "params.duration" in invalid.stderr


def test_a_batch_is_one_bar_in_the_terminal_too(stack_env, worker) -> None:
    run = flask(stack_env, "start", "batch", "--parts", "2", "--duration", "0.5")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == 'succeeded: {"parts": 2}'


def test_the_cli_starts_a_hidden_kind_that_clients_may_not(stack_env, worker) -> None:
    # It runs with the server's trust; clients get `unknown_kind` (test_admission).
    run = flask(stack_env, "start", "ticker", "--updates", "3", "--rate", "100")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "succeeded: 3"


def test_without_rich_start_is_refused_before_anything_is_queued(
    stack_env, worker, tmp_path
) -> None:
    import redis

    # A `rich` that cannot be imported, ahead of the installed one.
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**stack_env, "PYTHONPATH": str(tmp_path)}
    run = flask(env, "start", "simulate", "--duration", "0.2", "--as", "no-rich")
    assert run.returncode == 4, run.stderr
    assert "`cli` extra" in run.stderr and run.stdout == ""
    client = redis.Redis.from_url(stack_env["REDIS_URL"])
    try:
        assert client.zcard("progressbar:owner:no-rich") == 0
    finally:
        client.close()
    detached = flask(env, "start", "simulate", "--duration", "0.2", "--as", "no-rich", "--detach")
    assert detached.returncode == 0 and len(detached.stdout.strip()) >= 22


def test_task_text_is_shown_literally_without_control_characters(stack_env, redis_url) -> None:
    """A task's kind, message and error reach the terminal as plain text: rich
    markup is not interpreted (`[/bold]` once crashed the CLI) and escape
    sequences (a title change, a screen clear, a bell) are stripped."""
    store = Store(connect(redis_url, 2), ttl=60)
    task_id = new_id()
    hostile = "[/bold]\x1b]0;pwned\x07"
    store.create(task_id, "cli:eve", queued_snapshot(task_id, hostile, time.time()))
    ended = {
        **queued_snapshot(task_id, hostile, time.time()),
        "state": "failed",
        "message": "[red]50%\x1b[2J",
        "error": "[bold]boom\x1b[2J\x07\u202eevil",
    }
    store.write(task_id, ended)
    watched = flask(stack_env, "watch", task_id, "--as", "cli:eve")
    assert watched.returncode == 1, watched.stderr
    assert watched.stdout.strip() == "failed: [bold]boom[2Jevil"
    assert "[/bold]]0;pwned" in watched.stderr  # the kind, as written, minus ESC and BEL
    shown = watched.stderr + watched.stdout
    assert not [c for c in ("\x1b]", "\x07", "\u202e") if c in shown]


def test_ids_never_begin_with_a_dash_so_a_shell_takes_them_as_arguments() -> None:
    # About one plain URL-safe token in 64 begins with "-": 20,000 would give ~300.
    ids = [new_id() for _ in range(20_000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == 20_000 and {len(i) for i in ids} == {24}
