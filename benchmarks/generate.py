"""Benchmark: synthetic generation and MovieLens import into a lake.

Prints a table and writes JSON (default benchmarks/results/data.json):
    python benchmarks/generate.py --users 100000 --items 1000000 --days 30
Each case runs in a fresh subprocess so that peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MOVIELENS = ROOT.parent / "shared" / "datasets" / "ml-latest-small"

CHILD = """
import json, resource, sys, time
from pathlib import Path
from recsys.data.lake import Lake
kind, out, params = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
start = time.perf_counter()
if kind == "generate":
    import datetime as dt
    from recsys.data.synthetic import SyntheticConfig, generate
    cfg = SyntheticConfig(**{**params, "end_date": dt.date.fromisoformat(params["end_date"])})
    report = generate(cfg, Lake(out, create=True), progress=False)
    events = report.events_written
else:
    from recsys.data.movielens import import_movielens
    report = import_movielens(Path(params["src"]), Lake(out, create=True))
    events = report.events.written
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "events": events,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(kind: str, params: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lake"
        proc = subprocess.run([sys.executable, "-c", CHILD, kind, str(out), json.dumps(params)],
                              capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    result["lake_mb"] = size / 2**20
    result["events_per_s"] = result["events"] / result["seconds"]
    return {"case": kind, "params": params, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--end-date", default="2026-11-01")
    parser.add_argument("--movielens", type=Path, default=DEFAULT_MOVIELENS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data.json")
    args = parser.parse_args()

    cases = [("generate", {"users": args.users, "items": args.items, "days": args.days,
                           "end_date": args.end_date})]
    if (args.movielens / "ratings.csv").exists():
        cases.append(("import-movielens", {"src": str(args.movielens)}))
    results = []
    for kind, params in cases:
        print(f"running {kind} {params} ...", flush=True)
        results.append(run_case(kind, params))

    header = f"{'case':<18}{'events':>14}{'seconds':>10}{'events/s':>12}{'peak RSS MB':>13}" \
             f"{'lake MB':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['case']:<18}{r['events']:>14,}{r['seconds']:>10.1f}{r['events_per_s']:>12,.0f}"
              f"{r['peak_rss_mb']:>13,.0f}{r['lake_mb']:>10,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "data", "python": sys.version.split()[0],
                                    "results": results}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
