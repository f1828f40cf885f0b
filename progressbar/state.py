"""What the extension keeps per Flask app, in `app.extensions["progressbar"]`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from .kinds import Kinds
from .settings import Settings
from .store import Store

if TYPE_CHECKING:
    from celery import Celery
    from flask_socketio import SocketIO

EXTENSION = "progressbar"


@dataclass
class State:
    settings: Settings
    store: Store
    kinds: Kinds
    socketio: SocketIO
    celery: Celery
    # The caller's identity inside a request or a Socket.IO event; None: nobody.
    identity: Callable[[], str | None]
    # True while the identity is the default one, kept in the session cookie.
    session_identities: Callable[[], bool]


def state(app: Flask | None = None) -> State:
    """The extension's state of `app`, or of the current app."""
    extensions = (app or current_app).extensions
    try:
        return extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("progressbar is not set up on this app: call init_app(app)") from None
