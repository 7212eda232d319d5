"""A circuit breaker: stop calling a failing dependency, then probe it before trusting it again.

Guarantees (all operations are thread-safe):

* ``closed``: calls go through; ``failure_threshold`` consecutive failures open the breaker, a
  success resets the count.
* ``open``: calls are refused with ``CircuitOpen`` *without* being made. Once
  ``reset_timeout_s`` has passed (on the injected monotonic ``clock``) the breaker is
  ``half_open``.
* ``half_open``: at most ``half_open_max_calls`` trial calls are in flight at once; the others
  are refused. A trial's success closes the breaker; its failure re-opens it with a new timer.
* Any ``Exception`` raised by a wrapped call (``DeadlineExceeded`` included) is a failure and
  is re-raised unchanged, unless ``call_excusing`` excuses it. A ``BaseException`` (e.g.
  ``KeyboardInterrupt``) or an excused exception is not an outcome: it only gives back the
  trial slot. An outcome recorded while the breaker is open (a call that
  started before it opened) is ignored.
* ``on_state_change(name, old, new)`` is called once per transition, in transition order,
  without the breaker's lock held (it may read the breaker); an error it raises is logged, not
  propagated.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from recsys.config import finite_positive_number, positive_int
from recsys.errors import ConfigError

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_log = logging.getLogger(__name__)


class CircuitOpen(Exception):
    """The breaker ``name`` is open (or its half-open trials are taken): no call was made."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open: the call was not made"


class CircuitBreaker:
    """Guards one dependency (e.g. the feature store); see the module docstring."""

    def __init__(self, name: str, failure_threshold: int = 5, reset_timeout_s: float = 5.0,
                 half_open_max_calls: int = 1, clock: Callable[[], float] = time.monotonic,
                 on_state_change: Callable[[str, str, str], None] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty string, got {name!r}")
        positive_int("failure_threshold", failure_threshold)
        positive_int("half_open_max_calls", half_open_max_calls)
        finite_positive_number("reset_timeout_s", reset_timeout_s)
        self.failure_threshold, self.half_open_max_calls = failure_threshold, half_open_max_calls
        if not callable(clock):
            raise ConfigError(f"clock must be callable, got {clock!r}")
        if on_state_change is not None and not callable(on_state_change):
            raise ConfigError(f"on_state_change must be callable or None, got {on_state_change!r}")
        self.name = name
        self.reset_timeout_s = float(reset_timeout_s)
        self._clock = clock
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()  # re-entrant: the callback may read the breaker
        self._pending: collections.deque[tuple[str, str]] = collections.deque()
        self._state, self._failures, self._trials = CLOSED, 0, 0  # trials: half-open, in flight
        self._opened_at: float | None = None

    def _set(self, new: str) -> None:  # the caller holds self._lock
        old, self._state = self._state, new
        if new == OPEN:
            self._opened_at = self._clock()
        self._trials = 0
        if self._on_state_change is not None:
            self._pending.append((old, new))

    def _refresh(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            self._set(HALF_OPEN)
        return self._state

    def _notify(self) -> None:
        """Deliver queued transitions one at a time, in order, outside ``self._lock``."""
        if not self._pending:  # whoever queued a transition delivers it
            return
        with self._notify_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    old, new = self._pending.popleft()
                try:
                    self._on_state_change(self.name, old, new)
                except Exception:
                    _log.exception("on_state_change of circuit breaker %r failed", self.name)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (open turns half-open after the timeout)."""
        with self._lock:
            state = self._refresh()
        self._notify()
        return state

    def allow(self) -> bool:
        """May a call be made now? In half-open, True takes a trial slot: record its outcome."""
        with self._lock:
            state = self._refresh()
            allowed = state == CLOSED or (state == HALF_OPEN
                                          and self._trials < self.half_open_max_calls)
            if allowed and state == HALF_OPEN:
                self._trials += 1
        self._notify()
        return allowed

    def record_success(self) -> None:
        with self._lock:
            if self._state == HALF_OPEN:
                self._set(CLOSED)
            if self._state == CLOSED:
                self._failures = 0
        self._notify()

    def record_failure(self) -> None:
        with self._lock:
            if self._state != OPEN:
                self._failures += 1
                if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                    self._set(OPEN)
        self._notify()

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` if the breaker allows it, else ``CircuitOpen``."""
        return self.call_excusing(None, fn, *args, **kwargs)

    def call_excusing(self, excused: Callable[[Exception], bool] | None,
                      fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """As ``call``, but an exception for which ``excused(exc)`` is true is re-raised
        without counting as a failure (e.g. a timeout the caller caused by giving the call
        less than the dependency's budget)."""
        if not self.allow():
            raise CircuitOpen(self.name)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if excused is not None and excused(exc):
                self._give_back_trial()
            else:
                self.record_failure()
            raise
        except BaseException:  # not an outcome: give the trial slot back
            self._give_back_trial()
            raise
        self.record_success()
        return result

    def _give_back_trial(self) -> None:
        with self._lock:
            if self._state == HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def snapshot(self) -> dict[str, Any]:
        """For health pages: name, state, consecutive_failures, opened_age_s (None if closed)."""
        with self._lock:
            state = self._refresh()
            age = None if state == CLOSED else self._clock() - self._opened_at
            snap = {"name": self.name, "state": state,
                    "consecutive_failures": self._failures, "opened_age_s": age}
        self._notify()
        return snap

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state!r})"


__all__ = ["CLOSED", "OPEN", "HALF_OPEN", "CircuitOpen", "CircuitBreaker"]
