"""Benchmark: after a shift in a retraining-loop run, how much of what the query reads still
predates it. For each simulated day from the shift on, the users who were served that day
(the exposure log) and, as of the day's start, their last N history events (the feature
config's history types: click, watch, like, share, rating): the mean share of those items
engaged with before the shift, and the share of users with half or more of them.

    python benchmarks/loop_history_age.py --lake RUN/lake --day0 2026-11-12 --shift-day 3 \
        [--days 20] [--history 10] [--name loop_history_age]

RUN is a ``benchmarks/retraining_loop.py --out`` directory; ``--day0`` is its simulated
clock's day 0 (the demo's ``--end-date``). Prints a table, writes JSON
(benchmarks/results/NAME.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DAY = dt.timedelta(days=1)


def history_age(lake: Path, day0: dt.datetime, shift_day: int, days: int, history: int,
                history_types: tuple[str, ...]) -> list[dict]:
    """One row per day from ``shift_day`` to ``days - 1`` (see the module docstring)."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    def read(table: str, columns: list[str], where=None) -> pd.DataFrame:
        frame = ds.dataset(lake / table, format="parquet", partitioning="hive").to_table(
            columns=columns, filter=where).to_pandas()
        frame["at"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame.sort_values("at", kind="stable")

    events = read("events", ["user_id", "timestamp"],
                  pc.field("event_type").isin(list(history_types)))
    exposures = read("exposures", ["user_id", "timestamp"])
    shift = pd.Timestamp(day0 + shift_day * DAY)
    rows = []
    for day in range(shift_day, days):
        start = pd.Timestamp(day0 + day * DAY)
        served = exposures[(exposures["at"] >= start) & (exposures["at"] < start + DAY)]
        users = served["user_id"].unique()
        before = events[(events["at"] < start) & events["user_id"].isin(users)]
        last = before.groupby("user_id").tail(history)
        old = (last["at"] < shift).groupby(last["user_id"]).mean()
        rows.append({"day": day, "users": int(len(users)),
                     "mean_share_before_shift": float(old.mean()) if len(old) else None,
                     "users_half_or_more": float((old >= 0.5).mean()) if len(old) else None})
    return rows


def main() -> None:
    from recsys.features.config import FeatureConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--day0", type=dt.date.fromisoformat, required=True, metavar="DATE")
    parser.add_argument("--shift-day", type=int, required=True)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--history", type=int, default=10, metavar="N",
                        help="history items the query reads (the demo's: 10)")
    parser.add_argument("--name", default="loop_history_age")
    args = parser.parse_args()
    if not (args.lake / "events").is_dir() or not (args.lake / "exposures").is_dir():
        parser.error(f"--lake {args.lake}: no events and exposures there (a retraining "
                     "loop run's lake)")
    if not 0 <= args.shift_day < args.days:
        parser.error(f"--shift-day must be in [0, --days), got {args.shift_day}")
    day0 = dt.datetime.combine(args.day0, dt.time(), dt.timezone.utc)
    rows = history_age(args.lake, day0, args.shift_day, args.days, args.history,
                       FeatureConfig().history_event_types)
    print(f"{'day':>3} {'users':>6} {'share before shift':>18} {'users >= half':>13}")
    for r in rows:
        print(f"{r['day']:>3} {r['users']:>6} {r['mean_share_before_shift'] or 0:>18.2f} "
              f"{r['users_half_or_more'] or 0:>13.2f}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    path.write_text(json.dumps({"lake": str(args.lake), "day0": args.day0.isoformat(),
                                "shift_day": args.shift_day, "history": args.history,
                                "days": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
