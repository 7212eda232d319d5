"""The synthetic platform's config, recorded in the lake it generated, so that a user simulator
can rebuild exactly the users and items behind that lake's history.

Layout: ``LAKE/_synthetic.json`` holds every SyntheticConfig field, with ``end_date`` resolved
to the date the window ended (a config of "today" would name another platform tomorrow).

Guarantees: ``read_platform_config(lake)`` returns a config equal to the one that generated
the lake's events; a lake that was not generated records nothing, and reading it raises a
LakeError naming the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from recsys.data.synthetic.config import SyntheticConfig
from recsys.errors import ConfigError, LakeError

PLATFORM_FILE = "_synthetic.json"


def write_platform_config(cfg: SyntheticConfig, lake_root: Path) -> Path:
    """Record ``cfg`` (with its window's end date fixed) in ``lake_root``; atomic."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    fields["end_date"] = cfg.window_end.date().isoformat()
    path = Path(lake_root) / PLATFORM_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_platform_config(lake_root: Path) -> SyntheticConfig:
    """The config that generated the lake at ``lake_root``."""
    path = Path(lake_root) / PLATFORM_FILE
    if not path.is_file():
        raise LakeError(f"{path} does not exist: this lake was not made by the synthetic "
                        "generator (`recsys data generate` or `recsys demo` write it)")
    try:
        raw = json.loads(path.read_text())
        raw["end_date"] = dt.date.fromisoformat(raw["end_date"])
        return SyntheticConfig(**raw)
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise LakeError(f"{path} is not a synthetic platform's config: {e}") from e


__all__ = ["PLATFORM_FILE", "read_platform_config", "write_platform_config"]
