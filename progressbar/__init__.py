"""Live progress of Celery tasks in the browser, pushed through Flask-SocketIO."""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from . import config
from .celery_app import celery_init_app, progress
from .cli import progress_cli
from .errors import TaskError
from .namespace import ProgressNamespace
from .publisher import NAMESPACE, queue_manager
from .reporter import Progress, TaskCancelled
from .store import Store, connect

__all__ = ["create_app", "socketio", "progress", "Progress", "TaskCancelled", "TaskError"]

socketio = SocketIO()


def _eventlet_patched() -> bool:
    # Look without importing: only the web entry point may bring eventlet in.
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher and patcher.is_monkey_patched("socket"))


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; the Celery worker builds it too, to share settings."""
    app = Flask(__name__, root_path=str(config.PROJECT_ROOT), instance_relative_config=True)
    app.config.from_mapping(config.from_environment())
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = config.instance_secret_key(app.instance_path)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")

    app.extensions["progress_store"] = Store(
        connect(app.config["REDIS_URL"], app.config["REDIS_MAX_CONNECTIONS"]),
        ttl=app.config["TASK_TTL"],
        heartbeat_timeout=app.config["LOST_TIMEOUT"],
        max_active=app.config["MAX_ACTIVE_TASKS"],
        channel=app.config["SOCKETIO_CHANNEL"],
    )
    celery_init_app(app)

    async_mode = app.config["SOCKETIO_ASYNC_MODE"] or (
        "eventlet" if _eventlet_patched() else "threading"
    )
    socketio.init_app(
        app,
        async_mode=async_mode,
        message_queue=app.config["REDIS_URL"],
        client_manager=queue_manager(app, write_only=False),
        cors_allowed_origins=app.config["ALLOWED_ORIGINS"] or None,
        max_http_buffer_size=64 * 1024,
        transports=app.config["SOCKETIO_TRANSPORTS"],
    )
    socketio.on_namespace(ProgressNamespace(NAMESPACE))

    from . import (
        api,
        tasks,  # noqa: F401  registers the demo tasks
        views,
    )

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.cli.add_command(progress_cli)
    return app
