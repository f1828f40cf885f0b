"""The demo app: one consumer of progressbar's public API, nothing more."""

from __future__ import annotations

from typing import Any

from flask import Flask

from progressbar import ProgressBar, environment_config

from . import config

progress_bars = ProgressBar()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; the Celery worker builds it too, to share settings."""
    app = Flask(__name__, root_path=str(config.PROJECT_ROOT), instance_relative_config=True)
    app.config.from_mapping(config.from_environment())
    app.config.from_mapping(environment_config())
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = config.instance_secret_key(app.instance_path)
    progress_bars.init_app(app)

    from . import (
        tasks,  # noqa: F401  registers the demo's kinds
        views,
    )

    app.register_blueprint(views.bp)
    return app
