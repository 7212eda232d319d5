"""The ``console`` section of the service's config."""

from __future__ import annotations

from dataclasses import dataclass

from recsys.config import Config, boolean, positive_int, positive_number, setting, text


@dataclass(frozen=True)
class ConsoleConfig(Config):
    """Attributes:
        enabled: serve the console at /console (its routes need keys like the rest).
        monitoring_dir: where `recsys monitor drift --output` and `monitor index --output`
            write ``drift.json`` and ``index_health.json`` ("" = not shown).
        experiments_dir: where `recsys experiment analyze --out-dir` writes its analyses
            ("" = not shown).
        history_interval_s, history_points: the overview's sampling of the service's own
            metrics (one reading every interval, the last ``points`` kept: 10 s x 360 = the
            last hour).
    """

    enabled: bool = setting(True, boolean)
    monitoring_dir: str = setting("", text)
    experiments_dir: str = setting("", text)
    history_interval_s: float = setting(10.0, positive_number)
    history_points: int = setting(360, positive_int)


__all__ = ["ConsoleConfig"]
