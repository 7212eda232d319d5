"""The closed loop of `recsys simulate`: simulated days through the real API, then, after each
day, the exposures the stream worker wrote to the lake joined with the outcomes (the Beam
job) and every experiment analysed, next to the simulator's truth.

Each look records, per experiment and treatment arm, the measured CTR uplift with its
fixed-horizon and always-valid intervals (CUPED's when covariates are given), the true uplift,
and whether each interval covers it. An experiment is "declared different" at a look when its
always-valid interval excludes 0; for an A/A experiment that is a false positive.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from recsys.data.lake import Lake
from recsys.data.schemas import EXPOSURES
from recsys.experiments.analysis import PRIMARY, analyze
from recsys.experiments.definitions import Experiments
from workflows.simulator import Simulator

log = logging.getLogger(__name__)


@dataclass
class Look:
    day: int
    experiment: str
    arm: str
    users: tuple[int, int]
    measured: float  # relative CTR uplift
    fixed_ci: tuple[float, float]
    sequential_ci: tuple[float, float]
    cuped_ci: tuple[float, float] | None
    truth: float
    srm_p: float | None

    @property
    def covered(self) -> bool:
        return self.fixed_ci[0] <= self.truth <= self.fixed_ci[1]

    @property
    def declared(self) -> bool:
        """The always-valid interval excludes 0."""
        return not (self.sequential_ci[0] <= 0.0 <= self.sequential_ci[1])


@dataclass
class PreferenceLook:
    """An interleaving experiment at one look: the sign test over users, and which arm the
    simulator's truth says is better."""

    day: int
    experiment: str
    users: int
    users_preferring: tuple[int, int]
    p_value: float
    winner: str | None
    true_winner: str

    @property
    def right(self) -> bool:
        return self.winner == self.true_winner


@dataclass
class LoopResult:
    looks: list[Look] = field(default_factory=list)
    preferences: list[PreferenceLook] = field(default_factory=list)
    days: list = field(default_factory=list)

    def final(self) -> list[Look]:
        last = max((look.day for look in self.looks), default=-1)
        return [look for look in self.looks if look.day == last]

    def ever_declared(self, experiments: list[str]) -> int:
        return sum(any(look.declared for look in self.looks if look.experiment == name)
                   for name in experiments)


def exposures_in_lake(lake: Path) -> int:
    return Lake(lake).partitioned_dataset(EXPOSURES).count_rows()


def wait_for_exposures(lake: Path, expected: int, timeout_s: float = 60.0) -> int:
    """Wait until the lake holds ``expected`` exposures (the stream worker writes them in
    batches); returns how many it holds at the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = exposures_in_lake(lake)
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def true_uplift(simulator: Simulator, experiment: str, arm: str, baseline: str) -> float:
    """0 for an experiment whose arms change nothing; else the counterfactual truth."""
    if experiment not in simulator.changing:
        return 0.0
    truth = simulator.truth_of(experiment)
    return truth[arm]["ctr"] / truth[baseline]["ctr"] - 1


def run_loop(simulator: Simulator, definitions: Experiments, lake: Path, outcomes: Path,
             days: int, covariates: Callable[[pd.DataFrame], dict] | None = None,
             join: Callable[[Path, Path], None] | None = None,
             log_to: Path | None = None) -> LoopResult:
    """``days`` simulated days, each followed by the join and a look at every experiment."""
    from beam_jobs.outcomes import run as run_join

    clock = simulator.cfg.start_s  # this run's answers only: from its first simulated day
    started = (dt.datetime.now(dt.timezone.utc) if clock is None
               else dt.datetime.fromtimestamp(clock, dt.timezone.utc)).isoformat()
    join = join or (lambda lake_dir, out: run_join(["--lake", str(lake_dir), "--output",
                                                    str(out), "--start", started]))
    result = LoopResult()
    shown = exposures_in_lake(lake)
    for day in range(days):
        report = simulator.run_day(day)
        result.days.append(report)
        shown += report.requests * simulator.cfg.k
        held = wait_for_exposures(lake, shown)
        log.info("day %d: %d requests, %d events in %.1fs; %d exposures in the lake",
                 day, report.requests, report.events_sent, report.seconds, held)
        join(lake, outcomes)
        rows = pd.read_parquet(outcomes / "user_outcomes")
        values = covariates(rows) if covariates else None
        for experiment in definitions.experiments:
            part = rows[rows["experiment"] == experiment.name]
            analysis = analyze(part, experiment, covariates=values)
            if analysis.interleaving is not None:
                il = analysis.interleaving
                truth = simulator.truth_of(experiment.name)
                first, second = il["arms"]
                better = first if truth[first]["ctr"] >= truth[second]["ctr"] else second
                preference = PreferenceLook(day, experiment.name, il["users"],
                                            tuple(il["users_preferring"]), il["p_value"],
                                            il["winner"], better)
                result.preferences.append(preference)
                _append(log_to, {**preference.__dict__, "right": preference.right})
                continue
            for r in analysis.results:
                if r.metric != PRIMARY:
                    continue
                look = Look(day, experiment.name, r.arm, r.fixed.users, r.fixed.relative,
                            r.fixed.relative_ci, r.sequential.relative_ci,
                            r.cuped.relative_ci if r.cuped else None,
                            true_uplift(simulator, experiment.name, r.arm, experiment.baseline),
                            analysis.srm_users.p_value if analysis.srm_users else None)
                result.looks.append(look)
                _append(log_to, {**look.__dict__, "covered": look.covered,
                                 "declared": look.declared})
    return result


def _append(path: Path | None, record: dict) -> None:
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")


__all__ = ["Look", "PreferenceLook", "LoopResult", "run_loop", "wait_for_exposures",
           "exposures_in_lake", "true_uplift"]
