"""Several service processes on one port: `recsys api --workers N`.

Each worker is a process of its own (its own GIL, its own models, item index and caches) with
a socket bound to the same host and port with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers' listening sockets. A worker's socket starts listening only when
the worker is ready to accept (asyncio's ``create_server`` calls ``listen``): a worker that is
still loading its models, at start or after a restart, is not in the kernel's choice, so no
connection waits in its queue for the load to end. The parent binds the port first without
listening (so ``--port 0`` resolves to one number and a port in use fails before any worker
starts), starts the workers with the ``spawn`` method (TensorFlow is not fork-safe), restarts a
worker that dies, and stops them all on SIGINT or SIGTERM.

A worker killed outright loses the connections it had accepted and those that reached its
socket while the kernel was closing it (tens of milliseconds); on Linux 5.14 or later,
``sysctl net.ipv4.tcp_migrate_req=1`` hands the latter to the other workers.

Metrics: the parent gives the workers one Prometheus multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, prometheus_client's own mechanism, which must be set before
``prometheus_client`` is imported), so ``GET /metrics`` on any worker reports the sum over
all of them; a dead worker is marked so in that directory.

Guarantees: ``serve_workers`` returns only after every worker has exited; a worker that
exits within ``min_uptime_s`` of its start ends the whole service (a start-up failure would
otherwise restart for ever), one that dies later is restarted with the same index.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from typing import Any, Callable

from recsys.errors import ConfigError
from recsys.process_lifetime import exit_with_parent

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LISTEN_BACKLOG = 2048


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` that does not listen: it holds the
    port (and resolves port 0) while receiving no connection itself."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers above 1 needs SO_REUSEPORT, which this platform lacks")
    return _bound_socket(host, port)


def worker_socket(host: str, port: int) -> socket.socket:
    """A worker's own socket on the shared ``host:port``, bound but not listening: the worker
    calls ``listen`` (e.g. ``sock.listen(LISTEN_BACKLOG)``, or asyncio's ``create_server``
    with ``sock=``) once it is ready, and only then receives connections."""
    return _bound_socket(host, port)


def _worker_main(target: Callable[..., Any], args: tuple, host: str, port: int,
                 index: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    exit_with_parent(parent_pid)  # and a parent killed outright takes its workers along
    target(worker_socket(host, port), index, *args)


class WorkerPool:
    """``workers`` processes, each running ``target(sock, index, *args)`` (a module-level
    function: it is pickled to the spawned process) on its own socket, bound to the shared
    port; ``target`` makes it listen when it is ready to accept (see :func:`worker_socket`)."""

    def __init__(self, target: Callable[..., Any], args: tuple, workers: int, host: str,
                 port: int, min_uptime_s: float = 30.0):
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.target, self.args, self.workers = target, args, workers
        self.host, self.min_uptime_s = host, min_uptime_s
        self._reserved = reserve_port(host, port)
        self.port = self._reserved.getsockname()[1]
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, Any] = {}
        self._started: dict[int, float] = {}
        self._stop = threading.Event()
        self.failed: str | None = None

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_worker_main, name=f"recsys-api-{index}", daemon=False,
            args=(self.target, self.args, self.host, self.port, index, os.getpid()))
        process.start()
        self._processes[index], self._started[index] = process, time.monotonic()
        log.info("worker %d started (pid %d)", index, process.pid)

    def start(self) -> "WorkerPool":
        for index in range(self.workers):
            self._start(index)
        return self

    def pids(self) -> dict[int, int]:
        """The current process id of each started worker, by worker index."""
        return {index: process.pid for index, process in self._processes.items()}

    def supervise(self, poll_s: float = 0.5) -> None:
        """Restart workers that die, until ``stop()`` or a worker fails at start-up."""
        while not self._stop.wait(poll_s):
            for index, process in list(self._processes.items()):
                if process.is_alive():
                    continue
                _mark_dead(process.pid)
                uptime = time.monotonic() - self._started[index]
                if uptime < self.min_uptime_s:
                    self.failed = (f"worker {index} exited with code {process.exitcode} "
                                   f"{uptime:.1f}s after its start")
                    log.error("%s: stopping the service", self.failed)
                    self._stop.set()
                    break
                log.warning("worker %d (pid %d) exited with code %s after %.0fs: restarting",
                            index, process.pid, process.exitcode, uptime)
                self._start(index)

    def request_stop(self) -> None:
        """Make ``supervise`` return (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self._processes.values():
            process.join(max(deadline - time.monotonic(), 0.1))
            if process.is_alive():
                process.kill()
                process.join()
        self._reserved.close()


def _mark_dead(pid: int | None) -> None:
    if pid is not None and os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def serve_workers(target: Callable[..., Any], args: tuple, workers: int, host: str,
                  port: int) -> int:
    """Run ``workers`` processes of ``target`` on ``host:port`` until SIGINT or SIGTERM;
    returns 0, or 1 if a worker failed at start-up. Sets ``PROMETHEUS_MULTIPROC_DIR`` to a
    fresh directory for the workers (removed at the end)."""
    metrics_dir = tempfile.mkdtemp(prefix="recsys-api-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir
    pool = WorkerPool(target, args, workers, host, port)
    handlers = {s: signal.signal(s, lambda *_: pool.request_stop())
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        log.info("%d workers on http://%s:%d", workers, host, pool.port)
        pool.start().supervise()
    finally:
        pool.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if pool.failed else 0


__all__ = ["WorkerPool", "serve_workers", "reserve_port", "worker_socket", "LISTEN_BACKLOG",
           "MULTIPROC_ENV"]
