"""What a worker needs of the app it serves, bound to the Celery app once,
when the extension sets the app up, and read from there by the task class and
the signal handlers (each is handed the Celery app by Celery)."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask

from ..settings import Settings
from ..store import Store

_ATTRIBUTE = "progressbar_worker"


@dataclass(frozen=True)
class WorkerContext:
    flask_app: Flask
    store: Store
    settings: Settings


def bind(celery_app: Celery, context: WorkerContext) -> None:
    setattr(celery_app, _ATTRIBUTE, context)


def context_of(celery_app: Celery | None) -> WorkerContext | None:
    """The context bound to `celery_app`; None for an app progressbar did not set up."""
    return getattr(celery_app, _ATTRIBUTE, None)
