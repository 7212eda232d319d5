"""Benchmark and acceptance run: exploration in closed loop with the user simulator.

    python benchmarks/exploration_simulation.py --workdir demo-output [--users 3000]
        [--logging-days 2] [--test-days 2] [--platform-users 4000 --platform-items 2000
        --platform-days 3]

``--workdir`` holds a system built by ``recsys demo`` (its ``feature_repo`` and
``models/serving``) and the platform flags must be those the demo ran with. The run
(``workflows/exploration_acceptance.py``) serves that system in process with a stochastic
logging policy for ``--logging-days`` simulated days (the bandit learns from it), estimates
the bandit's and the ranked list's values off-policy from those logs, then runs an A/B test
of the bandit against no exploration for ``--test-days`` days, and times how fast a click
reaches the service's bandit parameters. Prints the figures, writes JSON
(benchmarks/results/exploration_simulation.json) and a plot next to it (.png): each arm's
OPE interval beside its A/B measurement and truth, and its coverage and new-item share.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from recsys.data.synthetic import SyntheticConfig
from workflows.exploration_acceptance import (
    BANDIT,
    LOGGING,
    format_report,
    run_exploration_acceptance,
)
from workflows.simulator import SimulationConfig

RESULTS = Path(__file__).parent / "results"
# budgets no busy machine misses, and room for the simulator's threads: the run judges what
# exploration shows, so answers should not fall back to the (unexplored) popular lists
GENEROUS = {"request_deadline_ms": 5_000, "features_timeout_ms": 2_000,
            "retrieval_timeout_ms": 2_000, "ranking_timeout_ms": 2_000, "max_in_flight": 16}


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (values, reach) = plt.subplots(1, 2, figsize=(11, 3.8))
    arms = {"linucb": "bandit", "none": "none"}
    for y, (target, arm) in enumerate(arms.items()):
        measured = report["arms"].get(arm)
        for offset, name in ((-0.15, "snips"), (0.0, "dr")):
            e = report["ope"].get(target, {}).get(name)
            if e:
                values.plot([e["low"], e["high"]], [y + offset] * 2, lw=3,
                            label=f"OPE {name}" if y == 0 else None,
                            color="C0" if name == "snips" else "C1")
        if measured:
            values.plot(measured["ci"], [y + 0.15] * 2, color="C2", lw=3,
                        label="A/B measured" if y == 0 else None)
            values.plot(measured["true_clicks_per_answer"], y, "k|", ms=16,
                        label="truth" if y == 0 else None)
    values.set_yticks(range(len(arms)), [f"{a} arm" for a in arms.values()])
    values.set_xlabel("clicks per answer (95% intervals)")
    values.legend(fontsize=7)
    names = list(report["arms"])
    coverage = [report["arms"][a]["coverage"] * 100 for a in names]
    new_share = [report["arms"][a]["new_item_share"] * 100 for a in names]
    x = range(len(names))
    reach.bar([i - 0.2 for i in x], coverage, width=0.4, label="catalogue shown, %")
    reach.bar([i + 0.2 for i in x], new_share, width=0.4, label="impressions of new items, %")
    reach.set_xticks(list(x), names)
    reach.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--logging-days", type=int, default=3,
                        help="OPE reads the last; the earlier ones warm the users up")
    parser.add_argument("--test-days", type=int, default=2)
    parser.add_argument("--sessions", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logging-policy", default=LOGGING)
    parser.add_argument("--bandit-policy", default=BANDIT)
    parser.add_argument("--replicates", type=int, default=300)
    parser.add_argument("--platform-users", type=int, default=4_000)
    parser.add_argument("--platform-items", type=int, default=2_000)
    parser.add_argument("--platform-days", type=int, default=3)
    parser.add_argument("--platform-seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=RESULTS / "exploration_simulation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    repo = (args.workdir / "feature_repo").resolve()
    base = (args.workdir / "models" / "serving").resolve()
    platform = SyntheticConfig(users=args.platform_users, items=args.platform_items,
                               days=args.platform_days, seed=args.platform_seed)
    common = dict(users=args.users, sessions=args.sessions, concurrency=args.concurrency)
    logging_cfg = SimulationConfig(days=args.logging_days, seed=args.seed, **common)
    test_cfg = SimulationConfig(days=args.test_days, seed=args.seed + 1, **common)
    work = (args.workdir / "exploration-simulation").resolve()
    report = run_exploration_acceptance(repo, base, platform, work, logging_cfg, test_cfg,
                                        args.logging_policy, args.bandit_policy,
                                        args.replicates, **GENEROUS)
    print(format_report(report))
    document = {"config": {**vars(args), "workdir": str(args.workdir), "out": str(args.out)},
                **report.to_dict()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, default=str))
    plot(document, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
