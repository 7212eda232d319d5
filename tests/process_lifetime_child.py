"""A child process for tests/test_process_lifetime.py (module level: spawn pickles it)."""

import time

from recsys.process_lifetime import exit_with_parent


def sleep(parent_pid: int, bound: bool) -> None:
    if bound:
        exit_with_parent(parent_pid)
    time.sleep(120)
