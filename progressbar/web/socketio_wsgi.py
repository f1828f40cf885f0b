"""Socket.IO's requests handed to Engine.IO by the shortest way.

Flask-SocketIO puts its middleware in front of the app: for each request it
copies the environ, and python-engineio's middleware under it, under
gunicorn, defines a class for each request to wrap the socket in. A
websocket's request lasts as long as the connection, and Socket.IO keeps its
environ that long: the copy, the class (about 3 KB under gunicorn) and the
two calls' frames stay for every open connection. Here a request for the
Socket.IO path goes straight to Engine.IO with what those two middlewares
would have added to its environ; every other request goes through them as
before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from flask_socketio import _SocketIOMiddleware


class GunicornInput:
    """The socket as eventlet's websocket code finds it, which is how
    python-engineio's middleware hands gunicorn's socket on."""

    __slots__ = ("socket",)

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    def get_socket(self) -> Any:
        return self.socket


class SocketIOFirst:
    """The app's WSGI entry, with Socket.IO's path taken before the middleware."""

    def __init__(self, middleware: _SocketIOMiddleware) -> None:
        self.middleware = middleware
        self.path = middleware.engineio_path
        self.handle = middleware.engineio_app.handle_request
        self.flask_app = middleware.flask_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path is None or not path.startswith(self.path):
            return self.middleware(environ, start_response)  # type: ignore[no-any-return]
        environ["flask.app"] = self.flask_app
        if "gunicorn.socket" in environ:
            environ["eventlet.input"] = GunicornInput(environ["gunicorn.socket"])
        return self.handle(environ, start_response)  # type: ignore[no-any-return]


def take_socketio_path_first(app: Flask) -> None:
    """Put `SocketIOFirst` in front of Flask-SocketIO's middleware, if it is the app's entry."""
    if isinstance(app.wsgi_app, _SocketIOMiddleware):
        app.wsgi_app = SocketIOFirst(app.wsgi_app)  # type: ignore[method-assign]
