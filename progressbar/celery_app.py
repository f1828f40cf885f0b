"""The Celery app of a Flask app, configured from the extension's settings.

Both processes use it: the web process (and the CLI) to send tasks, a worker
to run them.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from .settings import Settings


def celery_init_app(
    name: str,
    settings: Settings,
    task_cls: type[Task],
    extra_config: dict[str, Any] | None = None,
) -> Celery:
    """A Celery app on the settings' Redis; `extra_config` adds to (or overrides) ours."""
    celery_app = Celery(name, task_cls=task_cls)
    url = settings.redis_url
    celery_app.conf.update(
        broker_url=url,
        # Results are kept as Celery keeps them (`AsyncResult(id).get()`), for
        # tracked tasks too; the bar has its own copy in the final snapshot.
        result_backend=url,
        # One result backend for the process, not one per thread: under
        # eventlet or gevent every Socket.IO event runs in a green thread of
        # its own, and each built a backend, a Redis pool and a pub/sub
        # connection to send one task (about 2.5 ms of the web process's
        # CPU per start).
        result_backend_thread_safe=True,
        worker_concurrency=settings.worker_concurrency,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            # A message whose worker died before taking it on comes back after
            # this long (Redis has no acks: kombu keeps it aside meanwhile);
            # a copy delivered twice runs once (the store's CLAIM).
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, int(settings.visibility_timeout / 5)),
            "unacked_restore_throttle": 1,
        },
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    extra = dict(extra_config or {})
    # Added to ours, not instead: the timeouts above keep a Redis outage short.
    transport = extra.pop("broker_transport_options", {})
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        **transport,
    }
    celery_app.conf.update(extra)
    return celery_app
