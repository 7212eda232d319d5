"""`recsys api --workers N`'s process pool: N processes share one port through SO_REUSEPORT,
a worker that dies is restarted, a worker that fails at start ends the service, a port in use
is refused before any worker starts. Real processes (spawn) serving real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request

import pytest
from worker_support import pid_server

from recsys.errors import ConfigError
from serving.recommendations.worker_processes import WorkerPool


def _get(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
        return json.loads(answer.read())


def _pids(port: int, want: int, deadline_s: float = 60.0) -> dict[int, int]:
    """Index -> pid of the workers seen, polling new connections until ``want`` answered."""
    seen, deadline = {}, time.monotonic() + deadline_s
    while len(seen) < want:
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        try:
            body = _get(port)
            seen[body["index"]] = body["pid"]
        except OSError:
            time.sleep(0.1)
    return seen


@pytest.fixture
def pool():
    pools = []

    def make(*args, **kwargs) -> WorkerPool:
        pools.append(WorkerPool(pid_server, *args, **kwargs))
        return pools[-1]

    yield make
    for p in pools:
        p.stop()


def test_workers_share_one_port_and_a_dead_one_is_restarted(pool):
    workers = pool((), 2, "127.0.0.1", 0, min_uptime_s=0.0).start()
    supervisor = threading.Thread(target=workers.supervise, args=(0.05,), daemon=True)
    supervisor.start()
    before = _pids(workers.port, 2)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # worker 0 comes back as a new process on the same port
        after = _pids(workers.port, 2)
        if after[0] != before[0]:
            break
        assert time.monotonic() < deadline, "worker 0 was not restarted"
        time.sleep(0.1)
    assert after[1] == before[1] and workers.failed is None
    workers.stop()
    supervisor.join(5)
    with pytest.raises(OSError):
        _get(workers.port)


def test_a_worker_still_loading_receives_no_connection(pool, tmp_path):
    """Worker 1 "loads its models" until a file appears: meanwhile every new connection is
    answered by worker 0 (none waits in worker 1's queue); once it is ready, it answers too."""
    ready = tmp_path / "ready"
    workers = pool((False, str(ready), 1), 2, "127.0.0.1", 0, min_uptime_s=0.0).start()
    assert _pids(workers.port, 1) == {0: workers.pids()[0]}
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready.loading").exists():  # worker 1 holds its socket, loading
        assert time.monotonic() < deadline, "worker 1 did not start"
        time.sleep(0.05)
    answered_by = {_get(workers.port)["index"] for _ in range(40)}  # 40 new connections
    assert answered_by == {0}
    ready.touch()
    assert set(_pids(workers.port, 2)) == {0, 1}


def test_a_worker_failing_at_start_ends_the_service(pool):
    workers = pool((True,), 2, "127.0.0.1", 0, min_uptime_s=60.0).start()
    workers.supervise(0.05)  # returns once a worker has failed
    assert workers.failed is not None and "exited with code 3" in workers.failed


def test_a_port_in_use_is_refused_naming_it():
    with socket.socket() as plain:  # a listener without SO_REUSEPORT holds the port
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = plain.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: "):
            WorkerPool(pid_server, (), 2, "127.0.0.1", port)


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ConfigError, match=f"workers must be a positive integer, got {workers}"):
        WorkerPool(pid_server, (), workers, "127.0.0.1", 0)
