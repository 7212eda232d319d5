"""`recsys benchmark quality`: the offline protocol of ../shared/EVALUATION.md."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from workflows.cli.arguments import positive_int

# the benchmark's own two-tower defaults (--config overrides them): mixed negatives (uniform
# and mined from the model's index), the hardest kept, a user's own training positives never
# among its negatives; measured best on ml-latest-small (docs/retrieval.md, "Negatives")
BENCHMARK_DEFAULTS = {"model": {"num_random_negatives": 1024, "num_index_negatives": 256,
                                "num_hard_negatives": 256, "mask_user_positives": True}}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("benchmark", help="offline quality benchmarks",
                                  description="Offline quality benchmarks.")
    kinds = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    quality = kinds.add_parser(
        "quality", help="the shared offline protocol on a MovieLens directory",
        description="Run the whole offline path (import, Beam, Feast, training, ranking) on a "
                    "MovieLens 'latest'-format directory under ../shared/EVALUATION.md and "
                    "print one row per model; --out writes the same figures as JSON.")
    quality.add_argument("--movielens", required=True, type=Path, metavar="DIR")
    quality.add_argument("--out", type=Path, metavar="FILE.json")
    quality.add_argument("--workdir", type=Path, metavar="DIR",
                         help="keep the lake, features and model here (default: a temporary "
                              "directory, removed afterwards)")
    quality.add_argument("--config", type=Path, metavar="FILE.yaml",
                         help="two-tower configuration (default: the built-in one with "
                              "1,024 uniform and 256 mined negatives per batch, the 256 "
                              "hardest kept, each user's training positives masked)")
    quality.add_argument("--ranker-config", type=Path, metavar="FILE.yaml",
                         help="ranker configuration (default: the built-in one)")
    quality.add_argument("--no-ranker", action="store_true",
                         help="leave out the 'two-tower + ranker' row")
    quality.add_argument("--epochs", type=positive_int, metavar="N")
    quality.add_argument("--seed", type=int, metavar="S")
    quality.add_argument("--split", choices=("temporal", "last_one"), default="temporal",
                         help="temporal: the protocol of EVALUATION.md (each user's last 20%% "
                              "of positives held out); last_one: leave-last-one-out (each "
                              "user's last positive), full ranking as well")
    quality.add_argument("--no-progress", action="store_true")
    quality.set_defaults(func=run_quality)


def run_quality(args: argparse.Namespace) -> int:
    from recsys.errors import SourceError
    from recsys.evaluation.paired import PairedDifference, format_differences
    from recsys.evaluation.report import format_table
    from recsys.model_contract.ranker_config import load_ranker_config
    from trainer.config import load_config
    from trainer.evaluate import DEFAULT_KS
    from workflows.quality_benchmark import quality_benchmark

    if not (args.movielens / "ratings.csv").is_file():
        raise SourceError(f"{args.movielens} has no ratings.csv: --movielens must be a "
                          "MovieLens 'latest'-format directory")
    cfg = load_config(args.config, {"train": {"epochs": args.epochs, "seed": args.seed}},
                      defaults=BENCHMARK_DEFAULTS)
    ranker = None if args.no_ranker else load_ranker_config(args.ranker_config)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recsys-quality-"))
    try:
        document = quality_benchmark(args.movielens, workdir, cfg, DEFAULT_KS,
                                     progress=not args.no_progress, ranker=ranker,
                                     split=args.split)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nprotocol {document['protocol']} ({document['split']} split) on "
          f"{document['dataset']}: "
          f"{document['users']:,} users, {document['candidate_items']:,} candidate items, "
          f"{document['train_interactions']:,} train and {document['test_interactions']:,} "
          "test interactions")
    print(format_table(document["models"], DEFAULT_KS))
    print(f"\npaired differences over users (row a minus row b; * the "
          f"{document['paired_confidence']:.0%} bootstrap interval excludes 0):")
    print(format_differences([PairedDifference(**d) for d in document["paired_differences"]],
                             document["paired_confidence"]))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in document["stage_seconds"].items())
    print(f"wall time {document['wall_seconds']:.1f}s ({stages})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2))
        print(f"wrote {args.out}")
    return 0
