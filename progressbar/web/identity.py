"""Who is asking: by default, a random id in Flask's signed session cookie.

A host app with its own users replaces it with `ProgressBar.identity_loader`.
"""

from __future__ import annotations

import secrets

from flask import current_app, session

from ..errors import ProtocolError
from ..state import state


def session_identity() -> str:
    """The caller's identity, created on first sight.

    Over HTTP it is saved in the session cookie. Inside a Socket.IO handler the
    session is the connection's own copy of the cookie's, so a connection that
    came without a cookie gets an identity for that connection alone.
    """
    if not current_app.secret_key:
        raise RuntimeError("progressbar's default identities live in the session: set SECRET_KEY")
    identity = session.get("identity")
    if not isinstance(identity, str):
        identity = session["identity"] = secrets.token_urlsafe(18)
        session.permanent = True
    return identity


def current_identity() -> str:
    """The caller's identity from the app's loader; `unauthorized` if it has none."""
    identity = state().extension.identity()
    if not isinstance(identity, str) or not identity:
        raise ProtocolError("unauthorized", "sign in to start and follow tasks")
    return identity
