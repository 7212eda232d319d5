"""How deep a JSON body nests, found before any parser recurses into it.

Python's ``json`` recurses once per level and a body of a million ``[`` ends in a
``RecursionError``; the service refuses bodies that nest deeper than its limit before they
reach a parser.

Guarantees: :func:`nesting_exceeds` is exact for valid JSON (brackets inside strings, escaped
quotes included, are not counted) and never reads a body as shallower than it is; a body
with fewer brackets than the limit is passed after counting them, without a scan. The scan
runs at C speed (a regular expression drops the strings, NumPy counts the brackets).
"""

from __future__ import annotations

import re

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``body`` nest more than ``limit`` deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max()) > limit


__all__ = ["nesting_exceeds"]
