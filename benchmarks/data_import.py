"""Benchmark: `recsys data import` on clickstream CSVs of growing size: rows/s and peak memory.

    python benchmarks/data_import.py                      # 1M and 5M events
    python benchmarks/data_import.py --events 200000,1000000 --workdir /tmp/import-bench

For each size, `examples/clickstream/make_clickstream.py` writes the input (not measured),
then `recsys data import` with `examples/clickstream/mapping.yaml` runs in a subprocess into a
fresh lake, and again into the same lake (the idempotent re-import: everything already in
it). Measured: wall time, rows/s, and the peak RSS of the import's process (sampled every
0.1 s). Memory should stay flat as the input grows: the import holds one batch at a time
(plus the event ids of the day partitions it remembers). A table is printed; JSON and a plot
go to ``--out`` (default ``benchmarks/results/data_import.json`` and ``.png`` beside it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1024 ** 3


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected N,N,..., got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sorted(sizes)


def _measure(argv: list[str]) -> dict:
    """Run ``argv``; its wall time, peak RSS and last output lines."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        handle = psutil.Process(process.pid)
        while not done.wait(0.1):
            try:
                peak[0] = max(peak[0], handle.memory_info().rss)
            except psutil.Error:
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    done.set()
    sampler.join()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{output[-3000:]}")
    return {"seconds": seconds, "peak_gb": peak[0] / GB,
            "summary": [line for line in output.splitlines() if " from " in line
                        and "received" in line and "INFO" not in line]}


def run_size(events: int, workdir: Path, items: int, visitors: int, days: int,
             batch_rows: int) -> dict:
    raw = workdir / f"raw_{events}"
    if not (raw / "events.csv").exists():
        subprocess.run([sys.executable, str(ROOT / "examples/clickstream/make_clickstream.py"),
                        "--out", str(raw), "--events", str(events), "--items", str(items),
                        "--visitors", str(visitors), "--days", str(days)], check=True)
    lake = workdir / f"lake_{events}"
    shutil.rmtree(lake, ignore_errors=True)
    argv = [str(Path(sys.executable).with_name("recsys")), "data", "import", "--events",
            str(raw / "events.csv"), "--items", str(raw / "items.csv"), "--out", str(lake),
            "--mapping", str(ROOT / "examples/clickstream/mapping.yaml"), "--no-progress",
            "--batch-rows", str(batch_rows)]
    first = _measure(argv)
    again = _measure(argv)
    size_mb = (raw / "events.csv").stat().st_size / 2 ** 20
    return {"events": events, "input_mb": size_mb, "batch_rows": batch_rows,
            "import": {**first, "rows_per_s": events / first["seconds"]},
            "reimport": {**again, "rows_per_s": events / again["seconds"]}}


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, speed) = plt.subplots(1, 2, figsize=(10, 4))
    sizes = [r["events"] / 1e6 for r in rows]
    for key, label in (("import", "import"), ("reimport", "re-import")):
        memory.plot(sizes, [r[key]["peak_gb"] for r in rows], "o-", label=label)
        speed.plot(sizes, [r[key]["rows_per_s"] / 1e3 for r in rows], "o-", label=label)
    memory.set(xlabel="events (millions)", ylabel="peak RSS (GB)", ylim=(0, None),
               title="memory")
    speed.set(xlabel="events (millions)", ylabel="thousand rows/s", ylim=(0, None),
              title="throughput")
    memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=_sizes, default=[1_000_000, 5_000_000],
                        metavar="N,N,...")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--visitors", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsys-import-bench"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/data_import.json")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for events in args.events:
        rows.append(run_size(events, args.workdir, args.items, args.visitors, args.days,
                             args.batch_rows))
        row = rows[-1]
        print(f"{events:>10,} events ({row['input_mb']:,.0f} MB CSV): import "
              f"{row['import']['seconds']:.1f} s, {row['import']['rows_per_s']:,.0f} rows/s, "
              f"peak {row['import']['peak_gb']:.2f} GB; re-import "
              f"{row['reimport']['seconds']:.1f} s, peak {row['reimport']['peak_gb']:.2f} GB",
              flush=True)
    print("\n| events | CSV MB | import s | rows/s | peak GB | re-import s | rows/s | peak GB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['events']:,} | {r['input_mb']:,.0f} | {r['import']['seconds']:.1f} | "
              f"{r['import']['rows_per_s']:,.0f} | {r['import']['peak_gb']:.2f} | "
              f"{r['reimport']['seconds']:.1f} | {r['reimport']['rows_per_s']:,.0f} | "
              f"{r['reimport']['peak_gb']:.2f} |")
    for r in rows:
        for line in r["import"]["summary"]:
            print(f"  {r['events']:,}: {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    _plot(rows, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
