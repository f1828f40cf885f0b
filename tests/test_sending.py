"""What a start puts in the broker: a plain Celery task message, against a
real Redis, its arguments written out as Celery writes them."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

import redis
from celery import Task, shared_task
from celery.app.trace import build_tracer
from celery.utils.saferepr import saferepr
from flask import Flask

from progressbar import ProgressBar, progress


@shared_task(bind=True, name="tests.sending.count")
def count(self: Task, n: int = 1, label: str = "") -> int:
    with progress(self, total=n) as p:
        for _ in p.iter(range(n)):
            pass
    return n


def queued_messages(redis_url: str, queue: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    finally:
        client.close()


def app_with_a_queue_of_its_own(redis_url: str) -> tuple[Flask, ProgressBar, str]:
    """An app whose tasks go to a queue no worker reads: its messages stay
    there to be looked at."""
    queue = f"tests-sending-{secrets.token_hex(4)}"
    app = Flask(queue)
    app.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL=redis_url)
    progress_bars = ProgressBar()
    progress_bars.tracked(count)
    progress_bars.init_app(app)
    app.extensions["celery"].conf.task_default_queue = queue
    return app, progress_bars, queue


def test_a_started_tasks_message_says_its_arguments_as_celery_does(redis_url: str) -> None:
    app, progress_bars, queue = app_with_a_queue_of_its_own(redis_url)

    plain = {"n": 3, "label": "it's \"quoted\""}
    odd = {"n": Decimal("3"), "label": "x" * 2000}  # not plain, and too long to show whole
    with app.app_context():
        first = progress_bars.start(count, kwargs=plain, owner="someone")
        second = progress_bars.start(count, kwargs=odd, owner="someone")

    sent = queued_messages(redis_url, queue)
    assert [m["headers"]["id"] for m in sent] == [first["task_id"], second["task_id"]]
    assert first["state"] == second["state"] == "queued"
    for message, kwargs in zip(sent, (plain, odd), strict=True):
        headers = message["headers"]
        assert headers["task"] == "tests.sending.count"
        assert headers["argsrepr"] == "()"
        assert headers["kwargsrepr"] == saferepr(kwargs, 1024)


def test_a_task_that_starts_one_still_stores_its_own_result(redis_url: str) -> None:
    # Inside a worker's task Celery adds what a start sends to the task's
    # children, which it stores with the task's result: the real result object.
    app, progress_bars, queue = app_with_a_queue_of_its_own(redis_url)
    celery = app.extensions["celery"]
    celery.conf.result_backend = "cache+memory://"

    @celery.task(bind=True, name="tests.sending.parent", ignore_result=False)
    def parent(self: Task) -> str:
        with app.app_context():
            return str(progress_bars.start(count, kwargs={"n": 1}, owner="someone")["task_id"])

    trace = build_tracer(parent.name, parent, eager=False, propagate=False, app=celery)
    trace("parent-1", (), {}, {"id": "parent-1"})
    stored = celery.AsyncResult("parent-1")
    assert stored.state == "SUCCESS"
    assert stored.result == queued_messages(redis_url, queue)[0]["headers"]["id"]
