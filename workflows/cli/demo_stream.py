"""The demo's real-time step: the recommendation API with the event stream (the embedded
Redis) and a stream worker; a user clicks through items of a category new to them and their
recommendations change; a brand-new item is posted to the catalogue and is recommended."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd

WAIT_S = 60.0


def _recommend(url: str, user: str, k: int = 10, **extra) -> dict:
    import requests

    response = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": k,
                                                                  **extra}, timeout=30)
    response.raise_for_status()
    return response.json()


def _categories(body: dict) -> str:
    counts = pd.Series([i["category"] for i in body["items"]]).value_counts()
    return ", ".join(f"{c} x{n}" for c, n in counts.items())


def _until(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.25)
    raise RuntimeError(f"the demo waited {WAIT_S:.0f} s for {what}")


def _pick_new_category(catalogue: pd.DataFrame, body: dict) -> str:
    shown = {i["category"] for i in body["items"]}
    counts = catalogue["item_category"].value_counts()
    return next(c for c in counts.index if c not in shown)


def run_stream_demo(repo: Path, base: Path, lake: Path, user: str) -> None:
    import shutil

    import requests

    from recsys.features.catalogue import read_catalogue
    from recsys.stream.config import StreamConfig
    from recsys.stream.redis_connection import stop_embedded
    from serving.recommendations.app import create_app
    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.http_server import serve_in_thread
    from serving.recommendations.service import build_recommender
    from stream_worker.runner import WorkerSpec, build_worker
    from workflows.cli.api_commands import stream_parts

    cfg = StreamConfig(block_ms=200).for_repo(repo)
    stop_embedded(cfg.embedded_dir)
    shutil.rmtree(cfg.embedded_dir, ignore_errors=True)  # each demo run starts a new stream
    producer, fresh = stream_parts(None, None, repo)
    worker = build_worker(WorkerSpec(cfg, repo, lake, "demo-worker", base))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    recommender = build_recommender(ServiceConfig(repo=repo, model_base_path=base),
                                    fresh=fresh)
    catalogue = read_catalogue(repo / "data")
    try:
        with serve_in_thread(create_app(recommender, producer)) as url:
            print(f"      stream: embedded Redis under {cfg.embedded_dir}, one worker; "
                  f"POST {url}/v1/events and /v1/items")
            before = _recommend(url, user)
            print(f"      user {user} before: {_categories(before)}")
            category = _pick_new_category(catalogue, before)
            picks = catalogue[catalogue["item_category"] == category]["item_id"].head(4)
            clicks = [{"event_id": f"demo-{user}-{k}-{time.time_ns()}", "user_id": user,
                       "item_id": item, "event_type": kind, "dwell_time_s": 40.0,
                       "watch_time_s": 300.0}
                      for k, item in enumerate(picks) for kind in ("click", "watch")]
            for event in clicks:  # the API fills in the time; clicks carry dwell only
                event.pop("watch_time_s" if event["event_type"] == "click" else
                          "dwell_time_s")
            answer = requests.post(f"{url}/v1/events", json={"events": clicks},
                                   timeout=30).json()
            print(f"      POST /v1/events: {answer['accepted']} accepted ({len(picks)} items "
                  f"in {category}, a click and a watch each)")
            started = time.monotonic()
            shown = [i["item_id"] for i in before["items"]]
            after = _until(lambda: (lambda b: b if [i["item_id"] for i in b["items"]] != shown
                                    else None)(_recommend(url, user)),
                           "the clicks to change the recommendations")
            print(f"      user {user} after {time.monotonic() - started:.1f} s: "
                  f"{_categories(after)}")
            changed = len({i["item_id"] for i in after["items"]}
                          - {i["item_id"] for i in before["items"]})
            print(f"      {changed} of {len(after['items'])} recommendations changed")
            _new_item(url, user, category, catalogue)
    finally:
        stop.set()
        thread.join(timeout=30)
        recommender.close()
        recommender.models.close()
        stop_embedded(cfg.embedded_dir)


def _new_item(url: str, user: str, category: str, catalogue: pd.DataFrame) -> None:
    import requests

    liked = catalogue[catalogue["item_category"] == category].head(4)
    tags = sorted({t for tags in liked["item_tags"] for t in (tags if tags is not None
                                                              else [])})[:3]
    item_id = f"brand-new-{time.time_ns() // 1_000_000}"
    item = {"item_id": item_id, "category": category, "language": "en", "tags": tags,
            "created_at": pd.Timestamp.now(tz="UTC").isoformat()}
    answer = requests.post(f"{url}/v1/items", json=item, timeout=30).json()
    print(f"      POST /v1/items {item_id} ({category}, tags {tags}): "
          f"{answer['results'][0]['status']}")
    started = time.monotonic()

    def recommended():
        body = _recommend(url, user)
        ranks = [n for n, i in enumerate(body["items"], 1) if i["item_id"] == item_id]
        return (ranks[0], body) if ranks else None

    rank, body = _until(recommended, f"{item_id} to be recommended")
    picked = body["items"][rank - 1]
    print(f"      {item_id} recommended to user {user} after "
          f"{time.monotonic() - started:.1f} s: rank {rank} of {len(body['items'])} "
          f"(source {picked['source']}; {', '.join(picked['reasons'])})")


__all__ = ["run_stream_demo"]
