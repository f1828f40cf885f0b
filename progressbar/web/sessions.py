"""The app's session interface, left as it is except where its work is
thrown away: a Socket.IO event's request context.

Flask opens the session of every request context it pushes, and
Flask-SocketIO pushes one for every event; with its default
`manage_session=True` it then replaces that session at once with the
connection's own copy, made at the first event and kept in the connection's
WSGI environ. Opening the cookie session meanwhile (a signing serializer
built, the cookie looked up) cost about 25 µs of every event. Here such a
context gets the connection's copy straight away: what Flask-SocketIO would
have put in its place. Every other request, the first event of a connection
and every event under `manage_session=False` open the app's session as before.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Flask, Request
from flask.sessions import SessionInterface, SessionMixin

# Where Flask-SocketIO keeps a connection's session in its environ.
SAVED_SESSION = "saved_session"


class EventSessions:
    """`inner`, the app's session interface, for everything (every attribute
    and method is its own) but opening the session of a Socket.IO event whose
    connection already has its own."""

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        saved = request.environ.get(SAVED_SESSION)
        if isinstance(saved, SessionMixin):
            return saved
        return self.inner.open_session(app, request)


def skip_event_sessions(app: Flask) -> None:
    """Have Socket.IO events of `app` reuse their connection's session (once)."""
    if not isinstance(app.session_interface, EventSessions):
        app.session_interface = cast(SessionInterface, EventSessions(app.session_interface))
