"""Who is asking: a random id in Flask's signed session cookie."""

from __future__ import annotations

import secrets

from flask import session


def current_identity() -> str:
    """The caller's identity, created on first sight.

    Over HTTP it is saved in the session cookie. Inside a Socket.IO handler the
    session is the connection's own copy of the cookie's, so a connection that
    came without a cookie gets an identity for that connection alone.
    """
    identity = session.get("identity")
    if not isinstance(identity, str):
        identity = session["identity"] = secrets.token_urlsafe(18)
        session.permanent = True
    return identity
