"""Benchmark and acceptance run: online experiments in closed loop with the user simulator.

    python benchmarks/experiment_simulation.py --workdir demo-output [--users 600] [--days 4]
        [--aa 50] [--platform-users 2000 --platform-items 10000 --platform-days 7]

``--workdir`` holds a system built by ``recsys demo`` (its ``feature_repo`` and
``models/serving``), and the platform flags must be those the demo ran with. The run serves
that system in process (``workflows/live_stack.py``: the API with its exposure log, an
embedded Redis stream and one stream worker writing to a new lake under
``WORKDIR/experiment-simulation``), with the experiments of
``workflows/experiment_acceptance.py`` (``--aa`` A/A experiments, a 52/48 split analysed as
50/50, the full pipeline against popular-only, the ranker against retrieval order, and that
pair interleaved), drives it with ``--users`` simulated users for ``--days`` simulated days,
and after each day joins the outcomes (Beam) and analyses every experiment, CUPED's
covariates from the demo's Feast repository. Prints the verdicts against the truth, writes
JSON (benchmarks/results/experiment_simulation.json) and a plot next to it (.png): each
experiment's CTR uplift interval at the last look, with its truth.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from recsys.data.synthetic import SyntheticConfig
from workflows.experiment_acceptance import format_report, run_acceptance
from workflows.simulator import SimulationConfig

RESULTS = Path(__file__).parent / "results"


def plot(looks_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    looks = [json.loads(line) for line in looks_path.read_text().splitlines()]
    last = max(look["day"] for look in looks)
    final = [look for look in looks if look["day"] == last and "fixed_ci" in look]
    fig, ax = plt.subplots(figsize=(8, 0.25 * len(final) + 1.5))
    for y, look in enumerate(final):
        colour = "C0" if look["covered"] else "C3"
        ax.plot([100 * v for v in look["fixed_ci"]], [y, y], color=colour, lw=2)
        ax.plot([100 * v for v in look["sequential_ci"]], [y, y], color="grey", lw=0.8)
        ax.plot(100 * look["truth"], y, "k|", ms=10)
        ax.plot(100 * look["measured"], y, "o", color=colour, ms=3)
    ax.set_yticks(range(len(final)), [f"{x['experiment']} ({x['arm']})" for x in final],
                  fontsize=6)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("CTR uplift, % (blue: 95% CI covering the truth |, red: not; grey: "
                  "always valid)")
    ax.set_title(f"experiments after {last + 1} simulated days")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--sessions", type=float, default=2.0)
    parser.add_argument("--aa", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--platform-users", type=int, default=2_000)
    parser.add_argument("--platform-items", type=int, default=10_000)
    parser.add_argument("--platform-days", type=int, default=7)
    parser.add_argument("--platform-seed", type=int, default=42)
    parser.add_argument("--no-cuped", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "experiment_simulation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    repo = (args.workdir / "feature_repo").resolve()
    base = (args.workdir / "models" / "serving").resolve()
    platform = SyntheticConfig(users=args.platform_users, items=args.platform_items,
                               days=args.platform_days, seed=args.platform_seed)
    cfg = SimulationConfig(days=args.days, users=args.users, sessions=args.sessions,
                           concurrency=args.concurrency, seed=args.seed)
    work = (args.workdir / "experiment-simulation").resolve()
    report = run_acceptance(repo, base, platform, work, cfg, aa=args.aa,
                            cuped_repo=None if args.no_cuped else repo)
    print(format_report(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {**vars(args), "workdir": str(args.workdir),
                                               "out": str(args.out)},
                                    **report.to_dict()}, indent=2, default=str))
    plot(work / "looks.jsonl", args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
