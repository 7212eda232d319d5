"""How deep a JSON body nests, found before any parser recurses into it.

Python's ``json`` recurses once per level and a body of a million ``[`` ends in a
``RecursionError``; the service refuses bodies that nest deeper than its limit before they
reach a parser.

Guarantees: :func:`nesting_exceeds` is exact for valid JSON (brackets inside strings, escaped
quotes included, are not counted) and never reads a body as shallower than it is; a body
with fewer brackets than the limit is passed after counting them, without a scan. The scan is
linear in time and memory whatever the body holds (vectorised with NumPy: no regular
expression, whose backtracking state grows with a long string or a run of escapes).
"""

from __future__ import annotations

import numpy as np

QUOTE, BACKSLASH = ord('"'), ord("\\")
OPENING, CLOSING = (ord("["), ord("{")), (ord("]"), ord("}"))


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``body`` nest more than ``limit`` deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    data = np.frombuffer(body, dtype=np.uint8)
    n = len(data)
    index = np.arange(n, dtype=np.int32)
    backslash = data == BACKSLASH
    # the start of the run of backslashes each position ends (its own index when none)
    last_other = np.maximum.accumulate(np.where(backslash, -1, index))
    before = np.empty(n, dtype=np.int32)  # backslashes right before each position
    before[0] = 0
    before[1:] = np.where(backslash[:-1], index[:-1] - last_other[:-1], 0)
    quote = (data == QUOTE) & (before % 2 == 0)  # a quote not escaped
    inside = (np.cumsum(quote, dtype=np.int32) - quote) % 2 == 1
    step = ((data == OPENING[0]) | (data == OPENING[1])).astype(np.int8) - (
        (data == CLOSING[0]) | (data == CLOSING[1])).astype(np.int8)
    step[inside] = 0
    return int(np.cumsum(step, dtype=np.int32).max()) > limit


__all__ = ["nesting_exceeds"]
