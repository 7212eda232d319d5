"""`recsys ope`: estimate an exploration policy's value from the lake's logged answers
(Beam: ``beam_jobs/ope.py``), before it meets users; `recsys bandit save`: the live
contextual bandit's parameters to a file (for ``recsys ope --policy linucb:...
--bandit-state FILE``).

    recsys ope --lake LAKE --policy SPEC [--output ope.json] [--slots 20] [--clip W]
        [--replicates 500] [--seed 0] [--attribution-window-s 1800] [--start T] [--end T]
        [--reward click=1,like=0.5,skip=-0.5] [--bandit-state FILE] [Beam options]
    recsys bandit save --out FILE [--ridge 1.0] [--config FILE.yaml] [--repo DIR]
        [--redis-url URL]

Prints each estimator's value (expected reward per answer) with its 95% bootstrap interval,
the logging policies' own value and the mean importance weight (about 1 when the logs are
sound), and what was skipped and why; writes the same as JSON.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from workflows.cli.arguments import iso_datetime, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ope = subparsers.add_parser(
        "ope", help="off-policy evaluation of an exploration policy on logged answers (Beam)",
        description=__doc__.split("\n\n")[0])
    ope.add_argument("--lake", required=True, type=Path, metavar="LAKE")
    ope.add_argument("--policy", required=True, metavar="SPEC",
                     help="e.g. softmax:temperature=0.1,max_explored_share=0.3 or "
                          "epsilon-greedy:epsilon=0.05")
    ope.add_argument("--output", type=Path, default=Path("ope.json"), metavar="FILE")
    ope.add_argument("--slots", type=positive_int, default=20,
                     help="slots counted per answer (default 20)")
    ope.add_argument("--clip", type=float, default=None, metavar="W",
                     help="cut importance weights above W (default: none)")
    ope.add_argument("--replicates", type=positive_int, default=500)
    ope.add_argument("--seed", type=int, default=0)
    ope.add_argument("--attribution-window-s", type=float, default=1800.0, metavar="S")
    ope.add_argument("--start", type=iso_datetime, default=None, metavar="TIME")
    ope.add_argument("--end", type=iso_datetime, default=None, metavar="TIME")
    ope.add_argument("--reward", default="click=1", metavar="WEIGHTS",
                     help="reward per event type, e.g. click=1,like=0.5,skip=-0.5,"
                          "watch_s=0.001 (default click=1)")
    ope.add_argument("--bandit-state", type=Path, default=None, metavar="FILE",
                     help="a linucb policy's parameters (LinUCBState bytes)")
    ope.set_defaults(func=run_ope, accepts_beam_args=True)


def add_bandit_parser(subparsers: argparse._SubParsersAction) -> None:
    bandit = subparsers.add_parser("bandit", help="the contextual bandit's parameters")
    commands = bandit.add_subparsers(dest="bandit_command", required=True, metavar="COMMAND")
    save = commands.add_parser(
        "save", help="write the live bandit's parameters (from the stream's Redis) to a file",
        description="Read the statistics the stream workers keep in Redis and write the "
                    "bandit's state (A = ridge I + sum x x^T, b = sum reward x) to a file that "
                    "`recsys ope --bandit-state` reads.")
    save.add_argument("--out", required=True, type=Path, metavar="FILE")
    save.add_argument("--ridge", type=float, default=1.0,
                      help="the policy's ridge (its spec's `ridge`, default 1.0)")
    save.add_argument("--config", type=Path, metavar="FILE.yaml",
                      help="a file with a `stream` section")
    save.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR",
                      help="the feature repository (its embedded Redis, default "
                           "feature_repo)")
    save.add_argument("--redis-url", metavar="URL", help="redis://host:port/db of the stream")
    save.set_defaults(func=run_bandit_save)


def run_bandit_save(args: argparse.Namespace) -> int:
    from recsys.errors import ConfigError
    from recsys.exploration.bandit_store import BanditStore
    from recsys.stream.config import load_stream_config
    from recsys.stream.redis_connection import connect

    if not args.ridge > 0:
        raise ConfigError(f"--ridge must be > 0, got {args.ridge}")
    cfg = load_stream_config(args.config, {"redis_url": args.redis_url}).for_repo(
        args.repo.resolve())
    sums = BanditStore(connect(cfg)).read()
    if sums is None:
        raise ConfigError("the bandit has no statistics yet: no exploring answer has been "
                          "applied by a stream worker")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(sums.state(args.ridge).to_bytes())
    print(f"wrote {args.out}: {sums.shown:,} shown slots, last update at "
          f"{sums.updated_at:.0f} (Unix seconds)")
    return 0


def run_ope(args: argparse.Namespace) -> int:
    from beam_jobs.ope import run

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    argv = ["--lake", str(args.lake), "--output", str(args.output), "--policy", args.policy,
            "--slots", str(args.slots), "--replicates", str(args.replicates),
            "--seed", str(args.seed), "--attribution_window_s", str(args.attribution_window_s),
            "--reward", args.reward, *args.beam_args]
    for flag, value in (("--clip", args.clip), ("--bandit_state", args.bandit_state),
                        ("--start", args.start and args.start.isoformat()),
                        ("--end", args.end and args.end.isoformat())):
        if value is not None:
            argv += [flag, str(value)]
    print(format_result(run(argv)))
    print(f"wrote {args.output}")
    return 0


def format_result(document: dict) -> str:
    """The estimates as a table, then what was skipped."""
    lines = [f"policy {document['policy']}: {document['answers']:,} logged answers"]
    estimates = document.get("estimates") or {}
    if estimates:
        lines.append(f"{'estimator':<12} {'value':>9} {'95% interval':>22} {'se':>8}")
        for name in ("ips", "snips", "dr", "rips", "snrips", "slate_ips", "dm", "logged"):
            e = estimates.get(name)
            if e is not None:
                lines.append(f"{name:<12} {e['estimate']:9.4f} "
                             f"[{e['low']:9.4f}, {e['high']:9.4f}] {e['se']:8.4f}")
        weight = estimates["mean_weight"]
        lines.append(f"mean importance weight {weight['estimate']:.3f} "
                     f"[{weight['low']:.3f}, {weight['high']:.3f}] (about 1 when the logs "
                     "are sound)")
    for reason, count in (document.get("skipped") or {}).items():
        lines.append(f"skipped {count:,}: {reason}")
    return "\n".join(lines)
