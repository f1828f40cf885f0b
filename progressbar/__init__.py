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
"""

from __future__ import annotations

from .errors import ProtocolError, TaskCancelled, TaskError
from .extension import ProgressBar
from .kinds import Kind, Param
from .settings import Settings, environment_config
from .worker.reporter import Progress, progress

__version__ = "0.3.0"

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
