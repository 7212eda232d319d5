"""Acceptance run of the retraining loop in closed loop (workflows/retraining_loop.py).

    python benchmarks/retraining_loop.py --workdir demo-output [--days 12] [--shift-day 3]
        [--slow-day 8] [--users 2000] [--no-shift] [--out DIR] [--retrain-every-days D]
        [--no-retrain] [--exploration SPEC] [--replay-ratio R] [--drift-replay-ratio R]
        [--ips-clip W] [--drift-forget-users]
        [--name NAME] [--compare LABEL=JSON] [--replot JSON]

``--workdir`` holds a system built by ``recsys demo --end-date DATE`` with its default
platform (2,000 users, 10,000 items, 7 days), DATE at least ``--days`` days before today: the
loop runs on a simulated clock from DATE (``--compressed-clock``: on the wall clock, days
compressed into minutes). Simulated users drive the real service on the real model server's
``stable`` label; after each simulated day the controller steps. With the defaults: a
population shift on day 3 (tastes move to other categories, 30% of users in a new country),
which the controller must detect, retrain for, bless, canary and promote; on day 6 a
candidate trained on shuffled labels, which the blessing must refuse; on day 8 a candidate
that is good offline but slow online, which the canary must roll back. With
``--no-shift`` the same days without any shift or slow candidate: the control for false
alarms. Prints a table per day, writes JSON (benchmarks/results/retraining_loop[_control].json)
and a plot of the true engagement, the drift score and the controller's decisions (.png).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import textwrap
from dataclasses import asdict
from pathlib import Path

from workflows.cli.arguments import fraction
from workflows.retraining_loop import LoopConfig, run_loop

RESULTS = Path(__file__).parent / "results"
MARKS = {"retrain": ("C1", "retrain"), "canary": ("C2", "canary starts"),
         "promote": ("C0", "promoted"), "rollback": ("C3", "rolled back"),
         "refuse": ("C7", "refused")}


P_VALUE_TESTS = ("ks", "z", "chi_square", "mmd")
FLOOR = 1e-12


def drift_score(record: dict) -> float:
    """The day's window: -log10 of its smallest p-value (NaN without a window)."""
    p_values = [f["statistic"] for f in ((record.get("drift") or {}).get("features") or [])
                if f["test"] in P_VALUE_TESTS]
    return -math.log10(max(min(p_values), FLOOR)) if p_values else math.nan


def feature_scores(records: list[dict]) -> tuple[dict[str, list[float]], float]:
    """-log10 p per day of every feature that drifted at least once, and the corrected
    threshold (-log10) of the windows."""
    names = sorted({f["feature"] for r in records for f in
                    ((r.get("drift") or {}).get("features") or []) if f["drift"]})
    out, limit = {}, math.nan
    for name in names:
        out[name] = []
        for r in records:
            found = [f for f in ((r.get("drift") or {}).get("features") or [])
                     if f["feature"] == name and f["test"] in P_VALUE_TESTS]
            out[name].append(-math.log10(max(found[0]["statistic"], FLOOR)) if found
                             else math.nan)
    thresholds = [f["threshold"] for r in records for f in
                  ((r.get("drift") or {}).get("features") or []) if f["test"] in P_VALUE_TESTS]
    if thresholds:
        limit = -math.log10(min(thresholds))
    return out, limit


def fallback_share(record: dict) -> float:
    """The day's answers from a popular-items tier (NaN when the tiers were not counted)."""
    tiers = record.get("tiers") or {}
    total = sum(tiers.values())
    return sum(n for t, n in tiers.items() if t.endswith("popular")) / total if total \
        else math.nan


def compared_runs(specs: list[str]) -> dict[str, list[dict]]:
    """``LABEL=JSON`` (another run's results) -> label: its days."""
    out = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--compare takes LABEL=JSON, got {spec!r}")
        out[label] = json.loads(Path(path).read_text())["days"]
    return out


def plot(records: list[dict], out: Path, title: str,
         others: dict[str, list[dict]] | None = None) -> None:
    """Also draws the true CTR of ``others`` (label: another run's days) for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r["day"] for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(days, [r["true_ctr"] for r in records], "o-", label="true CTR (simulator)")
    for n, (label, rows) in enumerate((others or {}).items()):
        top.plot([r["day"] for r in rows], [r["true_ctr"] for r in rows], ".--", lw=1,
                 color=f"C{8 + n % 2}", label=f"{label} (true CTR)")
    references = [r.get("reference_ctr") or {} for r in records]
    if any(references):
        top.plot(days, [x.get("random", math.nan) for x in references], ":", color="grey",
                 drawstyle="steps-mid", label="random items (true CTR)")
        oracle = [x.get("oracle", math.nan) for x in references]
        top.plot([], [], " ", label=f"oracle (each user's true best 10): "
                                    f"{min(oracle):.2f}-{max(oracle):.2f}")
    top.set_ylabel("true expected CTR")
    scores, limit = feature_scores(records)
    for n, (name, values) in enumerate(scores.items()):
        bottom.plot(days, values, "s-", color=f"C{4 + n % 6}", ms=4, label=name)
    if not scores:
        bottom.plot(days, [drift_score(r) for r in records], "s-", color="C4", ms=4,
                    label="smallest p-value of the window")
    if not math.isnan(limit):
        bottom.axhline(limit, color="grey", lw=0.8, ls=":", label="corrected threshold")
    bottom.set_ylabel("-log10 p (drift test)")
    bottom.set_xlabel("simulated day (the controller steps after each)")
    seen = set()
    for r in records:
        for d in r["decisions"]:
            colour, name = MARKS.get(d["decision"], (None, None))
            if colour is None:
                continue
            for ax in (top, bottom):
                ax.axvline(r["day"] + 0.05 * list(MARKS).index(d["decision"]), color=colour,
                           lw=1.2, ls="--", label=None if name in seen or ax is bottom
                           else name)
            seen.add(name)
    shifted = [r["day"] for r in records if r["shifted"]]
    if shifted:
        for ax in (top, bottom):
            ax.axvspan(min(shifted) - 0.5, max(shifted) + 0.5, color="grey", alpha=0.08)
    top.legend(fontsize=7, loc="lower left")
    bottom.legend(fontsize=7)
    top.set_title(textwrap.fill(title, 100), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run_title(cfg: LoopConfig) -> str:
    """What the run injected and on which days (those within the run), and how it retrains."""
    events = [f"{what} on day {day}" for what, day in (
        ("shift", cfg.shift_day), ("shuffled labels", cfg.bad_day),
        ("slow candidate", cfg.slow_day)) if day is not None and day < cfg.days]
    how = ("no retraining" if not cfg.retrain else
           f"warm start every {cfg.retrain_every_days:g} day(s) and on drift"
           if cfg.retrain_every_days else "retrain on drift")
    replay = "" if cfg.drift_replay_ratio is None else (
        f", after a drift from its start, replay {cfg.drift_replay_ratio:g}")
    if cfg.replay_ratio != 1.0:
        replay = f", replay {cfg.replay_ratio:g}" + replay
    return ", ".join([*(events or ["no shift (control)"]), how]) + replay + (
        f", exploration {cfg.exploration}" if cfg.exploration else "") + (
        f", clicks weighed by inverse propensity (clip {cfg.ips_clip:g})"
        if cfg.ips_clip is not None else "") + (
        ", a drift warm start forgets the user rows" if cfg.drift_forget_users else "") + (
        f", {cfg.organic_share:.0%} of sessions organic" if cfg.organic_share else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--shift-day", type=int, default=3)
    parser.add_argument("--bad-day", type=int, default=6)
    parser.add_argument("--slow-day", type=int, default=8)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-shift", action="store_true")
    parser.add_argument("--pipeline", choices=("retrieval", "full"), default="retrieval",
                        help="answers in retrieval order (default) or through the ranker")
    parser.add_argument("--compressed-clock", action="store_true",
                        help="run on the wall clock, simulated days compressed into minutes")
    parser.add_argument("--retrain-every-days", type=float, default=0.0, metavar="D",
                        help="a scheduled warm start every D simulated days, besides the "
                             "drift trigger (default 0: on drift only)")
    parser.add_argument("--no-retrain", action="store_true",
                        help="the controller never steps: what the platform would see "
                             "without the loop")
    parser.add_argument("--exploration", metavar="SPEC",
                        help="the served lists' exploration policy, NAME:key=value,... "
                             "(e.g. uniform:max_explored_share=0.3,pool=1000; default none)")
    parser.add_argument("--replay-ratio", type=float, default=1.0, metavar="R",
                        help="older examples replayed per new one in each warm start "
                             "(default 1)")
    parser.add_argument("--drift-replay-ratio", type=float, metavar="R",
                        help="a drift-triggered warm start learns from the drift's start on "
                             "(--since) with R older examples per new one (default: like "
                             "the others)")
    parser.add_argument("--ips-clip", type=float, metavar="W",
                        help="each warm start weighs its new clicks by their inverse logged "
                             "propensity, at most W (the trainer's --ips-clip; default: "
                             "unweighted)")
    parser.add_argument("--drift-forget-users", action="store_true",
                        help="a drift-triggered warm start starts every user's id row as the "
                             "unknown user's (the trainer's --forget-users)")
    parser.add_argument("--organic-share", type=fraction, default=0.0, metavar="P",
                        help="the chance a simulated session finds its items without the "
                             "recommender, from the users' true tastes (search, browsing; "
                             "default 0: users see only what the service shows)")
    parser.add_argument("--name", help="the results' file name (default retraining_loop, "
                                       "or retraining_loop_control with --no-shift)")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=JSON",
                        help="also plot another run's true CTR (repeatable)")
    parser.add_argument("--replot", type=Path, metavar="JSON",
                        help="only draw the plot of an earlier run's JSON")
    args = parser.parse_args()
    if args.replot:
        document = json.loads(args.replot.read_text())
        plot(document["days"], args.replot.with_suffix(".png"), document.get("title", ""),
             compared_runs(args.compare))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    for noisy in ("apache_beam", "feast", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = LoopConfig(days=args.days, shift_day=None if args.no_shift else args.shift_day,
                     slow_day=None if args.no_shift else args.slow_day,
                     bad_day=None if args.no_shift else args.bad_day, users=args.users,
                     seed=args.seed, simulated_clock=not args.compressed_clock,
                     pipeline=args.pipeline, retrain_every_days=args.retrain_every_days,
                     retrain=not args.no_retrain, exploration=args.exploration,
                     replay_ratio=args.replay_ratio,
                     drift_replay_ratio=args.drift_replay_ratio, ips_clip=args.ips_clip,
                     drift_forget_users=args.drift_forget_users,
                     organic_share=args.organic_share)
    name = args.name or ("retraining_loop_control" if args.no_shift else "retraining_loop")
    out = args.out or args.workdir / name
    records = [asdict(r) for r in run_loop(args.workdir, out, cfg)]
    errors = json.loads((out / "service_errors.json").read_text())
    print(f"\n{'day':>3} {'shift':>5} {'requests':>8} {'fallback':>8} {'true CTR':>9} "
          f"{'random':>7} {'oracle':>7} {'-lg p':>6}  decisions; aliases")
    for r in records:
        print(f"{r['day']:>3} {'yes' if r['shifted'] else '':>5} {r['requests']:>8} "
              f"{fallback_share(r):>8.2%} "
              f"{r['true_ctr']:>9.4f} {r['reference_ctr'].get('random', math.nan):>7.4f} "
              f"{r['reference_ctr'].get('oracle', math.nan):>7.4f} {drift_score(r):>6.1f}  "
              f"{', '.join(d['decision'] + ': ' + d['reason'] for d in r['decisions'])}; "
              f"{r['aliases']}")
    alerts = sorted({f for r in records for f in ((r["drift"] or {}).get("alerts") or [])})
    print(f"drift alerts: {', '.join(alerts) or 'none'}; requests the service refused: "
          f"{sum(errors.values()):.0f} {errors or ''}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    title = run_title(cfg)
    path.write_text(json.dumps({"config": asdict(cfg), "title": title, "days": records,
                                "service_errors": errors}, indent=2, default=str))
    plot(records, path.with_suffix(".png"), title, compared_runs(args.compare))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
