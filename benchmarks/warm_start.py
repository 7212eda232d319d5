"""Benchmark: incremental training on MovieLens. How close does a warm start (fine-tuning the
served version on the newer interactions) come to a full retrain, and how much faster is it?

    python benchmarks/warm_start.py [--movielens ../shared/datasets/ml-latest-small]
        [--older 0.8] [--fine-tune-epochs 3] [--workdir DIR] [--out FILE.json]

The data go through the real path once (import -> Beam, temporal split -> feast apply ->
point-in-time training set). Version 1 is the default two-tower model trained on the older
``--older`` share of the train split (by time) and exported; the rest of the train split
plays the events that arrived since. Then, on the same test split:
* ``recsys train retrieval --warm-start 1`` (as a function): fine-tune version 1 on the newer
  examples (as many older ones replayed), quality gate against version 1, export version 2;
* a full retrain of the same configuration on the whole train split, for reference.
Prints a table, writes JSON (default benchmarks/results/warm_start.json) and a bar plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_MOVIELENS = ROOT.parent / "shared" / "datasets" / "ml-latest-small"
METRICS = ("recall@10", "recall@100", "ndcg@10", "map@10")


def _evaluate(model_dir: Path, data) -> dict:
    from trainer.evaluate import evaluate_scores, two_tower_scores
    from trainer.evaluation_set import build_evaluation_set
    from trainer.model_dir import ModelDir

    es = build_evaluation_set(data)
    overall = evaluate_scores(two_tower_scores(ModelDir(model_dir).restore()[2], es), es,
                              [10, 100])["overall"]
    return {m: round(float(overall[m]), 4) for m in METRICS}


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (quality, cost) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["version 1", "+ warm start", "full retrain"][:len(rows)]
    for offset, metric in enumerate(("recall@10", "ndcg@10", "recall@100")):
        quality.bar([i + offset * 0.27 for i in range(len(rows))],
                    [r[metric] for r in rows], width=0.27, label=metric)
    quality.set_xticks([i + 0.27 for i in range(len(rows))], names, fontsize=8)
    quality.set_title("test split (EVALUATION.md protocol)")
    quality.legend(fontsize=8)
    cost.bar(names, [r["train_seconds"] for r in rows])
    cost.set_ylabel("training seconds")
    cost.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", type=Path, default=SHARED_MOVIELENS)
    parser.add_argument("--older", type=float, default=0.8,
                        help="share of the train split (by time) version 1 is trained on")
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsys-warm-start-bench"))
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "warm_start.json")
    args = parser.parse_args()
    if not 0 < args.older < 1:
        parser.error(f"--older must be in (0, 1), got {args.older}")
    if not args.movielens.is_dir():
        parser.error(f"--movielens {args.movielens} is not a directory")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from train_retrieval import _prepare
    from trainer import workflow
    from trainer.config import RetrievalConfig
    from trainer.quality_gate import QualityGate
    from trainer.train import train_retrieval
    from trainer.training_data import RetrievalData, timestamps_us
    from trainer.warm_start import warm_start_retrieval

    data = _prepare(args.movielens, args.workdir)
    repo = (args.workdir / "feature_repo").resolve()
    for name in ("v1", "warm", "full", "serving"):
        shutil.rmtree(args.workdir / name, ignore_errors=True)
    ts = timestamps_us(data.train)
    cutoff = int(pd.Series(ts).quantile(args.older))
    older = RetrievalData(train=data.train[ts <= cutoff].reset_index(drop=True),
                          test=data.test, catalogue=data.catalogue)
    cfg = RetrievalConfig()
    rows = []

    started = time.perf_counter()
    train_retrieval(older, cfg, args.workdir / "v1", progress=False)
    rows.append({"model": f"version 1 (older {args.older:.0%})", "examples": len(older.train),
                 "train_seconds": round(time.perf_counter() - started, 1),
                 **_evaluate(args.workdir / "v1", data)})
    base = args.workdir / "serving"
    workflow.export(repo, args.workdir / "v1", base)

    started = time.perf_counter()
    result = warm_start_retrieval(repo, base, 1, args.workdir / "warm",
                                  {"epochs": args.fine_tune_epochs}, QualityGate(),
                                  progress=False)
    warm_seconds = time.perf_counter() - started
    history = json.loads((args.workdir / "warm" / "history.json").read_text())
    rows.append({"model": f"version 1 + warm start ({args.fine_tune_epochs} epochs)",
                 "examples": result.new_examples + result.replayed,
                 "train_seconds": round(sum(history["epoch_seconds"]), 1),
                 **_evaluate(args.workdir / "warm", data)})

    started = time.perf_counter()
    train_retrieval(data, cfg, args.workdir / "full", progress=False)
    rows.append({"model": "full retrain (all train)", "examples": len(data.train),
                 "train_seconds": round(time.perf_counter() - started, 1),
                 **_evaluate(args.workdir / "full", data)})

    print(f"\nincremental training on {args.movielens.name}: version 1 on the older "
          f"{args.older:.0%} of the train split, {result.new_examples:,} newer examples")
    print(f"{'model':<38} {'examples':>9} {'train s':>8} " + " ".join(f"{m:>10}"
                                                                   for m in METRICS))
    for r in rows:
        print(f"{r['model']:<38} {r['examples']:>9,} {r['train_seconds']:>8.1f} "
              + " ".join(f"{r[m]:>10.4f}" for m in METRICS))
    print(result.decision.summary() + f"; exported version: {result.exported_version}; "
          f"whole warm start (data, fine-tune, gate, export) {warm_seconds:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "dataset": str(args.movielens), "older_share": args.older,
        "new_examples": result.new_examples, "replayed": result.replayed,
        "gate": {"metric": result.decision.metric, "current": result.decision.current,
                 "candidate": result.decision.candidate, "passed": result.decision.passed},
        "exported_version": result.exported_version,
        "warm_start_wall_seconds": round(warm_seconds, 1), "rows": rows}, indent=2))
    _plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
