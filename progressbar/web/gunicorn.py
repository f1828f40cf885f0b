"""A gunicorn configuration for a web process of many open bars:
`gunicorn -c python:progressbar.web.gunicorn "yourapp:create_app()"`.

One gevent worker (Socket.IO keeps each connection's state in its process:
scale out with more such processes behind a load balancer), room for 10,000
connections, and what the app built before serving kept out of the garbage
collector's full passes, which otherwise stall every connection at once.
Settings given on the command line win over these.
"""

from __future__ import annotations

import gc
from typing import Any

worker_class = "gevent"
workers = 1
worker_connections = 10_000


def post_worker_init(worker: Any) -> None:
    gc.freeze()
