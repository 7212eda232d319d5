"""The demo's experiment step: a short A/B test and an interleaving test run on the demo's
system by simulated users (``workflows/simulator.py``), through the API, its exposure log,
the stream and a worker into a lake; then the outcome join and the analysis table."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from recsys.data.synthetic import SyntheticConfig

EXPERIMENTS = """\
experiments:
  - name: ranker-vs-popular
    layer: pipeline
    traffic: 0.5
    description: the full pipeline against segment-popular lists only
    arms: [{name: full}, {name: popular, changes: {pipeline: popular}}]
  - name: ranker-order
    layer: pipeline
    traffic: 0.5
    method: interleaving
    description: the ranker's order against retrieval's, interleaved on the same answers
    arms: [{name: ranked}, {name: retrieval-order, changes: {pipeline: retrieval}}]
"""


def run_experiment_demo(repo: Path, base: Path, workdir: Path, platform: SyntheticConfig,
                        users: int = 200, days: int = 2) -> None:
    import pandas as pd

    from recsys.experiments.analysis import analyze, format_table
    from recsys.experiments.covariates import covariates_from_feast
    from recsys.experiments.definitions import load_experiments
    from workflows.experiment_loop import run_loop
    from workflows.live_stack import live_stack
    from workflows.simulator import Population, SimulationConfig, Simulator

    logging.getLogger("workflows.experiment_loop").setLevel(logging.WARNING)
    work = workdir / "experiment"
    shutil.rmtree(work, ignore_errors=True)  # each demo run is a new experiment
    work.mkdir(parents=True)
    path = work / "experiments.yaml"
    path.write_text(EXPERIMENTS)
    definitions = load_experiments(path)
    from recsys.data.lake import Lake

    lake = work / "lake"
    Lake(lake, create=True)
    cfg = SimulationConfig(days=days, users=users, sessions=1.5)
    with live_stack(repo, base, lake, work / "redis", path) as stack:
        simulator = Simulator(stack.url, Population(platform), definitions, cfg)
        print(f"      {users} simulated users, {days} simulated days against {stack.url} "
              f"({path})")
        result = run_loop(simulator, definitions, lake, work / "outcomes", days)
    requests = sum(d.requests for d in result.days)
    seconds = sum(d.seconds for d in result.days)
    print(f"      {requests:,} requests, {simulator.sent:,} events posted back in "
          f"{seconds:.0f}s ({users * days / seconds:.1f} simulated user-days/s)")
    rows = pd.read_parquet(work / "outcomes" / "user_outcomes")
    covariates = covariates_from_feast(repo, rows)
    for experiment in definitions.experiments:
        analysis = analyze(rows[rows["experiment"] == experiment.name], experiment,
                           covariates=covariates)
        for line in format_table(analysis).splitlines():
            print(f"      {line}")
        truth = simulator.truth_of(experiment.name)
        print("      the simulator's truth (CTR of every request in each arm): " + ", ".join(
            f"{arm} {t['ctr']:.4f}" for arm, t in sorted(truth.items())))


__all__ = ["run_experiment_demo", "EXPERIMENTS"]
