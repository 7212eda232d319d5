"""Benchmark: two-tower training throughput (examples/second) and peak memory.

    python benchmarks/train_retrieval.py [--movielens ../shared/datasets/ml-latest-small]
        [--batch-sizes 256 1024 4096] [--epochs 3] [--workdir DIR] [--out FILE.json]

The training data goes through the real path once (MovieLens import -> Beam with the temporal
split -> feast apply -> point-in-time training set), then the default model configuration is
trained for ``--epochs`` epochs per batch size (strategy ``default``) and once with
``--strategy mirrored`` at 1024. Steady-state examples/second is measured over the epochs
after the first (the first includes tracing). Prints a table, writes JSON (default
benchmarks/results/train_retrieval.json) and a plot of loss per epoch per run.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = ROOT.parent / "shared" / "datasets" / "ml-latest-small"


def _prepare(movielens: Path, workdir: Path):
    from recsys.data.lake import Lake
    from recsys.data.movielens import import_movielens
    from recsys.features.store import apply
    from trainer.training_data import load_retrieval_data
    from workflows.features_build import build_features

    repo = workdir / "feature_repo"
    if not (repo / "data" / "registry.db").exists():
        import_movielens(movielens, Lake(workdir / "lake", create=True))
        shutil.copytree(ROOT / "feature_repo", repo, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("data", "__pycache__", "production"))
        build_features(workdir / "lake", repo, "embedded",
                       ["--split", "temporal", "--direct_running_mode", "multi_processing",
                        "--direct_num_workers", "2"])
        apply(repo.resolve())
    return load_retrieval_data(repo.resolve())


def _plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        per_example = [x / run["examples"] for x in run["losses"]]
        ax.plot(range(1, len(per_example) + 1), per_example, marker="o", label=run["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss per example")
    ax.set_title("two-tower training on ml-latest-small (train split)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", type=Path, default=SHARED_MOVIELENS)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "train_retrieval.json")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch includes tracing)")
    if not (args.movielens / "ratings.csv").is_file():
        parser.error(f"{args.movielens} has no ratings.csv")

    import recsys  # noqa: F401  (before tensorflow: tf.keras is Keras 2)
    from trainer.config import RetrievalConfig, TrainConfig
    from trainer.train import train_retrieval

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        data = _prepare(args.movielens, workdir)
        settings = [(f"batch {b}", b, "default") for b in args.batch_sizes]
        settings.append(("batch 1024, mirrored", 1024, "mirrored"))
        for name, batch, strategy in settings:
            model_dir = workdir / "runs" / name.replace(" ", "_").replace(",", "")
            shutil.rmtree(model_dir, ignore_errors=True)
            cfg = RetrievalConfig(train=TrainConfig(epochs=args.epochs, batch_size=batch,
                                                    strategy=strategy))
            start = time.perf_counter()
            result = train_retrieval(data, cfg, model_dir, progress=False)
            wall = time.perf_counter() - start
            history = json.loads((model_dir / "history.json").read_text())
            steady = history["epoch_seconds"][1:]
            rate = result.examples * len(steady) / sum(steady)
            runs.append({"name": name, "batch_size": batch, "strategy": strategy,
                         "examples": result.examples, "epochs": args.epochs,
                         "first_epoch_s": history["epoch_seconds"][0],
                         "steady_examples_per_s": rate, "wall_s": wall,
                         "losses": result.losses,
                         "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            print(f"{name}: {rate:,.0f} examples/s steady, {wall:.1f}s", flush=True)

    print(f"\n{'run':<24}{'examples':>10}{'1st epoch s':>13}{'examples/s':>12}"
          f"{'wall s':>8}{'peak RSS MiB':>14}")
    for r in runs:
        print(f"{r['name']:<24}{r['examples']:>10,}{r['first_epoch_s']:>13.1f}"
              f"{r['steady_examples_per_s']:>12,.0f}{r['wall_s']:>8.1f}{r['peak_rss_mb']:>14,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "dataset": str(args.movielens)}, indent=2))
    print(f"wrote {args.out}")
    _plot(runs, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
