"""From any lake to served recommendations: the demo's steps, made reusable.

`recsys quickstart --lake LAKE` runs, on the embedded profile: Beam features from the lake,
Feast apply and materialize, the two-tower model and the ranker trained with sizes chosen
from the data, the export (ScaNN, portable, item tower, ranker) and the popular lists; then
starts the recommendation API and a stream worker.

Guarantees: the lake is only read; everything written goes under the work directory (a
copy of the checkout's feature repository, the models); the sizes are a pure function of the
lake's counts (:func:`choose_sizes`), printed with the reason for each.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow.compute as pc

from recsys.data.lake import Lake
from recsys.errors import ConfigError, SourceError

CHECKOUT_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
EXAMPLE_PASSES = 300_000  # examples x epochs the two-tower model is trained for, at most 8 epochs
MIN_EVENTS = 100


@dataclass(frozen=True)
class Sizes:
    """The training sizes for a lake, and the counts they were chosen from."""

    events: int
    users: int
    items: int
    history_length: int
    epochs: int
    batch_size: int
    ranker_epochs: int
    ranker_candidates: int

    def lines(self) -> list[str]:
        return [
            f"{self.events:,} events of {self.users:,} users on {self.items:,} items",
            f"history length {self.history_length} (the 90th percentile of events per user, "
            "within 5..50)",
            f"two-tower: {self.epochs} epoch(s) (about {EXAMPLE_PASSES:,} examples seen, "
            f"1..8 epochs), batch {self.batch_size}",
            f"ranker: {self.ranker_epochs} epoch(s), lists of {self.ranker_candidates} "
            "candidates",
        ]


def choose_sizes(events: int, users: int, items: int, p90_events_per_user: float,
                 epochs: int | None = None, ranker_epochs: int | None = None) -> Sizes:
    """Sizes from a lake's counts (see :meth:`Sizes.lines` for the rules); ``epochs`` and
    ``ranker_epochs`` win when given."""
    history = int(min(50, max(5, round(p90_events_per_user))))
    chosen_epochs = epochs or int(min(8, max(1, round(EXAMPLE_PASSES / max(events, 1)))))
    batch = 256 if events < 20_000 else 1024
    candidates = int(min(50, max(10, items // 20)))
    return Sizes(events, users, items, history, chosen_epochs, batch, ranker_epochs or 2,
                 candidates)


def lake_sizes(lake: Lake, epochs: int | None = None,
               ranker_epochs: int | None = None) -> Sizes:
    """:func:`choose_sizes` on the lake's events (read one column at a time)."""
    users = lake.events_dataset().to_table(columns=["user_id"]).column(0)
    if len(users) < MIN_EVENTS:
        raise SourceError(f"{lake.root} holds {len(users)} events; the quickstart needs at "
                          f"least {MIN_EVENTS} to train on (import more with `recsys data "
                          "import`)")
    per_user = pc.value_counts(users).field("counts").to_numpy()
    items = pc.count_distinct(lake.events_dataset().to_table(columns=["item_id"]).column(0))
    return choose_sizes(len(users), len(per_user), items.as_py(),
                        float(np.percentile(per_user, 90)), epochs, ranker_epochs)


def feature_repo(workdir: Path) -> Path:
    """A copy of the checkout's feature repository under ``workdir`` (definitions
    refreshed, data kept)."""
    if not (CHECKOUT_REPO / "feature_store.yaml").exists():
        raise ConfigError(f"{CHECKOUT_REPO} not found: run it from a recsys checkout")
    repo = workdir / "feature_repo"
    shutil.copytree(CHECKOUT_REPO, repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    return repo


@dataclass
class Quickstart:
    """Where a quickstart put things, and a user to ask for."""

    lake: Path
    repo: Path
    base: Path
    model_dir: Path
    example_user: str


def run_quickstart(lake_dir: Path, workdir: Path, sizes: Sizes, ranker: bool = True,
                   beam_args: Sequence[str] = (), say: Callable[[str], None] = print
                   ) -> Quickstart:
    """The batch steps, numbered as printed; see the module docstring. ``beam_args`` go to
    the feature build (e.g. ``--positive_min_dwell_s 0``)."""
    from recsys.features.store import apply, materialize
    from recsys.model_contract.ranker_config import RankerConfig
    from serving.recommendations.popular_lists import build_popular_lists, load_training_examples
    from trainer import workflow
    from trainer.config import load_config
    from trainer.ranking.workflow import train_ranking
    from workflows.features_build import build_features

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    steps = 6 if ranker else 5
    lake = Lake(lake_dir)
    repo = feature_repo(workdir).resolve()
    say(f"[1/{steps}] building features with Beam from {lake_dir} into {repo / 'data'}")
    built = build_features(lake.root, repo, "embedded", beam_args)
    say(f"      {built.beam.counters.get('events_read', 0):,} events in "
        f"{built.beam.seconds:.1f}s")
    say(f"[2/{steps}] feast apply + materialize ({repo}: DuckDB offline, SQLite online)")
    apply(repo)
    materialize(repo, dt.datetime.now(dt.timezone.utc))

    model_dir = workdir / "models" / "two_tower"
    shutil.rmtree(model_dir, ignore_errors=True)
    cfg = load_config(None, defaults={
        "model": {"history_length": sizes.history_length},
        "train": {"epochs": sizes.epochs, "batch_size": sizes.batch_size}})
    say(f"[3/{steps}] training the two-tower model ({sizes.epochs} epoch(s)) into {model_dir}")
    trained = workflow.train(repo, model_dir, cfg, progress=False)
    say(f"      {trained.examples:,} examples, loss per epoch "
        + ", ".join(f"{x:.0f}" for x in trained.losses))
    ranker_dir = None
    if ranker:
        ranker_dir = workdir / "models" / "ranker"
        shutil.rmtree(ranker_dir, ignore_errors=True)
        ranker_cfg = RankerConfig(epochs=sizes.ranker_epochs,
                                  candidates=sizes.ranker_candidates)
        say(f"[4/{steps}] training the ranker ({ranker_cfg.epochs} epoch(s), lists of "
            f"{ranker_cfg.candidates}) into {ranker_dir}")
        ranking = train_ranking(repo, model_dir, ranker_dir, ranker_cfg, progress=False)
        say(f"      {ranking.lists:,} lists ({ranking.positives:,} positives) in "
            f"{ranking.seconds:.0f}s")
    base = (workdir / "models" / "serving").resolve()
    shutil.rmtree(base, ignore_errors=True)
    say(f"[{steps - 1}/{steps}] exporting the SavedModels under {base}")
    exported = workflow.export(repo, model_dir, base, k=200, ranker_dir=ranker_dir)
    for name, path in exported.paths.items():
        say(f"      {name:<20} {path}")
    say(f"[{steps}/{steps}] popular lists: {base / 'popular.json'}")
    build_popular_lists(load_training_examples(repo)).save(base / "popular.json")
    events = lake.events_dataset().to_table(columns=["user_id"]).column(0)
    counts = pc.value_counts(events)
    top = counts.field("values")[int(np.argmax(counts.field("counts").to_numpy()))].as_py()
    return Quickstart(lake.root, repo, base, model_dir.resolve(), top)


def query_line(url: str, user: str) -> str:
    """The command that asks the served API for ``user``'s recommendations (the body quoted
    for the shell, whatever the id holds)."""
    import json
    import shlex

    body = shlex.quote(json.dumps({"user_id": user, "k": 10}))
    return (f"curl -s -X POST {url}/v1/recommendations -H 'content-type: application/json' "
            f"-d {body}")


__all__ = ["Sizes", "choose_sizes", "lake_sizes", "run_quickstart", "Quickstart",
           "query_line", "feature_repo"]
