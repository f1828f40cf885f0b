"""The extension's settings: `PROGRESSBAR_*` keys of the Flask config, with defaults.

Each setting `X` is `PROGRESSBAR_X` in `app.config` and `X` in the environment
(`environment_config()` reads the environment, for apps deployed Heroku-style).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PREFIX = "PROGRESSBAR_"
TRANSPORTS = ("polling", "websocket")


def _string_list(raw: Any, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A list given as a list, or as one comma-separated string."""
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if allowed is not None and (not names or set(names) - set(allowed)):
        raise ValueError(f"{raw!r}; use {', '.join(allowed)} or both")
    return names


def _path(raw: Any) -> str:
    """A URL path of this app: starts with a slash, does not end with one."""
    path = str(raw).strip()
    if not path.startswith("/") or len(path) < 2 or path.endswith("/") or " " in path:
        raise ValueError(f"{raw!r} is not a path such as /api")
    return path


# Every spelling of TLS verification that redis-py, kombu or Celery accepts,
# as the one spelling all three read alike.
_CERT_REQS = {
    "none": "none",
    "cert_none": "none",
    "optional": "optional",
    "cert_optional": "optional",
    "required": "required",
    "cert_required": "required",
}


def redis_url(raw: Any) -> str:
    """A Redis URL whose `ssl_cert_reqs` every process reads alike: none,
    optional or required (CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED, any case,
    accepted); a rediss:// URL without it verifies the server (required)."""
    url = str(raw).strip()
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    normal = []
    for key, value in query:
        if key == "ssl_cert_reqs":
            spelled = _CERT_REQS.get(value.strip().lower())
            if spelled is None:
                raise ValueError(f"ssl_cert_reqs={value!r}: use none, optional or required")
            value = spelled
        normal.append((key, value))
    if parts.scheme == "rediss" and "ssl_cert_reqs" not in dict(normal):
        normal.append(("ssl_cert_reqs", "required"))
    if normal == query:
        return url
    return urlunsplit(parts._replace(query=urlencode(normal, safe="/:")))


def _optional_str(raw: Any) -> str | None:
    return str(raw) if raw not in (None, "") else None


OFF = ("", "0", "off", "none")


def _rate_limit(raw: Any) -> str | None:
    """A rate limit in the `limits` library's notation ("30/minute;5/second"),
    or None for none ("off")."""
    text = str(raw).strip()
    if text.lower() in OFF:
        return None
    from limits import parse_many

    parse_many(text)  # ValueError names what is wrong
    return text


def _flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _share(raw: Any) -> float:
    value = _number(float)(raw)
    if not 0 < value <= 1:
        raise ValueError(f"expected a share above 0 and at most 1, got {raw!r}")
    return float(value)


def _at_least(minimum: float, kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        value = _number(kind)(raw)
        if value < minimum:
            raise ValueError(f"expected at least {minimum:g}, got {raw!r}")
        return value

    return parse


@dataclass(frozen=True)
class Settings:
    """Every setting with its default. Field `x` is read from `PROGRESSBAR_X`."""

    # Broker, result store, Socket.IO message queue and task records;
    # rediss:// for TLS (`redis_url` spells its ssl_cert_reqs for every client).
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis pool size of each process; the pool waits rather than fails.
    redis_max_connections: int = 200
    # Pub/sub channel shared by web processes and workers.
    socketio_channel: str = "progressbar"
    # None: eventlet if the web entry point patched the process, else threading.
    socketio_async_mode: str | None = None
    # ("websocket",) alone needs no sticky sessions behind a load balancer.
    socketio_transports: tuple[str, ...] = TRANSPORTS
    # Origins allowed besides the page's own.
    allowed_origins: tuple[str, ...] = ()
    # Seconds: at most one push per task per interval.
    progress_interval: float = 0.1
    # Seconds a task record is kept after its last update.
    task_ttl: int = 24 * 3600
    # Pool processes per worker.
    worker_concurrency: int = 8
    # Seconds between a worker's heartbeats for the tasks it holds.
    heartbeat_interval: float = 1.0
    # Seconds without a heartbeat before a task is reported lost.
    lost_timeout: float = 5.0
    # Unfinished tasks one identity may have (a group counts its parts); kept
    # below the worker slots, so one visitor never fills them all.
    max_active_tasks: int = 6
    # Unfinished tasks the identities of one client address may have in all
    # (0: no such limit).
    max_active_tasks_per_address: int = 24
    # Unfinished tasks of everyone together: past it every start answers `busy`.
    max_active_tasks_total: int = 1000
    # Starts per client address, in the `limits` notation ("30/minute",
    # "5/second;30/minute"); a group costs its parts. "off": none.
    start_rate_limit: str | None = "30/minute"
    # New default identities (cookies) handed to one client address.
    new_identity_rate_limit: str | None = "10/minute"
    # Proxies in front of the web process whose X-Forwarded-For is believed, as
    # werkzeug's ProxyFix x_for: 0 trusts none (the address is REMOTE_ADDR),
    # 1 a single nginx in front.
    trusted_proxies: int = 0
    # Redis memory (bytes) past which starts answer `busy`; 0: 90% of Redis's
    # own maxmemory, when it has one.
    max_redis_memory: int = 0
    # Share of the live workers' slots that one identity, or one client
    # address, may run at once (at least one slot); its other tasks wait. 1: off.
    fair_share: float = 0.5
    # Seconds a task may run before Celery stops it (its soft time limit; the
    # hard one follows 10 s later), unless its kind or its Celery task sets
    # its own. The bar ends `failed` and says so.
    task_time_limit: float = 3600.0
    # Let clients (Socket.IO, HTTP) start hidden kinds; server code and the
    # CLI always may. For benchmarks.
    start_hidden_kinds: bool = False
    # Seconds a running task has to stop after its owner's cancel; past them
    # its worker process is terminated and the bar ends cancelled.
    cancel_grace: float = 10.0
    # Seconds a new task's message may take to reach the broker; a record
    # still not sent after them (its web process died meanwhile) ends lost.
    send_timeout: float = 30.0
    # Seconds before the broker hands out again a message that a worker took
    # but never started (it died holding it): kombu's Redis visibility timeout,
    # and its default. Tasks with an eta or countdown beyond it are handed out
    # again too, so lower it only when no task waits that long.
    visibility_timeout: float = 3600.0
    # Seconds between Engine.IO pings of each connection, and seconds a client
    # has to answer one: a client gone without a word is let go after both
    # (Engine.IO's own defaults). Lower the interval below a proxy's idle timeout.
    ping_interval: int = 25
    ping_timeout: int = 20
    # Where the HTTP JSON API lives, and the health check.
    api_url_prefix: str = "/api"
    health_url: str = "/healthz"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Read `PROGRESSBAR_*` keys, converting strings as the environment gives them."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name.upper()
            if key in config and config[key] is not None:
                try:
                    values[f.name] = _PARSERS[f.name](config[key])
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return cls(**values)


def _number(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        value = kind(raw)
        if kind is int and isinstance(raw, float) and raw != value:
            raise ValueError(f"expected a whole number, got {raw!r}")
        return value

    return parse


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "redis_url": redis_url,
    "redis_max_connections": _number(int),
    "socketio_channel": str,
    "socketio_async_mode": _optional_str,
    "socketio_transports": lambda raw: _string_list(raw, TRANSPORTS),
    "allowed_origins": _string_list,
    "progress_interval": _number(float),
    "task_ttl": _number(int),
    "worker_concurrency": _number(int),
    "heartbeat_interval": _number(float),
    "lost_timeout": _number(float),
    "max_active_tasks": _at_least(1, int),
    "max_active_tasks_per_address": _at_least(0, int),
    "max_active_tasks_total": _at_least(1, int),
    "start_rate_limit": _rate_limit,
    "new_identity_rate_limit": _rate_limit,
    "trusted_proxies": _at_least(0, int),
    "max_redis_memory": _at_least(0, int),
    "fair_share": _share,
    "task_time_limit": _at_least(1, float),
    "start_hidden_kinds": _flag,
    "cancel_grace": _at_least(1, float),
    "send_timeout": _at_least(1, float),
    "visibility_timeout": _at_least(1, float),
    "ping_interval": _at_least(1, int),
    "ping_timeout": _at_least(1, int),
    "api_url_prefix": _path,
    "health_url": _path,
}

# The environment variable of each setting: its field name in capitals.
ENVIRONMENT = tuple(f.name.upper() for f in fields(Settings))


def environment_config(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The `PROGRESSBAR_*` config keys for the settings set (non-empty) in `environ`."""
    return {PREFIX + name: environ[name] for name in ENVIRONMENT if environ.get(name)}
