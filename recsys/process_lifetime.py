"""Child processes that do not outlive the process that started them.

A supervisor (``recsys api --workers N``, ``recsys stream-worker --processes N``) stops its
children on SIGINT or SIGTERM; killed with SIGKILL it cannot, and its children would keep the
port, the stream's consumer names and the CPU. :func:`exit_with_parent`, called first in a
child, asks Linux to send the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so the
child stops as it would on its supervisor's SIGTERM.

Guarantees: on Linux, after :func:`exit_with_parent` the child gets SIGTERM when its parent
dies, also when the parent died before the call (checked after it). Elsewhere it does
nothing and returns False.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Have this process receive ``sig`` when its parent (``parent_pid``) dies; True when
    the kernel took the request."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent died before the request was made
        os.kill(os.getpid(), sig)
    return True


__all__ = ["exit_with_parent"]
