"""`recsys demo`: the whole system on embedded defaults, as far as it is built.

Today: simulate a small platform into a lake, build its features with Beam, register them with
Feast (DuckDB + SQLite), materialize them and read a user's online features, train the two-tower
retrieval model and the transformer ranker, export them as versioned SavedModels (ScaNN,
portable, item tower, ranker), serve them with the TF Serving-compatible model server and query
it over REST and gRPC, then run the recommendation API and ask it for recommendations and
explanations (known users, a new user, a new item), stream events and a new item through
the API to a stream worker (embedded Redis) and watch the recommendations follow, and finally
run a short A/B test and an interleaving test with simulated users and print the analysis.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.data.describe import describe
from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from workflows.cli.arguments import iso_date, positive_int
from workflows.quickstart import feature_repo

if TYPE_CHECKING:  # trainer imports TensorFlow: loaded only when the demo trains
    from trainer.config import RetrievalConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the system end to end on a small synthetic platform",
        description="Run the system end to end on embedded defaults: simulate a platform into "
                    "a lake, build features with Beam, apply and materialize them with Feast, "
                    "train and export the models, serve them, run the recommendation API and "
                    "stream events and a new item through it.")
    demo.add_argument("--workdir", type=Path, default=Path("demo-output"), metavar="DIR",
                      help="where the demo writes its lake and feature repository "
                           "(default: ./demo-output)")
    demo.add_argument("--users", type=positive_int, default=2_000, metavar="N")
    demo.add_argument("--items", type=positive_int, default=10_000, metavar="M")
    demo.add_argument("--days", type=positive_int, default=7, metavar="D")
    demo.add_argument("--end-date", type=iso_date, default=None, metavar="DATE",
                      help="the simulated history covers the D days before this UTC date "
                           "(default: today); an earlier date leaves room for a simulated "
                           "clock after it (workflows/retraining_loop.py)")
    demo.add_argument("--epochs", type=positive_int, metavar="N",
                      help="two-tower training epochs (default 3)")
    demo.add_argument("--retrieval-config", type=Path, metavar="FILE.yaml",
                      help="the two-tower model's config, as recsys train retrieval "
                           "--config takes it (sections model and train); the demo's own "
                           "settings (a history of 10 items, 3 epochs) hold where it is "
                           "silent, and --epochs over it")
    demo.add_argument("--ranker-epochs", type=positive_int, default=3, metavar="N",
                      help="ranker training epochs (default 3)")
    demo.add_argument("--experiment-users", type=positive_int, default=200, metavar="N",
                      help="simulated users of the last step's experiment (default 200)")
    demo.add_argument("--experiment-days", type=positive_int, default=2, metavar="D",
                      help="simulated days of the last step's experiment (default 2)")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from recsys.features.store import apply, in_repo, materialize
    from workflows.features_build import build_features

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    retrieval_cfg = _retrieval_config(args)  # a bad file is refused before any work
    lake_dir = args.workdir / "lake"
    cfg = SyntheticConfig(users=args.users, items=args.items, days=args.days,
                          end_date=args.end_date)
    print(f"[1/11] simulating {cfg.users:,} users, {cfg.items:,} items, {cfg.days} days "
          f"into {lake_dir}")
    report = generate(cfg, Lake(lake_dir, create=True))
    print(f"      {report.events_written:,} new events written "
          f"({report.events_received - report.events_written:,} already in the lake) "
          f"in {report.seconds:.1f}s")
    for line in describe(Lake(lake_dir)).lines():
        print(f"      {line}")

    repo = feature_repo(args.workdir)
    print(f"\n[2/11] building features with Beam into {repo / 'data'}")
    built = build_features(lake_dir, repo, "embedded")
    print(f"      {built.beam.counters.get('events_read', 0):,} events in "
          f"{built.beam.seconds:.1f}s ({built.beam.events_per_second:,.0f} events/s)")

    print(f"\n[3/11] feast apply + materialize ({repo}: DuckDB offline, SQLite online)")
    apply(repo.resolve())
    materialize(repo.resolve(), dt.datetime.now(dt.timezone.utc))

    print("\n[4/11] online features of the most active user (feature service 'ranking')")
    from feast import FeatureStore

    events = Lake(lake_dir).read("events", columns=["user_id", "item_id"]).to_pandas()
    user = events["user_id"].value_counts().index[0]
    item = events["item_id"].value_counts().index[0]
    with in_repo(repo.resolve()) as path:
        store = FeatureStore(repo_path=str(path))
        online = store.get_online_features(features=store.get_feature_service("ranking"),
                                           entity_rows=[{"user_id": user, "item_id": item}])
        values = online.to_dict()
    for name in sorted(values):
        print(f"      {name:<32} {values[name][0]}")

    model_dir, base = _train_and_export(args, repo.resolve(), retrieval_cfg)
    from workflows.cli.demo_serving import serve_and_query

    print("\n[8/11] serving the exported models over TF Serving's REST and gRPC APIs")
    serve_and_query(base, repo.resolve(), user)

    from workflows.cli.demo_api import run_api_demo

    print("\n[9/11] the recommendation API: features -> retrieval -> ranker -> rules")
    run_api_demo(repo.resolve(), base, events)

    from workflows.cli.demo_stream import run_stream_demo

    print("\n[10/11] real time: events and a new item through the API, the stream worker, "
          "the online store and the fresh-item index")
    run_stream_demo(repo.resolve(), base.resolve(), lake_dir.resolve(), user)

    from workflows.cli.demo_experiment import run_experiment_demo

    print("\n[11/11] an online experiment: simulated users, exposures, outcomes, analysis")
    run_experiment_demo(repo.resolve(), base.resolve(), args.workdir.resolve(), cfg,
                        users=args.experiment_users, days=args.experiment_days)
    print(f"\nNext: `cd {repo} && feast feature-views list`, "
          f"`recsys data describe {lake_dir}`, `tensorboard --logdir {model_dir / 'logs'}`, "
          f"`recsys export check {base / 'retrieval' / '1'}`, "
          f"`recsys model-server --port=8500 --rest_api_port=8501 --model_name=retrieval "
          f"--model_base_path={(base / 'retrieval').resolve()}`, "
          f"`recsys api --repo {repo} --model-base-path {base}` (docs at /docs), "
          f"`recsys experiment analyze ranker-vs-popular --experiments "
          f"{args.workdir / 'experiment' / 'experiments.yaml'} --outcomes "
          f"{args.workdir / 'experiment' / 'outcomes'}`, "
          f"`recsys stream-worker --repo {repo} --lake {lake_dir} --model-base-path {base}`, "
          f"then `recsys features build --lake {lake_dir} --repo {repo}` and `recsys train "
          f"retrieval --repo {repo} --model-dir {model_dir.parent / 'two_tower_2'} "
          f"--warm-start 1 --model-base-path {base}`.")
    return 0


# The query tower reads this many recent items. The demo's seven days of history give mostly
# short histories to learn from, and a tower that pools more items than it was trained on
# recommends worse as served histories grow: on day 9 of the retraining loop's control the
# true CTR is 0.074 reading 10 items against 0.057 reading 50 (docs/monitoring.md).
DEMO_HISTORY_LENGTH = 10
DEMO_EPOCHS = 3


def _retrieval_config(args: argparse.Namespace) -> RetrievalConfig:
    """The demo's two-tower config: its own settings, then --retrieval-config, then
    --epochs."""
    from trainer.config import load_config

    return load_config(args.retrieval_config, {"train": {"epochs": args.epochs}},
                       defaults={"model": {"history_length": DEMO_HISTORY_LENGTH},
                                 "train": {"epochs": DEMO_EPOCHS}})


def _train_and_export(args: argparse.Namespace, repo: Path, cfg: RetrievalConfig
                      ) -> tuple[Path, Path]:
    from trainer import workflow

    model_dir = args.workdir / "models" / "two_tower"
    shutil.rmtree(model_dir, ignore_errors=True)
    print(f"\n[5/11] training the two-tower retrieval model ({cfg.train.epochs} epochs) "
          f"into {model_dir}")
    result = workflow.train(repo, model_dir, cfg, progress=False)
    print(f"      {result.examples:,} examples, {result.examples_per_second:,.0f} examples/s, "
          f"loss per epoch " + ", ".join(f"{x:.0f}" for x in result.losses))
    from recsys.model_contract.ranker_config import RankerConfig
    from serving.recommendations.popular_lists import build_popular_lists, load_training_examples
    from trainer.ranking.workflow import train_ranking

    ranker_dir = args.workdir / "models" / "ranker"
    shutil.rmtree(ranker_dir, ignore_errors=True)
    ranker_cfg = RankerConfig(epochs=args.ranker_epochs, candidates=50)
    print(f"\n[6/11] training the transformer ranker ({ranker_cfg.epochs} epochs, lists of "
          f"{ranker_cfg.candidates} candidates) into {ranker_dir}")
    ranking = train_ranking(repo, model_dir, ranker_dir, ranker_cfg, progress=False)
    print(f"      {ranking.lists:,} lists ({ranking.positives:,} positives) in "
          f"{ranking.seconds:.0f}s, loss per epoch "
          + ", ".join(f"{x:.3f}" for x in ranking.losses))
    base = args.workdir / "models" / "serving"
    shutil.rmtree(base, ignore_errors=True)
    print(f"\n[7/11] exporting SavedModels and popular lists under {base}")
    exported = workflow.export(repo, model_dir, base, k=200, ranker_dir=ranker_dir)
    build_popular_lists(load_training_examples(repo)).save(base / "popular.json")
    for name, path in exported.paths.items():
        custom = ", ".join(exported.manifests[name]["ops"]["custom"]) or "none (stock TF Serving)"
        print(f"      {name:<20} {path}  custom ops: {custom}")
    return model_dir, base
