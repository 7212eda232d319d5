"""Benchmark: Beam feature-build throughput, single- vs multi-process DirectRunner.

    python benchmarks/features.py [--users 20000 --items 50000 --days 4]

Generates a synthetic lake of about 1M events, runs the whole feature build in each mode,
prints a table and writes JSON (default benchmarks/results/features.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "single (in_memory)": ["--direct_running_mode", "in_memory"],
    "multi_processing x2": ["--direct_running_mode", "multi_processing",
                            "--direct_num_workers", "2"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "features.json")
    args = parser.parse_args()

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
        for name, extra in MODES.items():
            out = Path(tmp) / name.split()[0]
            result = run(["--lake", str(lake.root), "--output", str(out), *extra])
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
