"""Targets for WorkerPool tests, importable by spawned processes: tiny HTTP servers on a
worker's listening socket, answering with their pid and index."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def pid_server(sock, index: int, fail_at_start: bool = False,
               ready_file: str | None = None, ready_index: int | None = None) -> None:
    """Serve ``{"pid": ..., "index": ...}`` on GET / until killed, listening on the worker's
    bound socket once ready; ``fail_at_start`` exits 3 at once (a worker that cannot start).
    The worker numbered ``ready_index`` is "loading its models" (it writes
    ``ready_file + ".loading"``) until ``ready_file`` exists."""
    if fail_at_start:
        sys.exit(3)
    if ready_file is not None and index == ready_index:
        with open(ready_file + ".loading", "w"):
            pass
        while not os.path.exists(ready_file):
            time.sleep(0.05)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"pid": os.getpid(), "index": index}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_activate()  # listen: from here on the kernel sends this worker connections
    server.serve_forever()
