"""`ProgressBar`, the Flask extension: one object a host app creates and binds
with `init_app(app)`, as Flask extensions do."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from celery import Celery
from celery.canvas import Signature
from celery.canvas import group as celery_group
from flask import Flask, has_request_context
from flask_socketio import SocketIO

from . import service
from .admission import Admission
from .celery_app import celery_init_app
from .cli import progress_cli
from .kinds import Kind, Kinds, Param
from .messages import NAMESPACE
from .reads import Reads
from .settings import Settings
from .state import EXTENSION, State, state
from .store import Store, connect
from .web import (
    api,
    direct_writes,
    event_tasks,
    gevent_parking,
    payloads,
    pings,
    serve,
    sessions,
    socketio_wsgi,
    views,
    watchdog,
)
from .web.address import client_address
from .web.identity import current_identity, session_identity
from .web.message_queue import (
    ResilientRedisManager,
    hosted_channel,
    let_go_after_ends,
    queue_manager,
)
from .web.namespace import HANDLED_AT_ONCE, ProgressNamespace
from .web.origins import socketio_origins
from .worker import signals as worker_signals
from .worker.context import WorkerContext, bind
from .worker.task import ProgressTask, track

T = TypeVar("T")


def _default_async_mode() -> str:
    """The async mode the process was made for, looked at without importing:
    only a web entry point (or gunicorn's worker) brings eventlet or gevent in."""
    eventlet = sys.modules.get("eventlet.patcher")
    if eventlet and eventlet.is_monkey_patched("socket"):
        return "eventlet"
    gevent = sys.modules.get("gevent.monkey")
    if gevent and gevent.is_module_patched("socket"):
        return "gevent"
    return "threading"


class ProgressBar:
    """Live progress bars for an app's Celery tasks.

    `init_app(app)` sets up, from `app.config["PROGRESSBAR_*"]`: the Celery app
    (`app.extensions["celery"]`, tasks run with a reporter), the Socket.IO
    server (`self.socketio`, with its `/progress` namespace on Redis), the HTTP
    API under `/api`, `/healthz`, the browser client under `/progressbar/static/`
    and the `flask progress` commands. Kinds are registered on this object, so
    they may be declared before or after `init_app`.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.kinds = Kinds()
        self.socketio = SocketIO()
        self.socketio.on_namespace(ProgressNamespace(NAMESPACE))
        self._identity: Callable[[], str | None] = session_identity
        # Apps' own Celery apps, whose tracked tasks get ProgressTask's protocol.
        self._host_celery: list[Celery] = []
        self._tracked: list[Any] = []
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        celery_config: dict[str, Any] | None = None,
        *,
        socketio: SocketIO | None = None,
        celery: Celery | None = None,
    ) -> None:
        """Bind to `app`; `celery_config` adds to (or overrides) the Celery settings.

        With `socketio`, the app's own Flask-SocketIO server (already bound to
        `app`, with its message queue on the same Redis as REDIS_URL), the
        `/progress` namespace is added to it instead of to a server of the
        extension's; its channel carries the pushes.

        With `celery`, or when `app.extensions["celery"]` exists, the app's own
        Celery app is used as it is: its configuration and task class are
        left alone, and only tracked tasks (kinds, and tasks marked with
        `tracked`) run with a reporter.
        """
        settings = Settings.from_config(app.config)
        transports = list(settings.socketio_transports)
        channel = settings.socketio_channel
        if socketio is not None:
            channel = hosted_channel(socketio, settings.redis_url)
            let_go_after_ends(socketio.server.manager)
            transports = list(getattr(socketio.server.eio, "transports", transports))
            if socketio is not self.socketio:
                self.socketio = socketio
                socketio.on_namespace(ProgressNamespace(NAMESPACE))
            payloads.answer_unreadable_events(socketio.server)
        store = Store(
            connect(settings.redis_url, settings.redis_max_connections),
            ttl=settings.task_ttl,
            heartbeat_timeout=settings.lost_timeout,
            max_active=settings.max_active_tasks,
            channel=channel,
            max_active_per_address=settings.max_active_tasks_per_address,
            max_active_total=settings.max_active_tasks_total,
            fair_share=settings.fair_share,
            # Pushes on each task's own channel, heard only where it is
            # watched, unless the app's own Socket.IO server listens to the
            # shared channel alone.
            task_channels=socketio is None
            or isinstance(socketio.server.manager, ResilientRedisManager),
        )
        celery_app = celery or app.extensions.get("celery")
        if celery_app is None:
            celery_app = celery_init_app(app.name, settings, ProgressTask, celery_config)
            celery_app.set_default()
            app.extensions["celery"] = celery_app
        else:
            if celery_config:
                raise TypeError("celery_config is for the extension's own Celery app")
            # Where Flask's pattern keeps it, and where `start` looks for it.
            app.extensions.setdefault("celery", celery_app)
            self._host_celery.append(celery_app)
            for task in [*(k.task for k in self.kinds if k.parts_of is None), *self._tracked]:
                track(celery_app, task)
        bind(celery_app, WorkerContext(app, store, settings))
        worker_signals.connect()
        app.extensions[EXTENSION] = State(
            settings=settings,
            store=store,
            kinds=self.kinds,
            socketio=self.socketio,
            celery=celery_app,
            extension=self,
            admission=Admission(store.redis, settings),
            reads=Reads(store, settings.redis_max_connections),
        )
        if socketio is None:
            self.socketio.init_app(
                app,
                async_mode=settings.socketio_async_mode or _default_async_mode(),
                message_queue=settings.redis_url,
                client_manager=queue_manager(settings, store),
                cors_allowed_origins=socketio_origins(settings.allowed_origins),
                max_http_buffer_size=payloads.MAX_BYTES,
                ping_interval=settings.ping_interval,
                ping_timeout=settings.ping_timeout,
                # Unreadable events answered `invalid`; strict JSON out.
                serializer=payloads.StrictPacket,
                transports=transports,
            )
            # One task pings every connection, rather than one task each.
            pings.share_pings(self.socketio.server.eio)
            # Each websocket written by its senders, rather than by a task each.
            direct_writes.write_directly(self.socketio.server.eio)
            # Under gunicorn's gevent worker (the extension's configuration),
            # open websockets wait on the loop, not each in two tasks.
            gevent_parking.park_websockets(self.socketio.server.eio)
            # Its events handled by a few long-lived tasks, rather than a task each.
            event_tasks.handle_events_in_tasks(self.socketio.server, NAMESPACE, HANDLED_AT_ONCE)
            # Its requests skip the middleware's per-request copies.
            socketio_wsgi.take_socketio_path_first(app)
            # Its events reuse their connection's session.
            sessions.skip_event_sessions(app)
        # For pages: `new ProgressClient({transports: {{ progressbar_transports()|tojson }}})`.
        app.add_template_global(lambda: transports, "progressbar_transports")

        app.register_blueprint(views.bp)
        app.register_blueprint(api.bp, url_prefix=settings.api_url_prefix)
        app.add_url_rule(
            settings.health_url, "progressbar.healthz", views.healthz, methods=["GET"]
        )
        app.cli.add_command(progress_cli)
        # Every web process runs the watchdog from its start: `run`, the
        # gunicorn configuration and `flask run` start it; under any other
        # server, the first request does.
        app.before_request(watchdog.start_current)
        watchdog.register(app)

    def run(
        self,
        app: Flask,
        host: str = "127.0.0.1",
        port: int = 5000,
        max_connections: int = 10_000,
        **options: Any,
    ) -> None:
        """Serve `app` with its Socket.IO server, tuned for many open bars:
        under eventlet, TCP_NODELAY and room for `max_connections`; in every
        mode, full garbage collections kept short (`web/collector.py`). Call it
        from your web entry point, after `eventlet.monkey_patch()` if you use
        eventlet. `options` go to Flask-SocketIO's `run`."""
        serve.run(self.socketio, app, host, port, max_connections, **options)

    def start_watchdog(self, app: Flask) -> None:
        """Run `app`'s watchdog in this process from now on, once. `run`, the
        gunicorn configuration and `flask run` start it themselves, and any
        other server with its first request: call it where your own server
        starts serving, so that it runs before anyone asks."""
        watchdog.start(app)

    def identity(self) -> str | None:
        """The caller's identity, as the app's loader gives it (None: nobody)."""
        return self._identity()

    @property
    def uses_session_identity(self) -> bool:
        """True while tasks belong to the default identity, kept in its own cookie."""
        return self._identity is session_identity

    def identity_loader(self, loader: Callable[[], str | None]) -> Callable[[], str | None]:
        """Decorator: who owns tasks, e.g. the signed-in user's id. It runs in a
        request or a Socket.IO event; returning None refuses the caller
        (`unauthorized`). The default is a random id in the session cookie."""
        self._identity = loader
        return loader

    def add_kind(self, kind: Kind) -> Kind:
        """Offer `kind` to clients: `start` with its name runs its task."""
        self.kinds.add(kind)
        if kind.parts_of is None:
            for celery_app in self._host_celery:
                track(celery_app, kind.task)
        return kind

    def tracked(self, task: T) -> T:
        """Decorator over a task of the app's own Celery app that server code
        starts with `start()` without offering it to clients as a kind."""
        self._tracked.append(task)
        for celery_app in self._host_celery:
            track(celery_app, task)
        return task


    def kind(
        self,
        name: str,
        *,
        title: str = "",
        description: str = "",
        params: Iterable[Param] = (),
        hidden: bool = False,
        time_limit: float | None = None,
    ) -> Callable[[T], T]:
        """Decorator over a Celery task: clients may start it as kind `name`,
        with `params` checked before anything is queued. A `hidden` kind is
        started only by server code and the CLI. `time_limit`: seconds it may
        run (TASK_TIME_LIMIT by default)."""

        def register(task: T) -> T:
            self.add_kind(
                Kind(
                    name=name,
                    task=task,
                    title=title,
                    description=description,
                    params=tuple(params),
                    hidden=hidden,
                    time_limit=time_limit,
                )
            )
            return task

        return register

    def start(
        self,
        task: Any,
        *,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        owner: str | None = None,
        kind: str | None = None,
        shared: bool = False,
    ) -> dict[str, Any]:
        """Start a tracked task from server code (a view, a beat task, a
        callback) with arguments of the server's choosing; its queued SNAPSHOT.

        `task` is a Celery task, its name, a signature (`task.s(path=...)`) or
        a `celery.group` of signatures, which runs as one bar over its parts.
        It belongs to `owner`, by default the identity of the current request
        or event. Its bar shows `kind`, by default the name of the kind
        registered over the task, else the task's name. A `shared` task may be
        watched by anyone who has its id; only its owner may cancel it.
        Refusals raise ProtocolError (`limit`, `unauthorized`).
        """
        if owner is None:
            if not has_request_context():
                raise TypeError("start() outside a request or a Socket.IO event needs owner=")
            owner = current_identity()
        # Inside a request, its client's address counts the start, as a client's own.
        address = client_address() if has_request_context() else ""
        if isinstance(task, celery_group):
            if args or kwargs:
                raise TypeError("give a group's arguments to its signatures")
            parts = [self._message(part, (), None) for part in task.tasks]
            if not parts:
                raise ValueError("a group to start needs at least one part")
            return service.launch(
                owner, kind or parts[0].kind, parts, group=True, shared=shared, address=address
            )
        message = self._message(task, tuple(args), kwargs)
        return service.launch(
            owner, kind or message.kind, [message], shared=shared, address=address
        )

    def _message(
        self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> service.Message:
        if isinstance(task, Signature):
            args = (*task.args, *args)
            kwargs = {**task.kwargs, **(kwargs or {})}
            task = task.task
        name = task if isinstance(task, str) else str(task.name)
        known = state().celery.tasks.get(name)
        if known is not None and not isinstance(known, ProgressTask):
            # Its worker would run it without a reporter: the bar would wait
            # until judged lost. Refused now instead.
            raise TypeError(
                f"{name} is not tracked: make it a kind, or decorate it with "
                "@progress_bars.tracked"
            )
        known_kind = next((k for k in self.kinds if k.task and k.task_name == name), None)
        label = known_kind.name if known_kind else name
        limit = known_kind.time_limit if known_kind else None
        return service.Message(name, dict(kwargs or {}), args, kind=label, time_limit=limit)

    def group(
        self,
        name: str,
        *,
        parts_of: str,
        split: Callable[[dict[str, Any]], list[dict[str, Any]]],
        title: str = "",
        description: str = "",
        params: Iterable[Param] = (),
        hidden: bool = False,
    ) -> Kind:
        """Offer a group: one bar over parts of kind `parts_of`, running in
        parallel; `split(params)` gives each part's params. Each part counts
        as a task toward the limits, and runs within its kind's time limit."""
        return self.add_kind(
            Kind(
                name=name,
                title=title,
                description=description,
                params=tuple(params),
                hidden=hidden,
                parts_of=parts_of,
                split=split,
            )
        )
