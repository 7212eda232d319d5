"""`recsys monitor skew`: the online store's feature values against the offline store's
point-in-time values for the same entities at the same time, per feature.

    recsys monitor skew [--repo feature_repo] [--profile embedded]
        [--views user_features,user_profile] [--entities FILE | --sample 200] [--at TIME]
        [--threshold 0.01] [--output skew.json] [--metrics-file FILE.prom] [--fail-on-skew]

``--entities``: a file of entity ids, one per line; without it, ``--sample`` ids are drawn
(seeded) from the first view's offline table (``data/<view>`` of the profile). ``--at``: the
moment the offline values are taken at (ISO 8601; default now), which should be after the
last materialization so both stores hold the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from workflows.cli.arguments import positive_int, share_below_one

SKEW_EXIT = 3


def _time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def add_parser(commands: argparse._SubParsersAction) -> None:
    from recsys.features.store import PROFILES

    skew = commands.add_parser("skew", help="online against offline point-in-time values",
                               description=__doc__.split("\n\n")[0])
    skew.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR")
    skew.add_argument("--profile", choices=list(PROFILES), default="embedded")
    skew.add_argument("--views", default="user_features,user_profile", metavar="V1,V2",
                      help="feature views of one entity (default user_features,user_profile)")
    which = skew.add_mutually_exclusive_group()
    which.add_argument("--entities", type=Path, metavar="FILE", help="ids, one per line")
    which.add_argument("--sample", type=positive_int, default=200, metavar="N")
    skew.add_argument("--seed", type=int, default=0)
    skew.add_argument("--at", type=_time, metavar="TIME", help="default: now")
    skew.add_argument("--threshold", type=share_below_one, default=0.01,
                      help="share of differing pairs above which a feature is skewed")
    skew.add_argument("--output", type=Path, default=Path("skew.json"), metavar="FILE")
    skew.add_argument("--metrics-file", type=Path, metavar="FILE.prom")
    skew.add_argument("--fail-on-skew", action="store_true",
                      help=f"exit {SKEW_EXIT} when any feature is skewed")
    skew.set_defaults(func=run_skew)


def _entities(args: argparse.Namespace, path: Path, views: list[str]) -> list[str]:
    import numpy as np
    import pyarrow.parquet as pq

    from recsys.errors import ConfigError
    from recsys.features.tables import FEATURE_TABLES

    if args.entities is not None:
        try:
            ids = [line.strip() for line in args.entities.read_text().splitlines()]
        except OSError as exc:
            raise ConfigError(f"--entities {args.entities}: {exc.strerror}") from None
        ids = [i for i in ids if i]
        if not ids:
            raise ConfigError(f"--entities {args.entities} holds no ids")
        return ids
    table = path / "data" / views[0]
    if not table.exists():
        raise ConfigError(f"{table} does not exist: give --entities (the {args.profile} "
                          "profile's offline store is not a local table)")
    key = FEATURE_TABLES[views[0]].key
    ids = sorted(set(pq.read_table(table, columns=[key]).column(key).to_pylist()))
    rng = np.random.default_rng(args.seed)
    return [ids[i] for i in sorted(rng.choice(len(ids), min(args.sample, len(ids)),
                                              replace=False))]


def run_skew(args: argparse.Namespace) -> int:
    from recsys.errors import ConfigError
    from recsys.features.store import profile_repo
    from recsys.monitoring.metrics import MonitoringMetrics
    from recsys.monitoring.skew import sample_skew, view_features

    views = [v.strip() for v in args.views.split(",") if v.strip()]
    if not views:
        raise ConfigError("--views names no feature view")
    view_features(views)  # bad views are named before anything is read
    path = profile_repo(args.repo, args.profile)
    at = args.at or dt.datetime.now(dt.timezone.utc)
    entities = _entities(args, path, views)
    results = sample_skew(path, entities, at, views, args.threshold)
    print(f"{'feature':<38} {'compared':>8} {'differ':>7} {'share':>7} {'no online':>9} "
          f"{'no offline':>10}  verdict")
    for r in results:
        print(f"{r.feature_view + ':' + r.feature:<38} {r.compared:8,} {r.differing:7,} "
              f"{r.share:7.1%} {r.online_missing:9,} {r.offline_missing:10,}  "
              f"{'SKEW' if r.skew else 'ok'}"
              + (f"  e.g. {r.example[0]}: online {r.example[1]!r}, offline {r.example[2]!r}"
                 if r.skew and r.example else ""))
    skewed = [f"{r.feature_view}:{r.feature}" for r in results if r.skew]
    print(f"{len(skewed)} of {len(results)} features skewed ({len(entities):,} entities at "
          f"{at.isoformat(timespec='seconds')})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"at": at.isoformat(), "entities": len(entities), "skewed": skewed,
         "features": [r.to_dict() for r in results]}, indent=2, default=str))
    if args.metrics_file:
        metrics = MonitoringMetrics()
        for r in results:
            metrics.skew_share.labels(r.feature_view, r.feature).set(r.share)
            metrics.skew_detected.labels(r.feature_view, r.feature).set(int(r.skew))
        metrics.finished("skew")
        metrics.write(args.metrics_file)
    return SKEW_EXIT if args.fail_on_skew and skewed else 0


__all__ = ["add_parser", "run_skew", "SKEW_EXIT"]
