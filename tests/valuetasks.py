"""The demo app with two more kinds, whose tasks report numbers that JSON has
no text for (NaN, infinity). Their messages go to a queue of their own, so
only a worker started from this module runs them:

    celery -A tests.valuetasks worker -Q values
    flask --app tests.valuetasks:flask_app progress start nan_result --detach
"""

from __future__ import annotations

import math
import time
from typing import Any

from celery import Task, shared_task

from celery_worker import celery_app, flask_app
from demo import progress_bars
from progressbar import Param, progress

QUEUE = "values"
celery_app.conf.task_routes = {"values.*": {"queue": QUEUE}}

__all__ = ["celery_app", "flask_app"]


@progress_bars.kind("nan_result")
@shared_task(bind=True, name="values.nan_result")
def nan_result(self: Task) -> dict[str, Any]:
    """Succeeds at once with a result holding NaN and infinities."""
    with progress(self, total=2) as p:
        p.update(1, message="Averaging nothing")
    return {"mean": math.nan, "spread": math.inf, "low": -math.inf, "count": 0}


@progress_bars.kind("nan_progress", params=[Param.float_range("seconds", 1, 120, default=60)])
@shared_task(bind=True, name="values.nan_progress")
def nan_progress(self: Task, seconds: float = 60) -> None:
    """Reports NaN of an infinite total until cancelled (or `seconds` pass)."""
    with progress(self, total=math.inf, message="Counting the uncountable") as p:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            p.update(math.nan)  # raises TaskCancelled once its owner cancels
            time.sleep(0.05)
