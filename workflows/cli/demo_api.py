"""The demo's last step: the recommendation API on the exported models, asked for
recommendations (active users, a new user), an explanation, and where a new item lands."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def _show(label: str, body: dict) -> None:
    print(f"      {label}: tier {body['tier']}, {body['latency_ms']['total']:.0f} ms "
          f"({', '.join(f'{k} {v:.0f}' for k, v in body['latency_ms'].items() if k != 'total')}"
          f"){', cold start' if body['cold_start'] else ''}")
    for item in body["items"][:5]:
        print(f"        {item['item_id']:<10} {item['category']:<14} {item['source']:<18} "
              f"score {item['score']:.3f}")


def run_api_demo(repo: Path, base: Path, events: pd.DataFrame) -> None:
    import requests

    from recsys.model_contract.retrieval_config import model_config_of
    from serving.recommendations.app import create_app
    from serving.recommendations.cold_items import new_item_embedding
    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.http_server import serve_in_thread
    from serving.recommendations.service import build_recommender, latest_manifest

    recommender = build_recommender(ServiceConfig(repo=repo, model_base_path=base))
    try:
        with serve_in_thread(create_app(recommender)) as url:
            print(f"      recommendation API at {url} (OpenAPI: {url}/docs, console: "
                  f"{url}/console)")
            print("      access: OPEN - the embedded demo on localhost runs without API keys; "
                  "`recsys api` needs access.keys_file anywhere else (docs/security.md)")
            users = events["user_id"].value_counts().index[:3].tolist()
            first = None
            for user in users:
                body = requests.post(f"{url}/v1/recommendations",
                                     json={"user_id": user, "k": 10}, timeout=30).json()
                _show(f"POST /v1/recommendations user {user}", body)
                first = first or (user, body["items"][0]["item_id"])
            category = str(recommender.index.categories[0])
            body = requests.post(f"{url}/v1/recommendations", json={
                "user_id": "someone-new", "k": 10, "context": {"device": "mobile"},
                "preferred_categories": [category]}, timeout=30).json()
            _show(f"a new user who likes {category}", body)
            user, item = first
            why = requests.get(f"{url}/v1/explain", params={"user_id": user, "item_id": item},
                               timeout=30).json()
            print(f"      GET /v1/explain user {user} item {item}: {why['message']}")
            print("        ranker feature groups: " + ", ".join(
                f"{f['feature_group']} {f['contribution']:+.2f}"
                for f in why["ranker_features"][:4]))
            manifest = latest_manifest(base, "item_tower")
            cfg = model_config_of(manifest)
            new_item = {"item_id": "new-item", "item_category": category,
                        "item_language": "en", "item_tags": [], "item_created_at_s": None}
            reference = int(pd.Timestamp(manifest["item_age_reference"]).value // 1000)
            vector, origin = new_item_embedding(recommender.index, recommender.models, cfg,
                                                new_item, reference)
            near = recommender.index.nearest(vector, 5)
            print(f"      a new item in {category}, embedded by the {origin}: nearest items "
                  + ", ".join(f"{i} ({s:.2f})" for i, s in near))
            metrics = requests.get(f"{url}/metrics", timeout=30).text
            served = [line for line in metrics.splitlines()
                      if line.startswith("recsys_requests_total")]
            print("      /metrics: " + json.dumps(served))
    finally:
        recommender.close()
        recommender.models.close()
