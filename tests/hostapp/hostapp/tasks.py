"""The host app's own task, reporting through progressbar's reporter."""

from __future__ import annotations

import time

from celery import shared_task

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
