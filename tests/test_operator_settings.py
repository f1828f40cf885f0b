"""Operator settings that do what they say: ALLOWED_ORIGINS, TLS Redis URLs,
Redis at `maxmemory`."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import socketio

from tests.stack import extra_web, identity_cookie

LISTED = "https://app.example"


def connects(base_url: str, origin: str, transport: str) -> bool:
    """Does a Socket.IO connection whose requests carry this Origin open?"""
    if transport == "websocket":
        client = socketio.Client(websocket_extra_options={"origin": origin})
        headers = {}
    else:
        client = socketio.Client()
        headers = {"Origin": origin}
    try:
        client.connect(
            base_url,
            namespaces=["/progress"],
            transports=[transport],
            headers=headers,
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        return False
    client.disconnect()
    return True


def api_accepts(base_url: str, origin: str) -> bool:
    """Does the HTTP API take a state change (a cancel) from this Origin?"""
    answer = requests.post(
        f"{base_url}/api/tasks/no-such-task/cancel",
        json={},
        headers={"Origin": origin, "Cookie": identity_cookie(base_url)},
        timeout=5,
    )
    return answer.status_code != 403


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_allowed_origins_add_to_the_pages_own(
    stack_env: dict[str, str], logs_dir: Path, transport: str
) -> None:
    env = {**stack_env, "ALLOWED_ORIGINS": f"{LISTED}, https://admin.example"}
    with extra_web(env, logs_dir, f"web-origins-{transport}") as base:
        assert connects(base, base, transport)  # the app's own page
        assert connects(base, LISTED, transport)
        assert not connects(base, "http://evil.example", transport)
        # The HTTP API draws the same line.
        assert api_accepts(base, base) and api_accepts(base, LISTED)
        assert not api_accepts(base, "http://evil.example")
