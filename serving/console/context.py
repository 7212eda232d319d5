"""What the console's pages read, gathered once when the service starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.model_contract.registry import Registry


@dataclass
class ConsoleContext:
    """``recommender``: the service's pipeline; ``history``: its metrics over the last hour;
    ``stream``: the event stream's producer (None: no stream); ``registry``: the model
    registry under the export base path; ``monitoring_dir``: where `recsys monitor drift` /
    `monitor index` write their JSON; ``experiments_dir``: where `recsys experiment analyze`
    writes its analyses (None: not shown); ``policy``: the access policy (keys, sessions)."""

    recommender: Any
    history: Any
    stream: Any
    registry: Registry
    policy: Any
    monitoring_dir: Path | None = None
    experiments_dir: Path | None = None


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays, tuples and non-finite floats made JSON-safe."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def read_json(path: Path | None) -> Any:
    """The JSON document at ``path``, or None when there is none (or it is not JSON)."""
    import json

    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["ConsoleContext", "plain", "read_json"]
