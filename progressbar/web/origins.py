"""Which origins may open a Socket.IO connection or change state over the
HTTP API: the page's own, and those of ALLOWED_ORIGINS besides. One rule for
both, so a page that may do one may do the other."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def own_origins(environ: Mapping[str, Any]) -> set[str]:
    """The origin a page of this server has, as python-engineio's same-origin
    default reads it: the request's scheme and Host, and the forwarded ones
    when a proxy passes them on."""
    scheme, host = environ.get("wsgi.url_scheme", "http"), environ.get("HTTP_HOST")
    if not host:
        return set()
    origins = {f"{scheme}://{host}"}
    forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO")
    forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
    if forwarded_proto or forwarded_host:
        proto = (forwarded_proto or scheme).split(",")[0].strip()
        fhost = (forwarded_host or host).split(",")[0].strip()
        origins.add(f"{proto}://{fhost}")
    return origins


def origin_allowed(
    origin: str | None, environ: Mapping[str, Any], allowed: Iterable[str]
) -> bool:
    """True for the page's own origin and for the listed ones."""
    if not isinstance(origin, str):
        return False  # no Origin: engine.io asks for CORS headers it then omits
    listed = {o.rstrip("/") for o in allowed}
    origin = origin.rstrip("/")
    return "*" in listed or origin in listed or origin in own_origins(environ)


def socketio_origins(
    allowed: Iterable[str],
) -> Callable[[str | None, Mapping[str, Any]], bool] | str | None:
    """`cors_allowed_origins` for python-engineio: None (its same-origin
    default) without a list, '*' for any; with a list, a check that adds it to
    the page's own origin (a plain list would replace it)."""
    listed = tuple(allowed)
    if not listed or "*" in listed:
        return "*" if listed else None
    return lambda origin, environ: origin_allowed(origin, environ, listed)
