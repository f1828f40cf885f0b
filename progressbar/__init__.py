"""Live progress of Celery tasks in the browser, pushed through Flask-SocketIO.

    progress_bars = ProgressBar()          # then progress_bars.init_app(app)

    @progress_bars.kind("checksum", params=[Param.int_range("files", 1, 1000)])
    @shared_task(bind=True)
    def checksum(self, files):
        with progress(self, total=files) as p:
            ...
"""

from __future__ import annotations

from .celery_app import progress
from .errors import TaskError
from .extension import ProgressBar
from .kinds import Kind, Param
from .reporter import Progress, TaskCancelled
from .settings import Settings, environment_config

__version__ = "0.2.0"

__all__ = [
    "Kind",
    "Param",
    "Progress",
    "ProgressBar",
    "Settings",
    "TaskCancelled",
    "TaskError",
    "environment_config",
    "progress",
]
