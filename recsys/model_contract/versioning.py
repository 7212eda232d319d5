"""Numeric model versions under a TF Serving model base path, published atomically.

Layout: ``BASE/<model name>/<version>/`` with ``<version>`` a positive integer; anything else
in ``BASE/<model name>/`` (temporary directories included) is ignored, as TF Serving ignores
it. A version directory appears only complete: it is written under a temporary name in the
same directory and renamed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from recsys.errors import ConfigError


def versions(model_path: Path) -> list[int]:
    """The numeric versions present under ``model_path``, ascending."""
    if not model_path.is_dir():
        return []
    return sorted(int(p.name) for p in model_path.iterdir()
                  if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


def next_version(base_path: Path, names: Iterable[str]) -> int:
    """One more than the highest version of any of ``names``: artifacts exported together
    share a version number."""
    return max((v for name in names for v in versions(base_path / name)), default=0) + 1


@contextmanager
def staged_version(model_path: Path, version: int) -> Iterator[Path]:
    """A temporary directory to write version ``version`` into; on success it is renamed to
    ``model_path/<version>``; on error it is removed and nothing is published."""
    model_path.mkdir(parents=True, exist_ok=True)
    final = model_path / str(version)
    if final.exists():
        raise ConfigError(f"{final} already exists; versions are never overwritten")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=model_path))
    try:
        yield staging
        os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["versions", "next_version", "staged_version"]
