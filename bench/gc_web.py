"""`python -m bench.gc_web DIR`: `python app.py` (eventlet), its garbage
collector's passes timed.

Every collection's generation and pause are kept; on SIGUSR1 the ones since
the previous signal are written into DIR as the next numbered JSON file
(`gc-N.json`: a list of [generation, pause ms, objects collected]) and
forgotten, so a scenario brackets its measuring window with two signals.
`GC_THRESHOLD=700,10,10` in its environment sets the collector's thresholds
first, to try others (`python -m bench.churn --gc --set GC_THRESHOLD=...`).
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
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def time_collections(folder: Path) -> None:
    passes: list[list[float]] = []
    began = [0.0]
    numbers = itertools.count()

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pause_ms = (time.perf_counter() - began[0]) * 1000
            passes.append([info["generation"], round(pause_ms, 3), info["collected"]])

    def dump(signum: int, frame: Any) -> None:
        done = passes[:]
        del passes[:]
        (folder / f"gc-{next(numbers)}.json").write_text(json.dumps(done))

    gc.callbacks.append(timed)
    signal.signal(signal.SIGUSR1, dump)


if __name__ == "__main__":
    import os

    if os.environ.get("GC_THRESHOLD"):
        gc.set_threshold(*map(int, os.environ["GC_THRESHOLD"].split(",")))
    time_collections(Path(sys.argv[1]))
    sys.argv = ["app.py"]
    runpy.run_path("app.py", run_name="__main__")
