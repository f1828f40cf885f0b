"""The extension in-process: what init_app sets up on an app, without Redis."""

from __future__ import annotations

import threading

import pytest
from celery import Task, shared_task
from flask import Flask, session
from itsdangerous import URLSafeSerializer

from demo import create_app
from progressbar import Kind, Param, ProgressBar, progress
from progressbar.state import state
from tests.stack import page_transports


def test_the_page_is_told_which_transports_the_server_serves() -> None:
    app = create_app({"SECRET_KEY": "x", "PROGRESSBAR_SOCKETIO_TRANSPORTS": "websocket"})
    page = app.test_client().get("/").get_data(as_text=True)
    assert page_transports(page) == ["websocket"]


def test_init_app_sets_up_one_app_and_refuses_bad_settings() -> None:
    app = Flask("host")
    app.config.update(SECRET_KEY="x", PROGRESSBAR_MAX_ACTIVE_TASKS="3")
    progress_bars = ProgressBar(app)
    assert state(app).settings.max_active_tasks == 3
    assert state(app).kinds is progress_bars.kinds
    assert "celery" in app.extensions
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {"/api/tasks", "/healthz", "/progressbar/static/<path:filename>"} <= rules

    options = app.extensions["celery"].conf.broker_transport_options
    assert options["socket_timeout"] == 5 and options["visibility_timeout"] == 3600

    tuned = Flask("tuned")
    tuned.config["SECRET_KEY"] = "x"
    ProgressBar().init_app(
        tuned, celery_config={"broker_transport_options": {"visibility_timeout": 60}}
    )
    options = tuned.extensions["celery"].conf.broker_transport_options
    assert options["socket_timeout"] == 5 and options["visibility_timeout"] == 60

    other = Flask("other")
    other.config["PROGRESSBAR_LOST_TIMEOUT"] = "soon"
    with pytest.raises(ValueError, match="PROGRESSBAR_LOST_TIMEOUT"):
        ProgressBar().init_app(other)
    with pytest.raises(RuntimeError, match="init_app"):
        state(Flask("bare"))


def test_the_browser_client_and_its_socketio_build_are_served() -> None:
    client = create_app({"SECRET_KEY": "x"}).test_client()

    def get(path: str) -> tuple[int, bytes]:
        with client.get(path) as response:
            return response.status_code, response.data

    status, module = get("/progressbar/static/index.js")
    assert status == 200 and b"ProgressClient" in module
    status, vendor = get("/progressbar/static/vendor/socket.io.esm.min.js")
    assert status == 200 and b"export" in vendor
    assert get("/progressbar/static/vendor/other.js")[0] == 404
    assert get("/progressbar/static/../extension.py")[0] == 404


def test_kinds_may_be_declared_before_init_app_and_run_directly() -> None:
    progress_bars = ProgressBar()

    @progress_bars.kind("count", params=[Param.int_range("n", 1, 5)])
    @shared_task(bind=True, name="tests.count")
    def count(self: Task, n: int = 1) -> int:
        with progress(self, total=n) as p:
            for _ in p.iter(range(n)):
                pass
        return int(p.current)

    app = Flask("early")
    app.config["SECRET_KEY"] = "x"
    progress_bars.init_app(app)
    with app.app_context():
        assert state().kinds["count"].task_name == "tests.count"
        # Called directly, not through `start`: it runs, reporting to nobody.
        assert count(3) == 3


def test_the_default_identity_is_a_cookie_set_once_and_only_when_created() -> None:
    app = Flask("anonymous")
    app.config["SECRET_KEY"] = "x"
    ProgressBar(app)
    app.add_url_rule("/hello", "hello", lambda: "hi")
    with app.test_client() as client:
        # The host's pages, 404s included, are left alone: cacheable as ever.
        for path in ("/hello", "/nowhere"):
            page = client.get(path)
            assert "Set-Cookie" not in page.headers and "Cookie" not in page.vary
        asked = client.get("/progressbar/identity")
        assert asked.status_code == 204 and asked.headers["Cache-Control"] == "no-store"
        cookie = asked.headers["Set-Cookie"]
        assert cookie.startswith("progressbar_identity=")
        assert "SameSite=Lax" in cookie and "HttpOnly" in cookie and "Max-Age=" in cookie
        # Known from then on: neither the page nor the client's next ask sets it again.
        assert "Set-Cookie" not in client.get("/progressbar/identity").headers
        assert "Set-Cookie" not in client.get("/hello").headers
        listed = client.get("/api/tasks")
    assert listed.status_code in (200, 503) and "Set-Cookie" not in listed.headers


def test_an_identity_kept_in_the_session_by_an_earlier_version_is_kept() -> None:
    app = Flask("upgraded")
    app.config["SECRET_KEY"] = "x"
    ProgressBar(app)
    with app.test_client() as client:
        with client.session_transaction() as session:
            session["identity"] = "earlier-identity"
        client.get("/progressbar/identity")
        cookie = client.get_cookie("progressbar_identity")
    assert cookie is not None
    signer = URLSafeSerializer("x", salt="progressbar.identity")
    assert signer.loads(cookie.value) == "earlier-identity"


def test_a_host_with_its_own_identities_keeps_its_pages_to_itself() -> None:
    asked: list[str] = []
    app = Flask("host")
    app.config["SECRET_KEY"] = "x"
    progress_bars = ProgressBar(app)

    @progress_bars.identity_loader
    def user() -> str | None:
        asked.append("asked")
        return None

    app.add_url_rule("/hello", "hello", lambda: "hi")
    with app.test_client() as client:
        page = client.get("/hello")
        assert page.status_code == 200 and "Set-Cookie" not in page.headers
        assert asked == []  # the loader is asked only about tasks
        refused = client.get("/api/tasks")
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert asked == ["asked"]


def test_a_host_without_a_secret_key_still_serves_its_pages() -> None:
    app = Flask("keyless")
    ProgressBar(app)
    app.add_url_rule("/hello", "hello", lambda: "hi")
    assert app.test_client().get("/hello").status_code == 200


def test_a_host_keeps_its_own_api_blueprint_and_may_move_ours() -> None:
    from flask import Blueprint

    app = Flask("host")
    app.config.update(
        SECRET_KEY="x",
        PROGRESSBAR_API_URL_PREFIX="/progress-api",
        PROGRESSBAR_HEALTH_URL="/-/health",
    )
    own = Blueprint("api", __name__, url_prefix="/api")
    own.add_url_rule("/items", "items", lambda: {"items": []})
    app.register_blueprint(own)
    ProgressBar(app)
    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert rules["/api/items"] == "api.items"
    assert rules["/progress-api/tasks"].startswith("progressbar_api.")
    assert rules["/-/health"] == "progressbar.healthz"
    assert "/healthz" not in rules and "/api/tasks" not in rules
    client = app.test_client()
    assert client.get("/api/items").json == {"items": []}
    document = client.get("/progress-api/openapi.json").json
    assert "/progress-api/tasks/{task_id}" in document["paths"]

    bad = Flask("bad")
    bad.config["PROGRESSBAR_API_URL_PREFIX"] = "api/"
    with pytest.raises(ValueError, match="PROGRESSBAR_API_URL_PREFIX"):
        ProgressBar(bad)


def test_the_apis_body_limit_is_its_own_and_a_hosts_routes_keep_theirs() -> None:
    from flask import request

    app = Flask("host")
    app.config.update(SECRET_KEY="x", MAX_CONTENT_LENGTH=1024 * 1024)

    @app.post("/upload")
    def upload() -> dict[str, int]:
        return {"bytes": len(request.get_data())}

    ProgressBar(app)
    client = app.test_client()
    body = b" " * 200 * 1024
    assert client.post("/upload", data=body).json == {"bytes": len(body)}
    refused = client.post("/api/tasks", data=body, content_type="application/json")
    assert refused.status_code == 413
    assert refused.json["error"]["code"] == "invalid"  # type: ignore[index]
    assert client.post("/upload", data=b" " * (2 * 1024 * 1024)).status_code == 413


def test_an_apps_own_socketio_must_queue_on_progressbars_redis() -> None:
    from flask_socketio import SocketIO

    bare = Flask("bare")
    bare.config["SECRET_KEY"] = "x"
    unbound = SocketIO()
    with pytest.raises(RuntimeError, match="init_app"):
        ProgressBar().init_app(bare, socketio=unbound)
    no_queue = SocketIO(bare, async_mode="threading")
    with pytest.raises(RuntimeError, match="message_queue"):
        ProgressBar().init_app(bare, socketio=no_queue)

    other = Flask("other")
    other.config["SECRET_KEY"] = "x"
    elsewhere = SocketIO(other, async_mode="threading", message_queue="redis://127.0.0.1:1/5")
    with pytest.raises(RuntimeError, match="not progressbar's"):
        ProgressBar().init_app(other, socketio=elsewhere)

    host = Flask("host")
    host.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL="redis://127.0.0.1:1/5")
    own = SocketIO(
        host, async_mode="threading", message_queue="redis://127.0.0.1:1/5", channel="host-channel"
    )
    sessions = host.session_interface
    progress_bars = ProgressBar()
    progress_bars.init_app(host, socketio=own)
    assert progress_bars.socketio is own and "/progress" in own.server.namespace_handlers
    assert state(host).store.channel == "host-channel"
    # Its message queue lets the watchers of an ended task go.
    manager = own.server.manager
    manager.basic_enter_room("sid", "/progress", "task", eio_sid="eio")
    end = {"method": "emit", "event": "progress", "namespace": "/progress", "room": "task"}
    manager._handle_emit({**end, "data": [{"task_id": "task", "state": "failed"}]})
    assert "task" not in manager.rooms.get("/progress", {})
    assert host.session_interface is sessions  # the host's server, the host's sessions


def test_an_apps_own_celery_is_used_as_it_is_and_only_tracked_tasks_change() -> None:
    from celery import Celery

    from progressbar.worker.task import ProgressTask

    app = Flask("host")
    app.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL="redis://127.0.0.1:1/5")

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery("host", task_cls=FlaskTask, broker="redis://127.0.0.1:1/5")
    celery.conf.update(task_ignore_result=False, worker_prefetch_multiplier=4)
    app.extensions["celery"] = celery
    progress_bars = ProgressBar()

    @celery.task(bind=True)
    def resize(self: Task) -> int:
        with progress(self, total=1) as p:
            p.update(1)
        return 1

    @celery.task
    def add(x: int, y: int) -> int:
        return x + y

    progress_bars.add_kind(Kind("resize", task=resize))  # before init_app
    progress_bars.init_app(app)

    @progress_bars.tracked
    @celery.task(bind=True)
    def convert(self: Task) -> str:
        return "done"

    assert app.extensions["celery"] is celery and state(app).celery is celery
    assert celery.conf.worker_prefetch_multiplier == 4 and celery.conf.task_ignore_result is False
    assert isinstance(resize, ProgressTask) and isinstance(resize, FlaskTask)
    assert isinstance(convert, ProgressTask)
    assert not isinstance(add, ProgressTask) and isinstance(add, FlaskTask)
    assert add(2, 3) == 5 and resize() == 1  # called directly: they run as before
    with app.test_request_context(), pytest.raises(TypeError, match="not tracked"):
        progress_bars.start(add.s(2, 3))


def test_a_celery_app_replaced_after_init_app_is_refused_before_anything_is_queued() -> None:
    from celery import Celery

    app = Flask("late")
    app.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL="redis://127.0.0.1:1/5")
    progress_bars = ProgressBar(app)
    app.extensions["celery"] = Celery("late")  # as a host's celery_init_app after ours
    with app.test_request_context(), pytest.raises(RuntimeError, match="before init_app"):
        progress_bars.start("anything", owner="someone")


def test_a_celery_app_handed_to_init_app_is_the_apps_from_then_on() -> None:
    from celery import Celery

    app = Flask("handed")
    app.config.update(SECRET_KEY="x", PROGRESSBAR_REDIS_URL="redis://127.0.0.1:1/5")
    celery = Celery("handed", broker="redis://127.0.0.1:1/5")

    @celery.task
    def plain() -> int:
        return 1

    progress_bars = ProgressBar()
    progress_bars.init_app(app, celery=celery)
    assert app.extensions["celery"] is celery and state(app).celery is celery
    # Refused for what it is (not tracked), not as a replaced Celery app.
    with app.test_request_context(), pytest.raises(TypeError, match="not tracked"):
        progress_bars.start(plain.s(), owner="someone")


def test_the_hosts_session_still_serves_its_pages() -> None:
    app = Flask("host")
    app.config["SECRET_KEY"] = "x"
    ProgressBar(app)
    app.add_url_rule("/remember", "remember", lambda: session.update(seen="yes") or "ok")
    app.add_url_rule("/recall", "recall", lambda: session.get("seen", "no"))
    with app.test_client() as client:
        assert client.get("/recall").text == "no"
        client.get("/remember")
        assert client.get("/recall").text == "yes"
    assert app.session_interface.get_cookie_name(app) == "session"


def test_one_result_backend_serves_every_thread() -> None:
    # Under eventlet or gevent every Socket.IO event is a thread of its own:
    # a backend each would mean a Redis pool and a pub/sub connection each.
    app = Flask("host")
    app.config["SECRET_KEY"] = "x"
    ProgressBar(app)
    celery = app.extensions["celery"]
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(celery.backend))
    thread.start()
    thread.join()
    assert seen == [celery.backend]
