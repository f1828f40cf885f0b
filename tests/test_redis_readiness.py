"""redis-py's look for unread data on a pooled connection, in a green
process: answered without a turn of the hub, and still right."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from progressbar.web.redis_readiness import check_without_hub
from tests.stack import ROOT

PATCH = {
    "eventlet": "import eventlet; eventlet.monkey_patch()",
    "gevent": "from gevent import monkey; monkey.patch_all()",
}

# Run in a process of its own, patched as the web process is.
PROBE = """
import json, sys, time
import redis
from progressbar.web.redis_readiness import check_without_hub

url = sys.argv[1]
mode = sys.argv[2]
seen = {"patched": check_without_hub(mode), "again": check_without_hub(mode)}
client = redis.Redis.from_url(url)
client.ping()
connection = client.connection_pool.get_connection()

def hub_turns_during(call):
    turned = []
    spawn(lambda: turned.append(1))
    answer = call()
    return answer, bool(turned)

seen["idle"] = hub_turns_during(connection.can_read)
pause(0.05)
connection.send_command("PING")
deadline = time.monotonic() + 5
while not connection.can_read() and time.monotonic() < deadline:
    pause(0.01)
seen["reply waiting"] = hub_turns_during(connection.can_read)
seen["reply"] = connection.read_response().decode()
seen["read"] = hub_turns_during(connection.can_read)
started = time.monotonic()
seen["waited"] = [*hub_turns_during(lambda: connection.can_read(timeout=0.2))]
seen["waited_s"] = round(time.monotonic() - started, 2)
client.connection_pool.release(connection)
print(json.dumps(seen))
"""

GREEN = {
    "eventlet": "import eventlet\nspawn = eventlet.spawn\npause = eventlet.sleep\n",
    "gevent": "import gevent\nspawn = gevent.spawn\npause = gevent.sleep\n",
}


@pytest.mark.parametrize("library", ["eventlet", "gevent"])
def test_the_check_takes_no_hub_turn_and_still_sees_unread_data(
    library: str, redis_url: str
) -> None:
    script = PATCH[library] + "\n" + GREEN[library] + PROBE
    done = subprocess.run(
        [sys.executable, "-c", script, redis_url, library],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["patched"] is True and seen["again"] is False
    # [answer, whether another green thread ran meanwhile]
    assert seen["idle"] == [False, False]
    # (Readable, redis-py looks further, whether the server closed it.)
    assert seen["reply waiting"][0] is True
    assert seen["reply"] == "PONG"
    assert seen["read"] == [False, False]
    # A check that may wait still waits on the hub, for its whole timeout.
    assert seen["waited"] == [False, True] and seen["waited_s"] >= 0.19


def test_a_threaded_process_is_left_as_it_is() -> None:
    assert check_without_hub("threading") is False
