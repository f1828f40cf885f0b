"""`python -m bench.traced_web DIR [eventlet|gevent]`: a web process with tracemalloc on:
`python app.py` (eventlet), or gunicorn's gevent worker as configured by
`progressbar.web.gunicorn` (its worker inherits the tracing; the master
passes SIGUSR1 on to it).

On SIGUSR1 it writes, into DIR, the next numbered tracemalloc snapshot and the
count of live objects by type: what the web process holds, to compare between
0 and N connections (bench/connections.py --profile).
"""

import sys

if __name__ == "__main__" and sys.argv[2:] != ["gevent"]:
    import eventlet

    eventlet.monkey_patch()

import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import signal  # noqa: E402
import tracemalloc  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

FRAMES = 12
FOLDER_VARIABLE = "PROGRESSBAR_TRACE_FOLDER"


def dump_on_signal(folder: Path) -> None:
    numbers = itertools.count()

    def dump(signum: int, frame: Any) -> None:
        n = next(numbers)
        gc.collect()
        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        (folder / f"types-{n}.json").write_text(json.dumps(counts.most_common(60)))
        tracemalloc.take_snapshot().dump(str(folder / f"trace-{n}.bin"))
        (folder / f"done-{n}").write_text("")

    signal.signal(signal.SIGUSR1, dump)


# What gunicorn reads as its configuration when run as `-c python:bench.traced_web`.
from progressbar.web import gunicorn as _served  # noqa: E402
from progressbar.web.gunicorn import worker_class, worker_connections, workers  # noqa: E402,F401


def post_worker_init(worker: Any) -> None:
    _served.post_worker_init(worker)
    # After gunicorn's own handlers: SIGUSR1 (which the master passes on) dumps.
    dump_on_signal(Path(os.environ[FOLDER_VARIABLE]))


if __name__ == "__main__":
    tracemalloc.start(FRAMES)
    if sys.argv[2:] == ["gevent"]:
        from gunicorn.app.wsgiapp import run

        os.environ[FOLDER_VARIABLE] = sys.argv[1]
        sys.argv = ["gunicorn", "-c", "python:bench.traced_web", "app:app"]
        run()
    else:
        dump_on_signal(Path(sys.argv[1]))
        sys.argv = ["app.py"]
        runpy.run_path("app.py", run_name="__main__")
