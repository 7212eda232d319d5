"""Generate a synthetic platform into a lake: users, items, then one event partition per day."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from recsys.data.lake import Lake, WriteReport
from recsys.data.rules import ValidationPolicy
from recsys.data.synthetic.behaviour import simulate_day
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.platform_file import write_platform_config
from recsys.data.synthetic.population import Items, Users, make_items, make_users

log = logging.getLogger(__name__)


class SyntheticPlatform:
    """The simulated population; :meth:`days` yields each day's events as an Arrow table."""

    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        self.users: Users = make_users(cfg, np.random.default_rng([cfg.seed, 0, 0]))
        self.items: Items = make_items(cfg, np.random.default_rng([cfg.seed, 0, 1]))
        self.users_table = self.users.to_arrow(np.random.default_rng([cfg.seed, 0, 2]),
                                               cfg.profile_gap_share)
        self.items_table = self.items.to_arrow()

    def day(self, day: int) -> pa.Table:
        return simulate_day(self.cfg, day, self.users, self.items,
                            self.users_table.column("user_id").combine_chunks(),
                            self.items_table.column("item_id").combine_chunks())

    def days(self) -> Iterator[pa.Table]:
        for day in range(self.cfg.days):
            yield self.day(day)


@dataclass
class GenerationReport:
    users: WriteReport
    items: WriteReport
    events: list[WriteReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events_written(self) -> int:
        return sum(r.written for r in self.events)

    @property
    def events_received(self) -> int:
        return sum(r.received for r in self.events)


def generate(cfg: SyntheticConfig, lake: Lake, progress: bool = True) -> GenerationReport:
    """Write the platform described by ``cfg`` into ``lake``, and ``cfg`` itself
    (platform_file.py); rerunning it adds nothing."""
    started = time.perf_counter()
    source = f"synthetic(seed={cfg.seed}, users={cfg.users}, items={cfg.items}, days={cfg.days})"
    platform = SyntheticPlatform(cfg)
    policy = ValidationPolicy()
    # Generated data must be entirely valid: any rejection is a bug, so allow none.
    strict = {"policy": policy, "max_bad_fraction": 0.0}
    report = GenerationReport(lake.write_users(platform.users_table, source, **strict),
                              lake.write_items(platform.items_table, source, **strict))
    log.info("%s", report.users.summary())
    log.info("%s", report.items.summary())
    write_platform_config(cfg, lake.root)
    bar = tqdm(total=cfg.days, unit="day", disable=not progress, desc="events")
    for day, events in enumerate(platform.days()):
        written = lake.write_events(events, f"{source} day {day}", **strict)
        report.events.append(written)
        elapsed = time.perf_counter() - started
        bar.set_postfix(events=f"{report.events_received:,}",
                        rate=f"{report.events_received / max(elapsed, 1e-9):,.0f}/s")
        bar.update()
    bar.close()
    report.seconds = time.perf_counter() - started
    return report
