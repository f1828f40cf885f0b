"""What the extension keeps per Flask app, in `app.extensions["progressbar"]`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .admission import Admission
from .kinds import Kinds
from .reads import Reads
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from celery import Celery
    from flask_socketio import SocketIO

    from .extension import ProgressBar

EXTENSION = "progressbar"


@dataclass
class State:
    settings: Settings
    store: Store
    kinds: Kinds
    socketio: SocketIO
    celery: Celery
    # The extension object, which knows the app's identity loader.
    extension: ProgressBar
    # Rate limits per client address, and the guard on Redis's memory.
    admission: Admission
    # Reads of records many watchers ask for at once, shared and bounded.
    reads: Reads


def state(app: Flask | None = None) -> State:
    """The extension's state of `app`, or of the current app."""
    extensions = (app or current_app).extensions
    try:
        return extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("progressbar is not set up on this app: call init_app(app)") from None
