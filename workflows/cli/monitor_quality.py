"""`recsys monitor quality`: CTR and watch time per retrieval version over time, per segment,
with intervals, from the outcome join (`recsys experiment outcomes`); and one version against
another.

    recsys monitor quality --outcomes OUTCOMES_DIR [--period hour|day] [--segment device|country]
        [--compare BASELINE:CANDIDATE] [--alpha 0.05] [--output quality.json] [--plot quality.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflows.cli.arguments import probability, read_parquet_flag


def _pair(text: str) -> tuple[int, int]:
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected BASELINE:CANDIDATE versions such as 3:4, "
                                         f"got {text!r}")
    return int(parts[0]), int(parts[1])


def add_parser(commands: argparse._SubParsersAction) -> None:
    from recsys.monitoring.live_quality import PERIODS, SEGMENTS

    quality = commands.add_parser("quality", help="CTR and watch time per model version",
                                  description=__doc__.split("\n\n")[0])
    quality.add_argument("--outcomes", required=True, type=Path, metavar="DIR",
                         help="the output of `recsys experiment outcomes`")
    quality.add_argument("--period", choices=list(PERIODS), default="hour")
    quality.add_argument("--segment", choices=list(SEGMENTS))
    quality.add_argument("--compare", type=_pair, metavar="BASELINE:CANDIDATE")
    quality.add_argument("--alpha", type=probability, default=0.05)
    quality.add_argument("--output", type=Path, default=Path("quality.json"), metavar="FILE")
    quality.add_argument("--plot", type=Path, metavar="FILE.png",
                         help="CTR per version over time, with its intervals")
    quality.set_defaults(func=run_quality)


def run_quality(args: argparse.Namespace) -> int:
    from recsys.errors import ConfigError
    from recsys.monitoring.live_quality import compare_versions, quality_table

    requests = read_parquet_flag("--outcomes", args.outcomes / "request_outcomes").to_pandas()
    if "retrieval_version" not in requests.columns:
        raise ConfigError(f"{args.outcomes}/request_outcomes has no retrieval_version: it was "
                          "joined by an older version; run `recsys experiment outcomes` again")
    if requests.empty:
        raise ConfigError(f"{args.outcomes}/request_outcomes holds no answers")
    table = quality_table(requests, args.period, args.segment, args.alpha)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    document = {"period": args.period, "segment": args.segment, "alpha": args.alpha,
                "rows": json.loads(table.to_json(orient="records", date_format="iso"))}
    if args.compare:
        try:
            found = compare_versions(requests, *args.compare, alpha=args.alpha)
        except ValueError as exc:
            raise ConfigError(f"--compare {args.compare[0]}:{args.compare[1]}: {exc}") from None
        document["comparison"] = found.to_dict()
        print(f"version {found.candidate} against {found.baseline}: CTR "
              f"{found.candidate_ctr:.4f} vs {found.baseline_ctr:.4f}, "
              f"{found.relative_change:+.1%} [{found.low:+.1%}, {found.high:+.1%}] "
              f"({1 - args.alpha:.0%} interval; users {found.users[0]:,} / {found.users[1]:,})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, default=str))
    print(f"wrote {args.output}")
    if args.plot:
        _plot(table, args.segment, args.alpha, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot(table, segment: str | None, alpha: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    keys = ["version"] + ([segment] if segment else [])
    for key, part in table.groupby(keys):
        label = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        ax.plot(part["period"], part["ctr"], marker="o", label=f"v{label}")
        ax.fill_between(part["period"], part["ctr_low"], part["ctr_high"], alpha=0.2)
    ax.set_ylabel("CTR (clicks / items shown)")
    ax.set_title(f"Live CTR per retrieval version, with {1 - alpha:.0%} intervals")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["add_parser", "run_quality"]
