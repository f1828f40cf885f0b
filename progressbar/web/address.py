"""The client's address, which the rate limits and caps count by: the peer of
the connection (REMOTE_ADDR), or, behind TRUSTED_PROXIES proxies, the address
the outermost trusted one saw, from X-Forwarded-For (as werkzeug's ProxyFix
reads it with x_for)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request

from ..state import state

# An address longer than this is no address (IPv6 with a zone fits easily).
MAX_ADDRESS = 64


def address_of(environ: Mapping[str, Any], trusted_proxies: int) -> str:
    """The client address of a WSGI `environ`. X-Forwarded-For is believed only
    for the `trusted_proxies` hops nearest to us, which each appended the peer
    they saw; anything a client wrote in the header itself stays to the left
    and is ignored. Too few hops listed: the header is not ours, REMOTE_ADDR."""
    remote = str(environ.get("REMOTE_ADDR") or "")
    if trusted_proxies > 0:
        forwarded = [
            hop.strip() for hop in str(environ.get("HTTP_X_FORWARDED_FOR") or "").split(",")
        ]
        forwarded = [hop for hop in forwarded if hop]
        if len(forwarded) >= trusted_proxies:
            remote = forwarded[-trusted_proxies]
    return remote[:MAX_ADDRESS] or "unknown"


def client_address() -> str:
    """The address of the client of this request or Socket.IO event."""
    return address_of(request.environ, state().settings.trusted_proxies)
