"""A third app, written as Flask's documentation writes a Flask + Celery app
(its own `celery_init_app` with a FlaskTask and a result backend, its own
SocketIO with an event of its own, its own `api` blueprint), that adopts
progressbar in a few lines: views that start tracked tasks, signed-in users."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from celery import Celery, Task, group
from flask import Blueprint, Flask, abort, redirect, render_template, request, session
from flask_socketio import SocketIO

from progressbar import ProgressBar

socketio = SocketIO()
progress_bars = ProgressBar()


@socketio.on("hello", namespace="/host")
def hello(name: str) -> str:
    return f"hello {name}"


@progress_bars.identity_loader
def signed_in_user() -> str | None:
    return session.get("user")


# The app's own `api` blueprint: the extension's is named so as not to clash.
api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/about")
def about_api() -> dict[str, str]:
    return {"app": "docsapp"}


def celery_init_app(app: Flask) -> Celery:
    """The app's own Celery, as Flask's documentation writes it."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        PROGRESSBAR_REDIS_URL=os.environ["REDIS_URL"],
        CELERY={
            "broker_url": os.environ["REDIS_URL"],
            "result_backend": os.environ["REDIS_URL"],
            "worker_concurrency": 2,
        },
    )
    celery_init_app(app)
    # The app's own Socket.IO server, on its own channel of the same Redis.
    socketio.init_app(
        app,
        # Flask-SocketIO would pick eventlet whenever it is installed: say which.
        async_mode=os.environ.get("DOCSAPP_ASYNC_MODE", "threading"),
        message_queue=os.environ["REDIS_URL"],
        channel="docsapp",
    )
    progress_bars.init_app(app, socketio=socketio)

    from . import tasks  # noqa: F401  registers the "thumbnails" kind

    app.register_blueprint(api)

    @app.get("/about")
    def about() -> str:
        # A public page, which shared caches may keep: no cookie of ours on it.
        return "<!doctype html><title>About</title><p>Thumbnails, made for you.</p>"

    @app.get("/")
    def page() -> str:
        return render_template("page.html", user=session.get("user"))

    @app.get("/login")
    def login():  # type: ignore[no-untyped-def]
        session["user"] = request.args["name"]
        return redirect("/")

    uploads = Path(tempfile.mkdtemp(prefix="docsapp-uploads-"))

    @app.post("/convert")
    def convert():  # type: ignore[no-untyped-def]
        # The host's own view: it keeps the upload and starts a tracked task
        # with arguments only the server chooses (a path, a dict).
        path = uploads / secrets.token_hex(8)
        path.write_text(request.form["text"])
        snapshot = progress_bars.start(
            tasks.convert.s(str(path), options={"upper": True}),
            shared=request.args.get("shared") == "1",
        )
        return redirect(f"/follow/{snapshot['task_id']}", code=303)

    @app.post("/batch")
    def batch():  # type: ignore[no-untyped-def]
        # A group built in code: one bar over its parts.
        parts = group(tasks.make_thumbnails.s(images=n, seconds_each=0.02) for n in (4, 6, 8))
        snapshot = progress_bars.start(parts, kind="album")
        return redirect(f"/follow/{snapshot['task_id']}", code=303)

    @app.get("/follow/<task_id>")
    def follow(task_id: str) -> str:
        if len(task_id) > 64:
            abort(404)
        return render_template("follow.html", task_id=task_id)

    return app
