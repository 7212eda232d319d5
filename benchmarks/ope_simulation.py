"""Benchmark and acceptance run: off-policy evaluation against the simulated truth.

    python benchmarks/ope_simulation.py [--runs 20] [--answers 10000] [--k 10]
        [--logging uniform:max_explored_share=1,pool=20 softmax:temperature=1,...]
        [--targets softmax:temperature=0.5,... epsilon-greedy:epsilon=0.2,...]

For each logging policy, ``--runs`` times: ``--answers`` answers of ``--k`` slots (10,000 x 10
= 100K exposures) drawn on the synthetic platform with clicks from its true response model
(``workflows/ope_simulation.py``); each target policy's value estimated by IPS, SNIPS and DR
with 95% bootstrap intervals. Prints, per logging policy, target and estimator, the truth,
the mean estimate, the worst relative error of a run and how often the interval covered the
truth; writes JSON (benchmarks/results/ope_simulation.json) and a plot next to it (.png).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from workflows.ope_simulation import run_ope_check

RESULTS = Path(__file__).parent / "results"
LOGGING = ["uniform:max_explored_share=1,pool=20",
           "softmax:temperature=1,max_explored_share=1,pool=20"]
TARGETS = ["softmax:temperature=0.5,max_explored_share=1,pool=20",
           "epsilon-greedy:epsilon=0.2,max_explored_share=0.5,pool=20"]


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5))
    for y, row in enumerate(rows):
        ax.plot(100 * row["relative_error_of_mean"], y, "o", color="C0")
        ax.plot([-100 * row["max_abs_relative_error"], 100 * row["max_abs_relative_error"]],
                [y, y], color="grey", lw=1)
        ax.text(10.5, y, f"coverage {row['coverage']:.0%}", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{r['logging'].split(':')[0]} -> "
                                     f"{r['target'].split(':')[0]} {r['estimator']}"
                                     for r in rows], fontsize=7)
    ax.axvline(0, color="black", lw=0.5)
    for edge in (-10, 10):
        ax.axvline(edge, color="C3", lw=0.5, ls="--")
    ax.set_xlim(-12, 16)
    ax.set_xlabel("relative error, % (dot: of the mean over runs; bar: the worst run)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--truth-contexts", type=int, default=20_000)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--logging", nargs="+", default=LOGGING)
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--out", type=Path, default=RESULTS / "ope_simulation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    rows = run_ope_check(args.logging, args.targets, runs=args.runs, answers=args.answers,
                         k=args.k, truth_contexts=args.truth_contexts,
                         replicates=args.replicates)
    print(f"\n{'logging':<10} {'target':<16} {'est.':<6} {'truth':>7} {'mean':>7} "
          f"{'err mean':>9} {'worst':>7} {'coverage':>9} {'mean w':>7}")
    for r in rows:
        print(f"{r['logging'].split(':')[0]:<10} {r['target'].split(':')[0]:<16} "
              f"{r['estimator']:<6} {r['truth']:7.4f} {r['mean_estimate']:7.4f} "
              f"{100 * r['relative_error_of_mean']:8.2f}% "
              f"{100 * r['max_abs_relative_error']:6.2f}% {r['coverage']:8.0%} "
              f"{r['mean_weight']:7.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                             for k, v in vars(args).items()},
                                    "seconds": time.perf_counter() - started, "rows": rows},
                                   indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
