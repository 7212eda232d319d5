"""The versioned hash that places a user in ``[0, 1)`` for a salt: experiment assignment's one
source of randomness, the same in every implementation.

``v1``: the first 8 bytes of ``SHA-256(salt + "\\n" + user_id)`` (both UTF-8), read as a
big-endian unsigned integer; its top 53 bits divided by 2**53 (exact in any language's
double, and never 1.0). A salt never holds a newline, so the split
between salt and user id is unambiguous. Golden vectors:
``tests/data/experiment_assignment_golden.json`` (any other implementation, a Beam job or a
client in another language, checks it agrees with them).

Guarantees: deterministic across processes, machines and Python versions; a new hash function
gets a new version name, and the old one is kept for as long as a definitions file names it.
"""

from __future__ import annotations

import hashlib

from recsys.errors import ConfigError

HASH_VERSIONS = ("v1",)
_SCALE = float(2 ** 53)


def unit_interval(salt: str, user_id: str, version: str = "v1") -> float:
    """Where ``user_id`` falls in ``[0, 1)`` under ``salt``."""
    if version != "v1":
        raise ConfigError(f"hash_version must be one of {list(HASH_VERSIONS)}, got {version!r}")
    digest = hashlib.sha256(f"{salt}\n{user_id}".encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _SCALE


__all__ = ["HASH_VERSIONS", "unit_interval"]
