"""Live progress of Celery tasks in the browser, pushed through Flask-SocketIO.

    progress_bars = ProgressBar()          # then progress_bars.init_app(app)

    @progress_bars.kind("checksum", params=[Param.int_range("files", 1, 1000)])
    @shared_task(bind=True)
    def checksum(self, files):
        with progress(self, total=files) as p:
            ...

The package's layout follows its two processes: `web/` runs in the web
process (Socket.IO events, HTTP API, watchdog), `worker/` in a Celery worker
(the task class, the reporter, heartbeats); both use the shared core beside
them (`snapshot`, `messages`, `store` and its Lua scripts, `service`, `kinds`,
`settings`).

The names below are imported on first use: importing a module of the package
(gunicorn's `-c python:progressbar.web.gunicorn`, say) brings in nothing else,
so a server can still patch the process before Flask, Celery or Redis load.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ProtocolError, TaskCancelled, TaskError
    from .extension import ProgressBar
    from .kinds import Kind, Param
    from .settings import Settings, environment_config
    from .worker.reporter import Progress, progress

__version__ = "0.3.0"

_HOMES = {
    "Kind": ".kinds",
    "Param": ".kinds",
    "Progress": ".worker.reporter",
    "ProgressBar": ".extension",
    "ProtocolError": ".errors",
    "Settings": ".settings",
    "TaskCancelled": ".errors",
    "TaskError": ".errors",
    "environment_config": ".settings",
    "progress": ".worker.reporter",
}

__all__ = [
    "Kind",
    "Param",
    "Progress",
    "ProgressBar",
    "ProtocolError",
    "Settings",
    "TaskCancelled",
    "TaskError",
    "environment_config",
    "progress",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
