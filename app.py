"""Web entry point: `python app.py` serves under eventlet; `flask --app app run` also works."""

if __name__ == "__main__":
    # Must come before any other import, so every socket is green.
    import eventlet

    eventlet.monkey_patch()

import gc  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402

from demo import create_app, progress_bars  # noqa: E402
from progressbar.logs import use_line_format  # noqa: E402

app = create_app()
use_line_format(level=logging.INFO)


def serve() -> None:
    import eventlet.wsgi

    class NoDelayProtocol(eventlet.wsgi.HttpProtocol):
        """Send small frames at once: Nagle's algorithm would hold a push for
        the client's delayed ACK (~40 ms) whenever it follows another frame."""

        def setup(self) -> None:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()

    # Everything built so far lives as long as the process: keep it out of the
    # garbage collector's full passes, which otherwise stall every connection
    # for tens of milliseconds once a thousand clients are connected.
    gc.freeze()
    progress_bars.socketio.run(
        app,
        host=app.config["HOST"],
        port=app.config["PORT"],
        protocol=NoDelayProtocol,
        # Each open Socket.IO connection holds one green thread; eventlet's
        # default of 1,024 would stop accepting past that many watchers.
        max_size=app.config["WEB_MAX_CONNECTIONS"],
    )


if __name__ == "__main__":
    serve()
