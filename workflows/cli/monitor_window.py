"""`recsys monitor window`: a serving profile's window (what the service saw in an hour or a
day, per retrieval version, kept in the stream's Redis) as a table and as Parquet.

    recsys monitor window --list [--redis-url URL]
    recsys monitor window --version V --window h2026120403|d20261204 [--redis-url URL]
        [--out window.parquet] [--catalogue-size N]

The Parquet file has one row per sampled answer: the query inputs the service built (the
columns `recsys monitor drift --window` tests), ``top_score`` and ``embedding``; the counts
(answers by tier, items by source, cold starts, distinct items shown) are printed and written
beside it as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from workflows.cli.arguments import positive_int

WINDOW = re.compile(r"^(h\d{10}|d\d{8})$")


def _window(text: str) -> str:
    if not WINDOW.match(text):
        raise argparse.ArgumentTypeError(f"expected h + YYYYMMDDHH or d + YYYYMMDD (UTC), "
                                         f"got {text!r}")
    return text


def add_parser(commands: argparse._SubParsersAction) -> None:
    window = commands.add_parser("window", help="a serving profile's window from Redis",
                                 description=__doc__.split("\n\n")[0])
    window.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", metavar="URL",
                        help="the stream's Redis (default redis://127.0.0.1:6379/0)")
    window.add_argument("--list", action="store_true", help="list the windows kept")
    window.add_argument("--version", metavar="V", help="the retrieval version")
    window.add_argument("--window", type=_window, metavar="NAME")
    window.add_argument("--out", type=Path, default=Path("window.parquet"), metavar="FILE")
    window.add_argument("--catalogue-size", type=positive_int, metavar="N",
                        help="items in the catalogue, for the coverage share")
    window.set_defaults(func=run_window)


def _client(url: str):
    import redis

    from recsys.errors import ConfigError

    client = redis.Redis.from_url(url, socket_connect_timeout=2.0)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - named with the reason
        raise ConfigError(f"--redis-url {url}: cannot reach Redis ({exc})") from None
    return client


def run_window(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys.errors import ConfigError
    from recsys.monitoring.serving_windows import ServingWindows, one_per_user

    windows = ServingWindows(_client(args.redis_url))
    if args.list:
        kept = windows.windows()
        for version, name in kept:
            print(f"version {version}  {name}")
        if not kept:
            print("no serving windows in Redis (is profile_sample_rate 0, or no traffic?)")
        return 0
    if not args.version or not args.window:
        raise ConfigError("give --version and --window (or --list to see the windows kept)")
    found = windows.read_window(args.version, args.window)
    if not found.counts:
        raise ConfigError(f"no window {args.window} of version {args.version} in Redis "
                          "(`recsys monitor window --list` shows those kept)")
    answers = found.counts.get("answers", 0)
    summary = {"version": args.version, "window": args.window, "answers": answers,
               "samples": len(found.samples), "offered": found.offered,
               "distinct_items": found.distinct_items, "counts": found.counts}
    if args.catalogue_size:
        summary["coverage"] = found.distinct_items / args.catalogue_size
    print(f"version {args.version} {args.window}: {answers:,} answers, "
          f"{len(found.samples):,} samples of {found.offered:,} offered, "
          f"{found.distinct_items:,} distinct items shown"
          + (f" ({summary['coverage']:.1%} of the catalogue)" if args.catalogue_size else ""))
    for name, value in sorted(found.counts.items()):
        if name.startswith(("tier:", "source:")):
            total = answers if name.startswith("tier:") else sum(
                v for k, v in found.counts.items() if k.startswith("source:"))
            print(f"  {name:<28} {value:>9,}  {value / max(total, 1):6.1%}")
    users = one_per_user(found.samples)  # the drift tests' units (serving_windows.py)
    summary["users"] = len(users)
    rows = [{**s.get("inputs", {}), "top_score": s.get("top_score"),
             "embedding": s.get("embedding"), "tier": s.get("tier"), "at_s": s.get("at_s")}
            for s in users]
    if rows:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), args.out)
        print(f"wrote {len(rows):,} samples (one per user) to {args.out}")
    summary_path = args.out.with_suffix(".json")
    summary_path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {summary_path}")
    return 0


__all__ = ["add_parser", "run_window"]
