"""The service's CPU per request (serving/recommendations/cpu_account.py): the calling
thread's CPU and that of the dependency threads its stages ran on, in one account."""

import time
from concurrent.futures import ThreadPoolExecutor

from serving.recommendations.cpu_account import CpuAccount, carried, measure


def _spin(cpu_s: float) -> float:
    """Burn ``cpu_s`` of this thread's CPU; returns it."""
    started = time.thread_time()
    while time.thread_time() - started < cpu_s:
        pass
    return cpu_s


def test_the_account_holds_the_cpu_of_the_caller_and_of_its_dependency_threads():
    with ThreadPoolExecutor(2) as pool:
        with measure(CpuAccount()) as account:
            _spin(0.02)
            assert pool.submit(carried(lambda: _spin(0.05))).result() == 0.05
            time.sleep(0.05)  # waiting costs nothing
        assert 0.07 <= account.seconds < 0.07 + 0.04
        # outside a measured block nothing is carried, and fn runs as it is
        fn = lambda: _spin(0.001)  # noqa: E731
        assert carried(fn) is fn
        # two requests at once keep their own accounts
        def request(cpu_s):
            with measure(CpuAccount()) as own:
                pool.submit(carried(lambda: _spin(cpu_s))).result()
            return own.seconds
        with ThreadPoolExecutor(2) as callers:
            light, heavy = callers.map(request, (0.01, 0.06))
    assert 0.01 <= light < 0.04 and 0.06 <= heavy < 0.09
