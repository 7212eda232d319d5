"""The CPU seconds the service spends on one request: its own thread's, plus those of the
dependency threads its stages ran on (``time.thread_time``: time spent waiting, for I/O, a
model server or the GIL, costs nothing). The canary compares two model labels' CPU per
answer (``recsys_model_label_cpu_seconds_total``): a candidate that does more work per
request costs capacity even where a lightly loaded machine hides it in the latencies.

Guarantees: ``measure`` adds the calling thread's CPU over its block to the account;
``carried(fn)`` runs ``fn`` in another thread with the caller's account, adding that
thread's CPU to it. Work outside the service's threads (a model server, TensorFlow's own
thread pools) is not in the account. A stage that outlives its caller's wait (a timed-out
call) adds its CPU when it ends, which may be after the account was read: that part is not
counted.
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


class CpuAccount:
    """CPU seconds from any number of threads (``list.append`` is atomic)."""

    def __init__(self) -> None:
        self._parts: list[float] = []

    def add(self, seconds: float) -> None:
        self._parts.append(seconds)

    @property
    def seconds(self) -> float:
        return sum(self._parts)


_CURRENT: contextvars.ContextVar[CpuAccount | None] = contextvars.ContextVar(
    "recsys_cpu_account", default=None)


@contextmanager
def measure(account: CpuAccount) -> Iterator[CpuAccount]:
    """Within the block, ``account`` is the current one, and this thread's CPU goes to it."""
    token = _CURRENT.set(account)
    started = time.thread_time()
    try:
        yield account
    finally:
        account.add(time.thread_time() - started)
        _CURRENT.reset(token)


def carried(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn``, to run in another thread, its CPU added to the caller's current account (none:
    ``fn`` as it is)."""
    account = _CURRENT.get()
    if account is None:
        return fn

    def run() -> T:
        started = time.thread_time()
        try:
            return fn()
        finally:
            account.add(time.thread_time() - started)

    return run


__all__ = ["CpuAccount", "measure", "carried"]
