"""Tests of the recommendation service's resilience primitives: deadlines, breakers, TTL cache.

Time is a fake clock everywhere except ``call_with_timeout``, whose slow calls block on events
(never on sleeps); no test asserts wall time.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from recsys.errors import ConfigError
from serving.recommendations.circuit_breaker import CircuitBreaker, CircuitOpen
from serving.recommendations.deadline import Deadline, DeadlineExceeded, call_with_timeout
from serving.recommendations.ttl_cache import TTLCache

WAIT_S = 10.0  # safety net for event waits that should return at once; never reached if correct


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-deadline")
    yield pool
    pool.shutdown(wait=True)


# --- Deadline --------------------------------------------------------------------------------


def test_deadline_counts_down_on_its_clock(clock: FakeClock) -> None:
    deadline = Deadline(0.5, clock=clock)
    assert (deadline.elapsed(), deadline.remaining(), deadline.expired) == (0.0, 0.5, False)
    clock.advance(0.2)
    assert deadline.elapsed() == pytest.approx(0.2)
    assert deadline.remaining() == pytest.approx(0.3)
    assert not deadline.expired
    clock.advance(0.3)
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_deadline_remaining_is_never_negative(clock: FakeClock) -> None:
    deadline = Deadline(1, clock=clock)
    clock.advance(5.0)
    assert deadline.remaining() == 0.0
    assert deadline.elapsed() == 5.0
    assert deadline.expired


def test_budget_for_is_the_smaller_of_stage_budget_and_remaining(clock: FakeClock) -> None:
    deadline = Deadline(0.3, clock=clock)
    assert deadline.budget_for(0.1) == 0.1
    assert deadline.budget_for(1.0) == pytest.approx(0.3)
    clock.advance(0.25)
    assert deadline.budget_for(0.1) == pytest.approx(0.05)
    clock.advance(1.0)
    assert deadline.budget_for(0.1) == 0.0


@pytest.mark.parametrize("value, message", [
    (0, "budget_s must be a finite number > 0, got 0"),
    (-0.5, "budget_s must be a finite number > 0, got -0.5"),
    (math.nan, "budget_s must be a finite number > 0, got nan"),
    (math.inf, "budget_s must be a finite number > 0, got inf"),
    ("1", "budget_s must be a number of seconds, got '1'"),
    (True, "budget_s must be a number of seconds, got True"),
    (None, "budget_s must be a number of seconds, got None"),
])
def test_deadline_rejects_bad_budget(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        Deadline(value)  # type: ignore[arg-type]


def test_deadline_rejects_bad_clock_and_stage_budget(clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="^clock must be a callable returning seconds, got 3$"):
        Deadline(1.0, clock=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^stage_budget_s must be a finite number > 0, got -1$"):
        Deadline(1.0, clock=clock).budget_for(-1)


def test_deadline_exceeded_names_stage_and_budget_and_pickles() -> None:
    error = DeadlineExceeded("feature_store", 0.05)
    assert (error.stage, error.budget_s) == ("feature_store", 0.05)
    assert str(error) == "feature_store did not finish within its budget of 0.05 s"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.stage, copy.budget_s) == (DeadlineExceeded, "feature_store", 0.05)


def test_call_with_timeout_returns_the_result(executor: ThreadPoolExecutor) -> None:
    assert call_with_timeout(lambda: [1, 2, 3], 5.0, "ranker", executor) == [1, 2, 3]
    assert call_with_timeout(lambda: "no limit", math.inf, "ranker", executor) == "no limit"


def test_call_with_timeout_raises_and_leaves_the_slow_call_running(
        executor: ThreadPoolExecutor) -> None:
    release, finished = threading.Event(), threading.Event()

    def slow() -> str:
        release.wait(WAIT_S)
        finished.set()
        return "late"

    try:
        with pytest.raises(DeadlineExceeded) as caught:
            call_with_timeout(slow, 0.05, "model_server", executor)
        assert (caught.value.stage, caught.value.budget_s) == ("model_server", 0.05)
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(WAIT_S)  # the call was not stopped: it ran to its end


def test_call_with_timeout_cancels_a_call_still_queued() -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    release, ran = threading.Event(), threading.Event()
    try:
        pool.submit(release.wait, WAIT_S)  # occupies the only worker
        with pytest.raises(DeadlineExceeded):
            call_with_timeout(ran.set, 0.05, "ranker", pool)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert not ran.is_set()


def test_call_with_timeout_propagates_the_functions_exception(
        executor: ThreadPoolExecutor) -> None:
    error = KeyError("user-42")

    def failing() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        call_with_timeout(failing, 5.0, "feature_store", executor)
    assert caught.value is error


def test_a_timeout_error_of_the_function_is_not_a_deadline(executor: ThreadPoolExecutor) -> None:
    def failing() -> None:
        raise TimeoutError("redis read timed out")

    with pytest.raises(TimeoutError, match="redis read timed out") as caught:
        call_with_timeout(failing, 5.0, "feature_store", executor)
    assert not isinstance(caught.value, DeadlineExceeded)


@pytest.mark.parametrize("timeout_s", [0, 0.0, -1.0])
def test_spent_budget_raises_without_submitting(timeout_s: float) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    called = threading.Event()
    with pytest.raises(DeadlineExceeded) as caught:
        call_with_timeout(called.set, timeout_s, "ranker", pool)
    pool.shutdown(wait=True)  # would run anything that had been submitted
    assert not called.is_set()
    assert (caught.value.stage, caught.value.budget_s) == ("ranker", timeout_s)


def test_call_with_timeout_rejects_bad_arguments(executor: ThreadPoolExecutor) -> None:
    with pytest.raises(ConfigError, match="^timeout_s must be a number of seconds, got nan$"):
        call_with_timeout(lambda: 1, math.nan, "ranker", executor)
    with pytest.raises(ConfigError, match="^stage must be a non-empty string, got ''$"):
        call_with_timeout(lambda: 1, 1.0, "", executor)


def test_deadline_feeds_call_with_timeout(clock: FakeClock, executor: ThreadPoolExecutor) -> None:
    deadline = Deadline(0.2, clock=clock)
    assert call_with_timeout(lambda: "ok", deadline.budget_for(0.1), "retrieval", executor) == "ok"
    clock.advance(0.2)
    with pytest.raises(DeadlineExceeded, match="^ranker did not finish within its budget of 0 s$"):
        call_with_timeout(lambda: "never", deadline.budget_for(0.1), "ranker", executor)


# --- CircuitBreaker --------------------------------------------------------------------------


class Dependency:
    """A callable dependency that counts its calls and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("feature store unreachable")
        return value


def _breaker(clock: FakeClock, transitions: list | None = None, **kwargs) -> CircuitBreaker:
    options = {"failure_threshold": 3, "reset_timeout_s": 5.0, **kwargs}
    callback = None if transitions is None else (lambda *t: transitions.append(t))
    return CircuitBreaker("features", clock=clock, on_state_change=callback, **options)


def _trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


def test_breaker_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker, dependency = _breaker(clock), Dependency()
    dependency.failing = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(dependency)
        assert breaker.state == "closed"
    with pytest.raises(ConnectionError):
        breaker.call(dependency)
    assert breaker.state == "open"
    assert dependency.calls == 3


def test_success_resets_the_consecutive_failure_count(clock: FakeClock) -> None:
    breaker, dependency = _breaker(clock), Dependency()
    for _ in range(5):
        dependency.failing = True
        for _ in range(2):
            with pytest.raises(ConnectionError):
                breaker.call(dependency)
        dependency.failing = False
        assert breaker.call(dependency, "fine") == "fine"
        assert breaker.snapshot()["consecutive_failures"] == 0
    assert breaker.state == "closed"


def test_open_breaker_refuses_without_calling(clock: FakeClock) -> None:
    breaker, dependency = _breaker(clock), Dependency()
    _trip(breaker, 3)
    for _ in range(3):
        with pytest.raises(CircuitOpen) as caught:
            breaker.call(dependency)
        assert caught.value.name == "features"
        assert str(caught.value) == "circuit breaker 'features' is open: the call was not made"
    assert dependency.calls == 0
    assert breaker.allow() is False


def test_breaker_is_half_open_exactly_after_reset_timeout(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    _trip(breaker, 3)
    clock.advance(4.999)
    assert breaker.state == "open"
    clock.advance(0.001)
    assert breaker.state == "half_open"


def test_half_open_success_closes(clock: FakeClock) -> None:
    breaker, dependency = _breaker(clock), Dependency()
    _trip(breaker, 3)
    clock.advance(5.0)
    assert breaker.call(dependency, "probe") == "probe"
    assert breaker.state == "closed"
    assert breaker.snapshot()["consecutive_failures"] == 0
    assert breaker.call(dependency) == "ok"


def test_half_open_failure_reopens_with_a_new_timer(clock: FakeClock) -> None:
    breaker, dependency = _breaker(clock), Dependency()
    _trip(breaker, 3)
    clock.advance(5.0)
    dependency.failing = True
    with pytest.raises(ConnectionError):
        breaker.call(dependency)  # the failed trial
    assert breaker.state == "open"
    clock.advance(4.0)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.call(dependency)
    assert dependency.calls == 1
    clock.advance(1.0)
    assert breaker.state == "half_open"


def test_half_open_lets_exactly_max_calls_through_concurrently(clock: FakeClock) -> None:
    breaker = _breaker(clock, half_open_max_calls=2)
    _trip(breaker, 3)
    clock.advance(5.0)
    release = threading.Event()
    entered = [threading.Event(), threading.Event()]
    results: list[object] = []

    def trial(index: int) -> None:
        def probe() -> str:
            entered[index].set()
            release.wait(WAIT_S)
            return f"probe-{index}"
        results.append(breaker.call(probe))

    threads = [threading.Thread(target=trial, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        assert all(event.wait(WAIT_S) for event in entered)  # both trials are in flight
        refused = Dependency()
        with pytest.raises(CircuitOpen):
            breaker.call(refused)
        assert refused.calls == 0
        assert breaker.allow() is False
        assert breaker.state == "half_open"
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT_S)
    assert sorted(results) == ["probe-0", "probe-1"]
    assert breaker.state == "closed"


def test_half_open_slot_is_taken_by_allow_and_given_back_by_an_outcome(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    _trip(breaker, 3)
    clock.advance(5.0)
    assert breaker.allow() is True
    assert breaker.allow() is False  # the one trial slot is taken
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(5.0)
    assert breaker.allow() is True
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))  # closed: no limit


def test_base_exception_is_not_an_outcome_but_frees_the_trial_slot(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    _trip(breaker, 3)
    clock.advance(5.0)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state == "half_open"
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state == "closed"


def test_deadline_exceeded_counts_as_a_failure_and_is_reraised(clock: FakeClock) -> None:
    breaker = _breaker(clock, failure_threshold=1)
    error = DeadlineExceeded("model_server", 0.05)

    def timed_out() -> None:
        raise error

    with pytest.raises(DeadlineExceeded) as caught:
        breaker.call(timed_out)
    assert caught.value is error
    assert breaker.state == "open"


def test_an_excused_exception_is_reraised_without_counting_and_frees_the_trial_slot(
        clock: FakeClock) -> None:
    breaker = _breaker(clock, failure_threshold=1)
    error = DeadlineExceeded("ranker", 0.01)

    def timed_out() -> None:
        raise error

    def excused(exc: Exception) -> bool:
        return isinstance(exc, DeadlineExceeded)

    for _ in range(3):
        with pytest.raises(DeadlineExceeded) as caught:
            breaker.call_excusing(excused, timed_out)
        assert caught.value is error
    assert breaker.state == "closed"  # three excused timeouts, threshold one
    with pytest.raises(ConnectionError):  # what the test does not excuse still counts
        breaker.call_excusing(excused, _failing_dependency())
    assert breaker.state == "open"
    clock.advance(5.0)
    with pytest.raises(DeadlineExceeded):
        breaker.call_excusing(excused, timed_out)
    assert breaker.state == "half_open"
    assert breaker.call(lambda: "probe") == "probe"  # the trial slot was given back
    assert breaker.state == "closed"


def _failing_dependency() -> Dependency:
    dependency = Dependency()
    dependency.failing = True
    return dependency


def test_call_passes_arguments_including_one_named_fn(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    assert breaker.call(lambda a, *, fn: (a, fn), 1, fn="x") == (1, "x")


def test_outcomes_recorded_while_open_are_ignored(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    _trip(breaker, 3)
    breaker.record_success()  # a call that started before the breaker opened
    assert breaker.state == "open"
    clock.advance(3.0)
    breaker.record_failure()  # does not restart the reset timer
    clock.advance(2.0)
    assert breaker.state == "half_open"


def test_state_changes_are_reported_in_order(clock: FakeClock) -> None:
    transitions: list[tuple[str, str, str]] = []
    breaker = _breaker(clock, transitions)
    _trip(breaker, 3)
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.state == "half_open"
    assert breaker.state == "half_open"  # no transition, no report
    breaker.record_success()
    breaker.record_success()
    assert transitions == [
        ("features", "closed", "open"),
        ("features", "open", "half_open"),
        ("features", "half_open", "open"),
        ("features", "open", "half_open"),
        ("features", "half_open", "closed"),
    ]


def test_state_change_callback_may_read_the_breaker(clock: FakeClock) -> None:
    seen: list[dict] = []
    breaker = CircuitBreaker("ranker", failure_threshold=1, clock=clock,
                             on_state_change=lambda *_: seen.append(breaker.snapshot()))
    worker = threading.Thread(target=breaker.record_failure, daemon=True)
    worker.start()
    worker.join(WAIT_S)
    assert not worker.is_alive(), "the callback deadlocked the breaker"
    assert seen == [{"name": "ranker", "state": "open", "consecutive_failures": 1,
                     "opened_age_s": 0.0}]


def test_a_failing_callback_is_logged_not_raised(clock: FakeClock,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: str) -> None:
        raise RuntimeError("metrics backend down")

    breaker = CircuitBreaker("ranker", failure_threshold=1, clock=clock, on_state_change=broken)
    with caplog.at_level(logging.ERROR, logger="serving.recommendations.circuit_breaker"):
        breaker.record_failure()
    assert breaker.state == "open"
    assert "on_state_change of circuit breaker 'ranker' failed" in caplog.text
    assert "metrics backend down" in caplog.text


def test_snapshot_reports_how_long_ago_the_breaker_opened(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    assert breaker.snapshot() == {"name": "features", "state": "closed",
                                  "consecutive_failures": 0, "opened_age_s": None}
    _trip(breaker, 3)
    clock.advance(2.5)
    assert breaker.snapshot() == {"name": "features", "state": "open",
                                  "consecutive_failures": 3, "opened_age_s": 2.5}
    clock.advance(2.5)
    assert breaker.snapshot()["state"] == "half_open"


def test_breaker_counts_failures_from_many_threads(clock: FakeClock) -> None:
    breaker = _breaker(clock, failure_threshold=10_000)
    threads = [threading.Thread(target=_trip, args=(breaker, 1_000)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert breaker.snapshot()["consecutive_failures"] == 8_000
    assert breaker.state == "closed"


@pytest.mark.parametrize("kwargs, message", [
    ({"name": ""}, "name must be a non-empty string, got ''"),
    ({"name": None}, "name must be a non-empty string, got None"),
    ({"failure_threshold": 0}, "failure_threshold must be a positive integer, got 0"),
    ({"failure_threshold": 2.0}, r"failure_threshold must be a positive integer, got 2\.0"),
    ({"failure_threshold": True}, "failure_threshold must be a positive integer, got True"),
    ({"half_open_max_calls": 0}, "half_open_max_calls must be a positive integer, got 0"),
    ({"reset_timeout_s": 0}, "reset_timeout_s must be a finite number > 0, got 0"),
    ({"reset_timeout_s": -1.5}, r"reset_timeout_s must be a finite number > 0, got -1\.5"),
    ({"reset_timeout_s": math.inf}, "reset_timeout_s must be a finite number > 0, got inf"),
    ({"reset_timeout_s": "5"}, "reset_timeout_s must be a finite number > 0, got '5'"),
    ({"clock": 0.0}, r"clock must be callable, got 0\.0"),
    ({"on_state_change": "log"}, "on_state_change must be callable or None, got 'log'"),
])
def test_breaker_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"name": "features", **kwargs}
    with pytest.raises(ConfigError, match=f"^{message}$"):
        CircuitBreaker(**arguments)


# --- TTLCache --------------------------------------------------------------------------------


def test_cache_hit_and_miss_are_counted(clock: FakeClock) -> None:
    cache: TTLCache[str, list[int]] = TTLCache(10, 60.0, clock=clock)
    assert cache.get("u1") is None
    cache.put("u1", [1, 2])
    assert cache.get("u1") == [1, 2]
    assert (cache.hits, cache.misses, cache.evictions, len(cache)) == (1, 1, 0, 1)


def test_entries_expire_ttl_after_being_put(clock: FakeClock) -> None:
    cache: TTLCache[str, str] = TTLCache(10, 60.0, clock=clock)
    cache.put("u1", "features")
    clock.advance(59.999)
    assert cache.get("u1") == "features"  # reading does not extend the TTL
    clock.advance(0.001)
    assert cache.get("u1") is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses, cache.evictions) == (1, 1, 0)


def test_put_again_restarts_the_ttl(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(10, 10.0, clock=clock)
    cache.put("k", 1)
    clock.advance(8.0)
    cache.put("k", 2)
    clock.advance(8.0)
    assert cache.get("k") == 2
    clock.advance(2.0)
    assert cache.get("k") is None


def test_len_counts_live_entries_only(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(10, 10.0, clock=clock)
    cache.put("old", 1)
    clock.advance(5.0)
    cache.put("new", 2)
    assert len(cache) == 2
    clock.advance(5.0)
    assert len(cache) == 1
    assert cache.get("new") == 2


def test_least_recently_used_is_evicted_first(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(3, 60.0, clock=clock)
    for index, key in enumerate("abc"):
        cache.put(key, index)
    assert cache.get("a") == 0  # order of use, oldest first: b c a
    cache.put("d", 3)  # evicts b
    assert cache.get("b") is None
    cache.put("c", 20)  # a put is a use too: a d c
    cache.put("e", 4)  # evicts a
    cache.put("f", 5)  # evicts d
    assert [cache.get(key) for key in "acdef"] == [None, 20, None, 4, 5]
    assert cache.evictions == 3
    assert len(cache) == 3


def test_replacing_a_key_does_not_evict(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(2, 60.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    assert (cache.get("a"), cache.get("b"), cache.evictions) == (10, 2, 0)


def test_none_is_not_a_value(clock: FakeClock) -> None:
    cache: TTLCache[str, object] = TTLCache(2, 60.0, clock=clock)
    with pytest.raises(ValueError, match=r"^TTLCache cannot store None \(it means a miss\), "
                                         r"key 'u1'$"):
        cache.put("u1", None)
    assert len(cache) == 0
    cache.put("u2", 0)  # falsy values are values
    cache.put("u3", [])
    assert (cache.get("u2"), cache.get("u3")) == (0, [])


def test_get_or_load_loads_once_then_hits(clock: FakeClock) -> None:
    cache: TTLCache[str, str] = TTLCache(10, 60.0, clock=clock)
    loads: list[str] = []

    def loader() -> str:
        loads.append("u1")
        return "loaded"

    assert cache.get_or_load("u1", loader) == "loaded"
    assert cache.get_or_load("u1", loader) == "loaded"
    assert loads == ["u1"]
    clock.advance(60.0)
    assert cache.get_or_load("u1", loader) == "loaded"
    assert loads == ["u1", "u1"]
    assert (cache.hits, cache.misses) == (1, 2)


def test_get_or_load_caches_neither_errors_nor_none(clock: FakeClock) -> None:
    cache: TTLCache[str, str] = TTLCache(10, 60.0, clock=clock)
    error = ConnectionError("feature store down")

    def failing() -> str:
        raise error

    with pytest.raises(ConnectionError) as caught:
        cache.get_or_load("u1", failing)
    assert caught.value is error
    calls: list[None] = []
    assert cache.get_or_load("u1", lambda: calls.append(None)) is None
    assert cache.get_or_load("u1", lambda: calls.append(None)) is None
    assert len(calls) == 2
    assert len(cache) == 0


def test_invalidate_and_clear(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(10, 60.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.invalidate("a") is True
    assert cache.invalidate("a") is False
    assert cache.get("a") is None
    assert cache.get("b") == 2
    cache.clear()
    assert len(cache) == 0
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 2)  # clear keeps the counters


def test_stats(clock: FakeClock) -> None:
    cache: TTLCache[str, int] = TTLCache(1, 30, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("b")
    cache.get("a")
    assert cache.stats() == {"entries": 1, "max_entries": 1, "ttl_s": 30.0, "hits": 1,
                             "misses": 1, "evictions": 1}
    clock.advance(30)
    assert cache.stats()["entries"] == 0


def test_cache_stays_bounded_and_consistent_under_threads(clock: FakeClock) -> None:
    cache: TTLCache[int, int] = TTLCache(50, 60.0, clock=clock)
    wrong: list[tuple[int, object]] = []

    def work(offset: int) -> None:
        for i in range(2_000):
            key = (offset * 7 + i) % 200
            cache.put(key, key)
            value = cache.get(key)
            if value is not None and value != key:
                wrong.append((key, value))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert wrong == []
    assert len(cache) == 50
    assert cache.hits + cache.misses == 16_000
    assert all(cache.get(key) in (None, key) for key in range(200))
    assert cache.evictions >= 200 - 50  # every key was put, at most 50 remain


@pytest.mark.parametrize("kwargs, message", [
    ({"max_entries": 0}, "max_entries must be a positive integer, got 0"),
    ({"max_entries": -3}, "max_entries must be a positive integer, got -3"),
    ({"max_entries": 1.5}, r"max_entries must be a positive integer, got 1\.5"),
    ({"max_entries": True}, "max_entries must be a positive integer, got True"),
    ({"ttl_s": 0}, "ttl_s must be a finite number > 0, got 0"),
    ({"ttl_s": -1.0}, r"ttl_s must be a finite number > 0, got -1\.0"),
    ({"ttl_s": math.nan}, "ttl_s must be a finite number > 0, got nan"),
    ({"ttl_s": math.inf}, "ttl_s must be a finite number > 0, got inf"),
    ({"ttl_s": "60"}, "ttl_s must be a finite number > 0, got '60'"),
    ({"clock": None}, "clock must be callable, got None"),
])
def test_cache_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    arguments = {"max_entries": 10, "ttl_s": 60.0, **kwargs}
    with pytest.raises(ConfigError, match=f"^{message}$"):
        TTLCache(**arguments)
