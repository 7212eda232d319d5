"""Request deadlines: one time budget per request, split among the stages that spend it.

Guarantees:

* ``Deadline`` reads only the clock it is given (monotonic seconds, ``time.monotonic`` by
  default), so it is deterministic under a fake clock; ``remaining()`` is never negative and
  ``budget_for(s)`` never exceeds what is left of the request's budget.
* ``call_with_timeout`` returns ``fn()``'s result, or re-raises the very exception ``fn``
  raised (even a ``TimeoutError``), or raises ``DeadlineExceeded`` if ``fn`` has not finished
  after ``timeout_s`` seconds. A timed-out call that has already started is *left running* in
  the executor (Python cannot stop a thread) and its eventual result or error is discarded; one
  still queued behind other work is cancelled. Size the executor for such stragglers.
* A bad budget or stage name is a ``ConfigError`` naming the value.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Callable
from typing import TypeVar

from recsys.errors import ConfigError

T = TypeVar("T")
Clock = Callable[[], float]


class DeadlineExceeded(Exception):
    """A stage did not finish within its time budget; ``stage`` names it."""

    def __init__(self, stage: str, budget_s: float) -> None:
        super().__init__(stage, budget_s)  # both in ``args``, so the error pickles
        self.stage = stage
        self.budget_s = budget_s

    def __str__(self) -> str:
        return f"{self.stage} did not finish within its budget of {self.budget_s:g} s"


def _seconds(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number > 0, else a ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class Deadline:
    """The time budget of one request, started when the ``Deadline`` is created."""

    def __init__(self, budget_s: float, clock: Clock = time.monotonic) -> None:
        self.budget_s = _seconds("budget_s", budget_s)
        if not callable(clock):
            raise ConfigError(f"clock must be a callable returning seconds, got {clock!r}")
        self._clock = clock
        self._start = clock()

    def elapsed(self) -> float:
        """Seconds since the deadline was created."""
        return self._clock() - self._start

    def remaining(self) -> float:
        """Seconds left of the budget; 0.0 once it is spent."""
        return max(0.0, self.budget_s - self.elapsed())

    @property
    def expired(self) -> bool:
        """True once the whole budget is spent."""
        return self.remaining() <= 0.0

    def budget_for(self, stage_budget_s: float) -> float:
        """The time a stage may take: its own budget, cut to what is left (may be 0.0)."""
        return min(_seconds("stage_budget_s", stage_budget_s), self.remaining())

    def __repr__(self) -> str:
        return f"Deadline(budget_s={self.budget_s:g}, remaining={self.remaining():g})"


def call_with_timeout(fn: Callable[[], T], timeout_s: float, stage: str,
                      executor: concurrent.futures.Executor) -> T:
    """Run ``fn()`` in ``executor`` and wait at most ``timeout_s`` seconds for its result.

    ``timeout_s <= 0`` (a spent budget) raises ``DeadlineExceeded`` without submitting ``fn``.
    On a timeout the call is not stopped: see the module docstring.
    """
    if not isinstance(stage, str) or not stage:
        raise ConfigError(f"stage must be a non-empty string, got {stage!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or math.isnan(
            timeout_s):
        raise ConfigError(f"timeout_s must be a number of seconds, got {timeout_s!r}")
    if timeout_s <= 0:
        raise DeadlineExceeded(stage, timeout_s)
    future = executor.submit(fn)
    # wait() rather than result(timeout=...): fn's own TimeoutError must not look like ours.
    done, _ = concurrent.futures.wait([future], timeout=None if math.isinf(timeout_s)
                                      else timeout_s)
    if not done:
        future.cancel()  # only succeeds while fn is still queued
        raise DeadlineExceeded(stage, timeout_s)
    return future.result()


__all__ = ["DeadlineExceeded", "Deadline", "call_with_timeout"]
