"""A child bound with ``exit_with_parent`` stops when its parent is killed outright; an
unbound one (the control) outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from multiprocessing import get_context
from process_lifetime_child import sleep
child = get_context("spawn").Process(target=sleep, args=(os.getpid(), {bound!r}))
child.start()
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _child_after_parent_killed(bound: bool) -> bool:
    """Whether the child is still alive 10 s after its parent got SIGKILL."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(
        tests=str(Path(__file__).parent), bound=bound)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has made its request
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_bound_child_stops_when_its_parent_is_killed_and_an_unbound_one_does_not():
    assert not _child_after_parent_killed(bound=True)
    assert _child_after_parent_killed(bound=False)


def test_the_call_reports_whether_it_applies():
    from recsys.process_lifetime import exit_with_parent

    assert exit_with_parent(os.getppid(), 0) is sys.platform.startswith("linux")  # 0: cleared
