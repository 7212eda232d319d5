"""Benchmark: Beam feature-build throughput: single- and multi-process DirectRunner, and the
DaskRunner on a 2-process ``dask.distributed`` LocalCluster.

    python benchmarks/features.py [--users 20000 --items 50000 --days 4]
        [--modes single,multi,dask] [--dask_npartitions 16]

Generates a synthetic lake of about 1M events, runs the whole feature build in each mode,
prints a table and writes JSON (default benchmarks/results/features.json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "single": ("single (in_memory)", ["--direct_running_mode", "in_memory"]),
    "multi": ("multi_processing x2", ["--direct_running_mode", "multi_processing",
                                      "--direct_num_workers", "2"]),
    "dask": ("DaskRunner, 2 workers", ["--runner",
                                       "apache_beam.runners.dask.dask_runner.DaskRunner"]),
}


def _mode_args(mode: str, npartitions: int, stack) -> list[str]:
    """The mode's Beam options; for dask, a 2-process LocalCluster started on ``stack``."""
    args = list(MODES[mode][1])
    if mode == "dask":
        from distributed import LocalCluster

        cluster = stack.enter_context(LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"))
        args += ["--dask_client_address", cluster.scheduler_address,
                 "--dask_npartitions", str(npartitions)]
    return args


def _close_dask_clients() -> None:
    try:
        from distributed.client import _global_clients
    except ImportError:
        return
    for client in list(_global_clients.values()):
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--modes", default="single,multi,dask",
                        help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--dask_npartitions", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "features.json")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"--modes: unknown {', '.join(unknown)} (known: {', '.join(MODES)})")

    import logging

    from beam_jobs.pipeline import run
    from recsys.data.lake import Lake
    from recsys.data.synthetic import SyntheticConfig, generate

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(tmp) / "lake", create=True)
        cfg = SyntheticConfig(users=args.users, items=args.items, days=args.days,
                              end_date=dt.date(2026, 11, 1))
        events = generate(cfg, lake, progress=False).events_written
        print(f"lake: {events:,} events", flush=True)
        for mode in modes:
            name = MODES[mode][0]
            out = Path(tmp) / mode
            with contextlib.ExitStack() as stack:
                extra = _mode_args(mode, args.dask_npartitions, stack)
                result = run(["--lake", str(lake.root), "--output", str(out), *extra])
                _close_dask_clients()
            results.append({"mode": name, "events": result.counters["events_read"],
                            "seconds": result.seconds,
                            "events_per_s": result.events_per_second})
            print(f"{name}: {result.seconds:.1f}s", flush=True)
    print(f"{'mode':<22}{'events':>12}{'seconds':>10}{'events/s':>12}")
    for r in results:
        print(f"{r['mode']:<22}{r['events']:>12,}{r['seconds']:>10.1f}{r['events_per_s']:>12,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "features", "results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
