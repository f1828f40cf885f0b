"""Web entry point: `python app.py` serves under eventlet; `flask --app app run` also works."""

if __name__ == "__main__":
    # Must come before any other import, so every socket is green.
    import eventlet

    eventlet.monkey_patch()

from progressbar import create_app, socketio  # noqa: E402

app = create_app()

if __name__ == "__main__":
    socketio.run(app, host=app.config["HOST"], port=app.config["PORT"])
