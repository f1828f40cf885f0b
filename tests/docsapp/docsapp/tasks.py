"""The host app's own task, reporting through progressbar's reporter."""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task
from celery.exceptions import Ignore, Reject

from progressbar import Param, TaskError, progress

from . import progress_bars


@progress_bars.kind(
    "thumbnails",
    title="Make thumbnails",
    params=[
        Param.int_range("images", 1, 500, default=20),
        Param.float_range("seconds_each", 0, 1, default=0.05),
        Param.int_range("broken", 1, 500, help="This image cannot be read"),
    ],
)
@shared_task(bind=True)
def make_thumbnails(self, images: int, seconds_each: float, broken: int | None = None):  # type: ignore[no-untyped-def]
    with progress(self, total=images, message="Resizing") as p:
        for number in p.iter(range(1, images + 1)):
            if number == broken:
                raise TaskError(f"Image {number} cannot be read")
            time.sleep(seconds_each)
    return {"thumbnails": images}


# Celery's own ways for a task to end, each followed by a bar.


@progress_bars.kind("scan", title="Scan a page")
@shared_task(bind=True, max_retries=2)
def scan(self):  # type: ignore[no-untyped-def]
    """Fails its first attempt (the scanner is busy), retries, then succeeds."""
    with progress(self, total=10, message="Scanning") as p:
        p.update(5)
        if self.request.retries == 0:
            raise self.retry(exc=ConnectionError("scanner busy"), countdown=1)
        p.update(10)
    return {"attempts": self.request.retries + 1}


@progress_bars.kind("skip", title="Skip")
@shared_task(bind=True)
def skip(self):  # type: ignore[no-untyped-def]
    with progress(self, total=3) as p:
        p.update(1)
        raise Ignore()


@progress_bars.kind("refuse", title="Refuse")
@shared_task(bind=True)
def refuse(self):  # type: ignore[no-untyped-def]
    with progress(self, total=3) as p:
        p.update(1)
        raise Reject("unreadable input", requeue=False)


@progress_bars.kind("overrun", title="Overrun")
@shared_task(bind=True, soft_time_limit=0.5)
def overrun(self):  # type: ignore[no-untyped-def]
    with progress(self, total=100) as p:
        for _ in p.iter(range(100)):
            time.sleep(0.05)


@shared_task
def add(x: int, y: int) -> int:
    """A plain task of the host's, not tracked: its result is Celery's as ever."""
    return x + y


@progress_bars.tracked
@shared_task(bind=True)
def convert(self, path: str, options: dict) -> dict:  # type: ignore[no-untyped-def]
    """Started by the host's view, not by clients: no kind, server-chosen arguments."""
    lines = Path(path).read_text().splitlines()
    with progress(self, total=len(lines), message="Converting") as p:
        for _ in p.iter(lines):
            time.sleep(0.05)
    text = "\n".join(lines)
    return {"lines": len(lines), "text": text.upper() if options.get("upper") else text}
