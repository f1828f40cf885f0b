"""The package's shape holds: the two processes' code never imports across, the
SNAPSHOT has one definition that the Lua scripts and the browser client agree
with, and the worker's signal handlers are connected once per process."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery.signals import task_failure, task_received, worker_process_init, worker_ready
from flask import Flask

from progressbar import ProgressBar, scripts
from progressbar.snapshot import FIELDS, OPTIONAL_FIELDS, TERMINAL_STATES

PACKAGE = Path(__file__).resolve().parent.parent / "progressbar"
# The binder and the public face import both sides; nothing else may.
BINDERS = {"progressbar", "progressbar.extension"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every progressbar module `path` imports, resolved to its absolute name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t.startswith("progressbar"))
    return found


def side(module: str) -> str:
    for name in ("web", "worker"):
        if module == f"progressbar.{name}" or module.startswith(f"progressbar.{name}."):
            return name
    return "core"


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_from_a_side_to_the_core_never_across(path: Path) -> None:
    name = module_name(path)
    if name in BINDERS:
        return
    mine = side(name)
    for target in imports_of(path):
        theirs = side(target)
        assert theirs in ("core", mine), f"{name} ({mine}) imports {target} ({theirs})"


def test_the_layout_check_sees_a_crossing() -> None:
    # The check above must be able to fail: the extension does cross.
    sides = {side(t) for t in imports_of(PACKAGE / "extension.py")}
    assert {"web", "worker"} <= sides


def test_the_lua_scripts_write_only_snapshot_fields() -> None:
    lua = "".join(scripts.source(name) for name in scripts.NAMES)
    written = set(re.findall(r"snapshot\['(\w+)'\]", lua))
    assert written, "no snapshot field found in the scripts"
    assert written <= set(FIELDS) | set(OPTIONAL_FIELDS)
    # The parts of a group's `children` carry the fields its schema requires.
    part = OPTIONAL_FIELDS["children"]["items"]["required"]
    assert re.search(r"parts\[i\] = \{" + r", ".join(f"{f} = \\w+" for f in part) + r"\}", lua)


def test_the_browser_client_knows_the_same_terminal_states() -> None:
    module = (PACKAGE / "static" / "snapshot.js").as_uri()
    out = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            f"import {{ TERMINAL_STATES }} from {json.dumps(module)};"
            "console.log(JSON.stringify(TERMINAL_STATES));",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert set(json.loads(out.stdout)) == TERMINAL_STATES


def test_worker_signals_are_connected_once_however_many_apps_a_process_builds() -> None:
    signals = (worker_process_init, task_received, worker_ready, task_failure)

    def ours() -> list[object]:
        return [
            receiver
            for signal in signals
            for _, receiver in signal.receivers
            if getattr(receiver, "__module__", "").startswith("progressbar.")
        ]

    for n in range(3):
        app = Flask(f"app{n}")
        app.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL="redis://127.0.0.1:1/0")
        ProgressBar(app)
    assert len(ours()) == len(signals)


def test_a_module_of_the_package_loads_nothing_else_so_a_server_can_patch_first() -> None:
    # gunicorn imports its configuration (progressbar.web.gunicorn) in the
    # master; gevent patches each worker later, which warns and misbehaves
    # when ssl, redis or the like were imported before.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, progressbar.web.gunicorn; heavy = ('flask', 'celery', 'redis', 'ssl'); "
            "print([m for m in heavy if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert out.stdout.strip() == "[]"
