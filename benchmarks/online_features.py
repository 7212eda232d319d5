"""Benchmark: Feast online reads, SQLite (embedded) vs Redis (production), 1 and 100 entities.

    python benchmarks/online_features.py [--users 5000 --requests 500]

Writes user feature rows for --users users into a temporary copy of each profile, materializes
them, then times ``get_online_features`` for the ``user_features`` view. Prints a table, writes
JSON (default benchmarks/results/online_features.json) and a latency plot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _rows(users: int) -> pa.Table:
    from recsys.features.tables import USER_FEATURES

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    rows = [{"user_id": f"u{i}", "event_timestamp": now, "created_timestamp": now,
             "user_engagements_7d": i, "user_top_categories_30d": ["news", "music"],
             "user_ctr_30d": 0.1} for i in range(users)]
    return pa.Table.from_pylist(rows, schema=USER_FEATURES.arrow_schema())


def _time_reads(store, users: int, batch: int, requests: int) -> np.ndarray:
    features = ["user_features:user_engagements_7d", "user_features:user_top_categories_30d",
                "user_features:user_ctr_30d"]
    rng = random.Random(0)
    for _ in range(20):  # warm-up
        store.get_online_features(features, [{"user_id": "u0"}])
    latencies = []
    for _ in range(requests):
        rows = [{"user_id": f"u{rng.randrange(users)}"} for _ in range(batch)]
        start = time.perf_counter()
        store.get_online_features(features, rows).to_dict()
        latencies.append((time.perf_counter() - start) * 1000)
    return np.array(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "online_features.json")
    args = parser.parse_args()

    from feast import FeatureStore

    from feast_support import drop_schema, embedded_repo, production_repo
    from recsys.features.store import apply, in_repo, materialize

    results, samples = [], {}
    end = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        for profile in ("sqlite", "redis"):
            work = Path(tmp) / profile
            work.mkdir()
            schema = None
            if profile == "sqlite":
                repo = embedded_repo(work, {"user_features": _rows(args.users)})
            else:
                repo, schema = production_repo(work, {"user_features": _rows(args.users)})
            try:
                apply(repo)
                materialize(repo, end, start=end - dt.timedelta(days=1))
                with in_repo(repo):
                    store = FeatureStore(repo_path=str(repo))
                    for batch in (1, 100):
                        lat = _time_reads(store, args.users, batch, args.requests)
                        samples[f"{profile} x{batch}"] = lat
                        results.append({"store": profile, "entities": batch,
                                        "requests": args.requests,
                                        "p50_ms": float(np.percentile(lat, 50)),
                                        "p99_ms": float(np.percentile(lat, 99)),
                                        "mean_ms": float(lat.mean())})
                    if profile == "redis":
                        store.teardown()
            finally:
                if schema:
                    drop_schema(schema)
    print(f"{'store':<8}{'entities':>10}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for r in results:
        print(f"{r['store']:<8}{r['entities']:>10}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}"
              f"{r['mean_ms']:>10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "online_features", "users": args.users,
                                    "results": results}, indent=2))
    print(f"wrote {args.out}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.boxplot(list(samples.values()), tick_labels=list(samples), showfliers=False)
        ax.set_ylabel("latency (ms)")
        ax.set_title("Feast get_online_features")
        plot = args.out.with_suffix(".png")
        fig.savefig(plot, dpi=120, bbox_inches="tight")
        print(f"wrote {plot}")
    except ImportError:
        print("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
