"""Who is asking: by default, a random id in a signed cookie of the
extension's own, `progressbar_identity`.

The cookie is set on the response that creates the identity, and on no other:
the host's pages and its session cookie are left alone. Pages get it from
`/progressbar/identity`, which the browser client asks before it connects.
A host app with its own users replaces all of this with
`ProgressBar.identity_loader`.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Response, after_this_request, current_app, g, request, session
from itsdangerous import BadSignature, URLSafeSerializer

from ..errors import ProtocolError
from ..reads import Kept
from ..state import state
from .address import client_address

COOKIE = "progressbar_identity"
# Browsers keep a cookie at most 400 days; an identity lasts as long as its
# tasks matter to someone.
MAX_AGE = 180 * 24 * 3600
# Where 0.2 kept the identity: still read, so no one loses their tasks.
LEGACY_SESSION_KEY = "identity"
# Cookies whose signature was checked, the latest this many.
COOKIES_KEPT = 10_000

_checked: Kept[tuple[Any, str], str] = Kept(COOKIES_KEPT)


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="progressbar.identity")  # type: ignore[arg-type]


def _from_cookie() -> str | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    # Every event of a connection carries the cookie it connected with, and
    # checking its signature costs more than most events' own work: values
    # already checked (under this secret key) are kept.
    key = (current_app.secret_key, raw)
    identity = _checked.get(key)
    if identity is not None:
        return identity
    try:
        identity = _signer().loads(raw)
    except BadSignature:
        return None
    if not isinstance(identity, str) or not identity:
        return None
    _checked.put(key, identity)
    return identity


def _in_socketio_event() -> bool:
    return getattr(request, "sid", None) is not None


def session_identity() -> str:
    """The caller's identity, created on first sight.

    Over HTTP a new identity is saved in the cookie by this response. Inside a
    Socket.IO handler there is no response to set a cookie on: a connection
    that came without the cookie gets an identity for that connection alone.
    """
    if not current_app.secret_key:
        raise RuntimeError("progressbar's default identities are signed: set SECRET_KEY")
    identity = _from_cookie()
    if identity is not None:
        return identity
    if _in_socketio_event():
        # The connection's own copy of the session: never saved to a cookie.
        identity = session.get("progressbar.identity") or session.get(LEGACY_SESSION_KEY)
        if not isinstance(identity, str):
            identity = session["progressbar.identity"] = _new_identity()
        return identity
    identity = g.get("progressbar_identity")
    if identity is None:
        legacy = session.get(LEGACY_SESSION_KEY)
        identity = legacy if isinstance(legacy, str) else _new_identity()
        g.progressbar_identity = identity
        after_this_request(_set_cookie)
    return identity


def _new_identity() -> str:
    """A fresh identity, if the client's address may have one more
    (NEW_IDENTITY_RATE_LIMIT): a client that drops its cookie gets no fresh
    allowance each time; ProtocolError('limit') otherwise."""
    state().admission.new_identity(client_address())
    return secrets.token_urlsafe(18)


def _set_cookie(response: Response) -> Response:
    config = current_app.config
    response.set_cookie(
        COOKIE,
        _signer().dumps(g.progressbar_identity),
        max_age=MAX_AGE,
        path=config.get("APPLICATION_ROOT") or "/",
        domain=config.get("SESSION_COOKIE_DOMAIN") or None,
        secure=bool(config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        # The HTTP API relies on it: a cross-site form post carries no identity.
        samesite="Lax",
    )
    return response


def current_identity() -> str:
    """The caller's identity from the app's loader; `unauthorized` if it has none."""
    identity = state().extension.identity()
    if not isinstance(identity, str) or not identity:
        raise ProtocolError("unauthorized", "sign in to start and follow tasks")
    return identity
