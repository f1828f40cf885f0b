"""A second, minimal app that adopts progressbar through its public API alone:
its own task kind, its own identities (a signed-in name), its own page."""

from __future__ import annotations

import os

from flask import Flask, redirect, render_template, request, session

from progressbar import ProgressBar

progress_bars = ProgressBar()


@progress_bars.identity_loader
def signed_in_user() -> str | None:
    return session.get("user")


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=os.environ["SECRET_KEY"],
        PROGRESSBAR_REDIS_URL=os.environ["REDIS_URL"],
        PROGRESSBAR_WORKER_CONCURRENCY=2,
    )
    progress_bars.init_app(app)

    from . import tasks  # noqa: F401  registers the "thumbnails" kind

    @app.get("/")
    def page() -> str:
        return render_template("page.html", user=session.get("user"))

    @app.get("/login")
    def login():  # type: ignore[no-untyped-def]
        session["user"] = request.args["name"]
        return redirect("/")

    return app
