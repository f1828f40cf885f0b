"""`python -m bench.traced_web DIR`: `python app.py` (eventlet) with tracemalloc on.

On SIGUSR1 it writes, into DIR, the next numbered tracemalloc snapshot and the
count of live objects by type: what the web process holds, to compare between
0 and N connections (bench/connections.py --profile).
"""

if __name__ == "__main__":
    import eventlet

    eventlet.monkey_patch()

import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import runpy  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tracemalloc  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

FRAMES = 12


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


if __name__ == "__main__":
    tracemalloc.start(FRAMES)
    dump_on_signal(Path(sys.argv[1]))
    sys.argv = ["app.py"]
    runpy.run_path("app.py", run_name="__main__")
