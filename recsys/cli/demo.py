"""`recsys demo`: the whole system on embedded defaults, as far as it is built.

Today: simulate a small platform into a lake and show what it made. Later issues extend this
until it runs features, training, serving and streaming end to end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recsys.cli.arguments import positive_int
from recsys.data.describe import describe
from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the system end to end on a small synthetic platform",
        description="Run the system end to end on embedded defaults: for now, simulate a small "
                    "platform into a lake and describe it.")
    demo.add_argument("--workdir", type=Path, default=Path("demo-output"), metavar="DIR",
                      help="where the demo writes its lake (default: ./demo-output)")
    demo.add_argument("--users", type=positive_int, default=2_000, metavar="N")
    demo.add_argument("--items", type=positive_int, default=10_000, metavar="M")
    demo.add_argument("--days", type=positive_int, default=7, metavar="D")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    lake_dir = args.workdir / "lake"
    cfg = SyntheticConfig(users=args.users, items=args.items, days=args.days)
    print(f"[1/1] simulating {cfg.users:,} users, {cfg.items:,} items, {cfg.days} days "
          f"into {lake_dir}")
    report = generate(cfg, Lake(lake_dir, create=True))
    print(f"      {report.events_written:,} new events written "
          f"({report.events_received - report.events_written:,} already in the lake) "
          f"in {report.seconds:.1f}s")
    print(f"\nThe lake at {lake_dir}:")
    for line in describe(Lake(lake_dir)).lines():
        print(f"  {line}")
    print("\nNext: `recsys data describe " + str(lake_dir) + "`, or read it with pyarrow/DuckDB "
          "(hive-partitioned Parquet under events/, items/, users/).")
    return 0
