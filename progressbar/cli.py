"""`flask progress start KIND --param value` and `flask progress watch TASK_ID`:
start and follow tasks from a terminal, with a live bar (rich, the `cli` extra).

The CLI talks to Redis directly, as the web process does, under an identity of
its own (`--as`, default `cli:$USER`). It listens to the channel its task's
pushes are published on and re-reads the stored snapshot every second, so it never freezes.
Exit status: 0 succeeded, 1 failed, 2 cancelled, 3 lost, 4 not found, refused
or a usage error. Text that comes from a task is shown literally: no markup, and
no control characters that could reach the terminal.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import click
from flask.cli import AppGroup

from . import service
from .errors import ProtocolError
from .messages import decode_push
from .snapshot import TERMINAL_STATES
from .state import state

EXIT = {"succeeded": 0, "failed": 1, "cancelled": 2, "lost": 3}
REFUSED = 4


class UsageRefused(click.UsageError):
    """A usage error exits with REFUSED, as a refusal does: click's own
    status, 2, would read as "cancelled"."""

    exit_code = REFUSED


class ProgressGroup(AppGroup):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageRefused:
            raise
        except click.UsageError as exc:
            raise UsageRefused(exc.format_message(), exc.ctx) from None


progress_cli = ProgressGroup("progress", help="Start and follow tasks from the terminal.")

identity_option = click.option(
    "--as",
    "identity",
    default=lambda: f"cli:{getpass.getuser()}",
    show_default="cli:$USER",
    help="The identity that owns the tasks.",
)


def parse_params(kind_name: str, args: list[str]) -> dict[str, Any]:
    """`--name value` pairs, typed by the kind's parameters."""
    kinds = state().kinds
    kind = kinds.get(kind_name)
    if kind is None:
        raise click.UsageError(f"no task kind named {kind_name!r}; try: {', '.join(kinds.names())}")
    known = {p.name: p for p in kind.params}
    params: dict[str, Any] = {}
    pairs = iter(args)
    for flag in pairs:
        name = flag.removeprefix("--").replace("-", "_")
        if not flag.startswith("--") or name not in known:
            raise click.UsageError(f"{flag}: {kind_name} takes {', '.join(known) or 'nothing'}")
        raw = next(pairs, None)
        if raw is None:
            raise click.UsageError(f"{flag} needs a value")
        try:
            params[name] = known[name].from_text(raw)
        except ValueError:
            raise click.UsageError(f"{flag}: {raw!r} is not a number") from None
    return params


@progress_cli.command(
    "start", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("kind")
@identity_option
@click.option("--detach", is_flag=True, help="Print the task id and return at once.")
@click.pass_context
def start(ctx: click.Context, kind: str, identity: str, detach: bool) -> None:
    """Start a task of KIND with its params as options (`--name value`), and watch it."""
    params = parse_params(kind, ctx.args)
    if not detach:
        require_rich()  # before anything is queued
    try:
        # The CLI runs with the server's trust: hidden kinds too, no rate limit.
        snapshot = service.start_task({"kind": kind, "params": params}, identity, trusted=True)
    except ProtocolError as exc:
        click.echo(f"refused ({exc.code}): {exc.message}", err=True)
        sys.exit(REFUSED)
    click.echo(snapshot["task_id"])
    if not detach:
        sys.exit(follow(snapshot["task_id"], identity))


@progress_cli.command("watch")
@click.argument("task_id")
@identity_option
def watch(task_id: str, identity: str) -> None:
    """Follow TASK_ID with a live bar until it ends."""
    require_rich()
    sys.exit(follow(task_id, identity))


def require_rich() -> None:
    """Refuse (exit status 4) without rich, the `cli` extra, which draws the bar."""
    try:
        import rich  # noqa: F401
    except ImportError:
        click.echo(
            "refused: following a task needs rich, progressbar's `cli` extra (or use --detach)",
            err=True,
        )
        sys.exit(REFUSED)


def snapshots(task_id: str, identity: str) -> Iterator[dict[str, Any]]:
    """The task's states as they come: pushes from the queue, and a re-read of
    the store every second in case a push was missed."""
    store = service.store()
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.push_channel(task_id))
    try:
        yield service.get_task(task_id, identity)
        reread = time.monotonic() + 1
        while True:
            message = pubsub.get_message(timeout=max(0.0, reread - time.monotonic()))
            pushed = decode_push(message["data"]) if message is not None else None
            if pushed is not None and pushed.get("task_id") == task_id:
                yield pushed
            if time.monotonic() >= reread:
                yield service.get_task(task_id, identity)
                reread = time.monotonic() + 1
    finally:
        pubsub.close()


def plain(text: Any) -> str:
    """`text` without control or format characters: escape sequences, bells,
    bidi overrides and line breaks from a task never reach the terminal."""
    return "".join(ch for ch in str(text) if unicodedata.category(ch)[0] != "C")


def _fields(s: dict[str, Any]) -> dict[str, Any]:
    rate, eta = s.get("rate"), s.get("eta")
    return {
        "state": s["state"],
        "rate": "" if rate is None else f"{rate:,.4g}/s",
        "eta": "" if eta is None else f"ETA {eta:,.0f}s",
        "message": plain(s.get("message") or "")[:60],
    }


def follow(task_id: str, identity: str) -> int:
    """Draw the task until it is terminal; its exit status."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = Console(stderr=True)
    shown = 0
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TextColumn("{task.fields[eta]}", markup=False),
        TextColumn("{task.fields[message]}", markup=False, style="dim"),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            row = bar.add_task(plain(task_id[:8]), total=None, **_fields({"state": "queued"}))
            for snapshot in snapshots(task_id, identity):
                if snapshot["seq"] <= shown:
                    continue
                shown = snapshot["seq"]
                total = snapshot.get("total")
                bar.update(
                    row,
                    total=total,
                    completed=snapshot.get("current") or 0,
                    description=plain(f"{snapshot['kind']} {task_id[:8]}"),
                    **_fields(snapshot),
                )
                if snapshot["state"] in TERMINAL_STATES:
                    break
    except ProtocolError as exc:
        click.echo(f"{plain(task_id)}: {exc.message}", err=True)
        return REFUSED
    ended = snapshot["state"]
    detail = snapshot.get("error") or snapshot.get("message") or ""
    if ended == "succeeded":
        detail = json.dumps(snapshot.get("result"))
    click.echo(f"{ended}: {plain(detail)}")
    return EXIT[ended]
