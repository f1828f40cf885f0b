"""`python -m tests.small_buffers_web`: `python app.py` whose connections have a
4 KB send buffer, so that a watcher that stops reading soon has writes to it
taken only in part (the kernel's default grows to megabytes)."""

if __name__ == "__main__":
    import eventlet

    eventlet.monkey_patch()

import runpy  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

SEND_BUFFER = 4096


def small_send_buffers() -> None:
    from progressbar.web import serve

    protocol_of = serve._no_delay_protocol

    def small() -> type:
        base: Any = protocol_of()

        class SmallBuffers(base):  # type: ignore[misc,valid-type]
            def setup(self) -> None:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                super().setup()

        return SmallBuffers

    serve._no_delay_protocol = small


if __name__ == "__main__":
    small_send_buffers()
    sys.argv = ["app.py"]
    runpy.run_path("app.py", run_name="__main__")
