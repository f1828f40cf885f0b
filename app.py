"""Web entry point: `python app.py` serves under eventlet; `flask --app app run` also works."""

if __name__ == "__main__":
    # Must come before any other import, so every socket is green.
    import eventlet

    eventlet.monkey_patch()

import logging  # noqa: E402

from demo import create_app, progress_bars  # noqa: E402
from progressbar.logs import use_line_format  # noqa: E402

app = create_app()
use_line_format(level=logging.INFO)

if __name__ == "__main__":
    progress_bars.run(
        app,
        host=app.config["HOST"],
        port=app.config["PORT"],
        max_connections=app.config["WEB_MAX_CONNECTIONS"],
    )
