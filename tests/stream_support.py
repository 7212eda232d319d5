"""Helpers of the stream tests: a Feast repository with a catalogue, a lake, a real Redis (the
embedded one, a private server per test) and workers on them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from feast_support import embedded_repo

from recsys.data.lake import Lake
from recsys.features.store import apply, materialize, open_store
from recsys.features.tables import ITEM_CATALOGUE
from recsys.stream.config import StreamConfig
from recsys.stream.redis_connection import connect, stop_embedded
from stream_worker.consumer_group import ConsumerGroup
from stream_worker.sinks import LakeSink, OnlineFeatureSink
from stream_worker.state_store import StreamState
from stream_worker.worker import StreamWorker

CATEGORIES = ("news", "sports", "music", "film")
CRASHING_WORKER = Path(__file__).with_name("stream_crashing_worker.py")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def catalogue_table(n_items: int) -> pa.Table:
    since = _now() - dt.timedelta(days=30)
    return pa.Table.from_pylist(
        [{"item_id": f"i{k}", "event_timestamp": since, "created_timestamp": since,
          "item_category": CATEGORIES[k % len(CATEGORIES)]} for k in range(n_items)],
        schema=ITEM_CATALOGUE.arrow_schema())


@dataclass
class StreamSetup:
    root: Path
    repo: Path
    lake: Path
    cfg: StreamConfig
    client: object = field(repr=False)

    def worker(self, name: str, **options) -> StreamWorker:
        group = ConsumerGroup(self.client, self.cfg, name)
        group.ensure()
        return StreamWorker(group, StreamState(self.client, self.cfg),
                            OnlineFeatureSink(self.repo), LakeSink(self.lake, f"stream:{name}"),
                            **options)

    def pending(self) -> int:
        return int(self.client.xpending(self.cfg.stream, self.cfg.group)["pending"])

    def dead_letters(self) -> list[dict]:
        return [{k.decode(): v.decode() for k, v in fields.items()}
                for _, fields in self.client.xrange(self.cfg.dead_letter_stream)]

    def lake_event_ids(self) -> list[str]:
        return Lake(self.lake).read("events", ["event_id"]).column("event_id").to_pylist()

    def sessions(self, user_ids) -> dict[str, list]:
        store = open_store(self.repo)
        return store.get_online_features(
            ["user_session:session_recent_item_ids", "user_session:session_length"],
            [{"user_id": u} for u in user_ids]).to_dict()

    def counters(self, item_ids) -> dict[str, list]:
        store = open_store(self.repo)
        return store.get_online_features(
            ["item_stream:item_stream_impressions_24h", "item_stream:item_stream_clicks_24h",
             "item_stream:item_stream_engagements_24h"],
            [{"item_id": i} for i in item_ids]).to_dict()

    def crashing_worker(self, name: str) -> subprocess.CompletedProcess:
        """A worker in its own process that dies (os._exit) after its first batch's effects,
        before the ack."""
        spec = {"repo": str(self.repo), "lake": str(self.lake), "consumer": name,
                "redis_url": self.cfg.redis_url, "embedded_dir": str(self.cfg.embedded_dir),
                "stream": self.cfg.stream, "batch_size": self.cfg.batch_size}
        return subprocess.run([sys.executable, str(CRASHING_WORKER), json.dumps(spec)],
                              capture_output=True, text=True, timeout=240)

    def close(self) -> None:
        self.client.close()
        stop_embedded(self.cfg.embedded_dir)


def stream_setup(root: Path, n_items: int = 20, **cfg) -> StreamSetup:
    repo = embedded_repo(root, {"item_catalogue": catalogue_table(n_items)})
    apply(repo)
    materialize(repo, end=_now(), start=_now() - dt.timedelta(days=60))
    lake = root / "lake"
    Lake(lake, create=True)
    config = StreamConfig(**{"embedded_dir": root / "redis", "block_ms": 50, **cfg})
    return StreamSetup(root, repo, lake, config, connect(config))


def events(n: int, users: int, items: int, start: dt.datetime | None = None,
           prefix: str = "e") -> list[dict]:
    """``n`` valid events, one second apart, cycling through users, items and types."""
    start = start or _now() - dt.timedelta(hours=1)
    types = ("impression", "click", "impression", "watch", "like")
    out = []
    for k in range(n):
        record = {"event_id": f"{prefix}{k}", "user_id": f"u{k % users}",
                  "item_id": f"i{(k * 7) % items}", "event_type": types[k % len(types)],
                  "timestamp": (start + dt.timedelta(seconds=k)).isoformat()}
        if record["event_type"] == "click":
            record["dwell_time_s"] = 15.0
        if record["event_type"] == "watch":
            record["watch_time_s"] = 40.0
        out.append(record)
    return out


def drain(setup: StreamSetup, workers, timeout_s: float = 120.0) -> None:
    """Step ``workers`` in turn until the group has delivered every entry of the stream and
    none is pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        for worker in workers:
            worker.step()
        info = setup.client.xinfo_groups(setup.cfg.stream)[0]
        last = setup.client.xinfo_stream(setup.cfg.stream)["last-generated-id"]
        if info["pending"] == 0 and info["last-delivered-id"] == last:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"workers did not drain the stream: {info}")


def expected_counts(records: list[dict]) -> dict[str, tuple[int, int, int]]:
    """Per item: (impressions, clicks, engagements), the oracle for the counters."""
    out: dict[str, list[int]] = {}
    for r in records:
        c = out.setdefault(r["item_id"], [0, 0, 0])
        c[0] += r["event_type"] == "impression"
        c[1] += r["event_type"] == "click"
        c[2] += r["event_type"] in ("click", "watch", "like", "share", "rating")
    return {k: tuple(v) for k, v in out.items()}
