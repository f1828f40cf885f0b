"""Worker entry point: `celery -A celery_worker worker`. Never imports eventlet."""

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger

from demo import create_app
from progressbar.logs import use_line_format

# Not `app`: `celery -A` would take a variable of that name for the Celery app.
flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@after_setup_logger.connect(weak=False)
@after_setup_task_logger.connect(weak=False)
def single_line_logs(logger: logging.Logger, **_: Any) -> None:
    use_line_format(logger)
