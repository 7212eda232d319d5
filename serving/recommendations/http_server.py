"""Running an ASGI app (the recommendation API) with uvicorn in a background thread, for the
demo, benchmarks and tests; `recsys api` runs uvicorn in the foreground instead."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request
from typing import Iterator


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0,
                    start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL once ``/healthz`` answers.

    The host process's logging is left as it is: uvicorn's default ``log_config`` would run
    ``logging.config.dictConfig``, which closes every handler the process has (log files, and
    under pytest the captured streams)."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, log_config=None))
    thread = threading.Thread(target=server.run, name="recsys-api", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + start_timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                raise RuntimeError(f"the API did not start on {url}")
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


__all__ = ["serve_in_thread", "free_port"]
