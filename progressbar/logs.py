"""Single-line, structured logs: `key=value` pairs, the task id on every line
that concerns a task, a traceback folded into one escaped field."""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "time=%(asctime)s level=%(levelname)s logger=%(name)s process=%(process)d"


def task_extra(task_id: str | None) -> dict[str, Any]:
    """`extra=` for a log call about a task."""
    return {"task_id": task_id}


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LineFormatter(logging.Formatter):
    """`time=… level=… logger=… process=… [task_id=…] msg="…" [exc="…"]`."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(self._with_time(record))
        # Ours pass the id in `extra`; inside a Celery task it is the current one.
        task_id = getattr(record, "task_id", None) or _current_task_id()
        # "???" is what Celery puts where a task id is unknown.
        if task_id and task_id != "???":
            line += f" task_id={task_id}"
        line += f" msg={_quote(record.getMessage())}"
        if record.exc_info:
            line += f" exc={_quote(self.formatException(record.exc_info))}"
        return line

    def _with_time(self, record: logging.LogRecord) -> logging.LogRecord:
        record.asctime = self.formatTime(record)
        return record


def _current_task_id() -> str | None:
    import sys

    if "celery" not in sys.modules:
        return None
    from celery import current_task

    request = getattr(current_task, "request", None) if current_task else None
    return getattr(request, "id", None)


def use_line_format(logger: logging.Logger | None = None, level: int | None = None) -> None:
    """Give every handler of `logger` (default: the root) the single-line format;
    add one on stderr if it has none."""
    logger = logger or logging.getLogger()
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
    for handler in logger.handlers:
        handler.setFormatter(LineFormatter())
    if level is not None:
        logger.setLevel(level)
