"""Benchmark: retrieval index query latency and recall@10, TFRS ScaNN vs brute force.

    python benchmarks/retrieval_index.py [--sizes 10000 100000 1000000 --queries 1000]
        [--model-dir DIR] [--workdir DIR] [--intra-op-threads 1 --inter-op-threads 1]

What it measures, for each catalogue size:

* the TFRS ``ScaNN`` layer with the project's defaults (``ScannConfig().layer_arguments(n,
  k=10)``) and the TFRS ``BruteForce`` layer, both without a query model, indexing item
  embeddings with their item ids, and called through a ``tf.function`` with a [None, dim]
  signature as the exported ``retrieval`` signature calls them;
* index build time (``index()``), RSS after the build, per-query latency (batch of 1, p50/p99
  over the queries after a warm-up), batched throughput (batches of 256);
* recall@10 against an exact NumPy top-10, tie-aware: a returned item is a hit when its exact
  score is >= the exact 10th best score - 1e-6 (unseen items can share embeddings).

Where the data comes from: a small synthetic platform goes through the real project path
(generator -> lake -> Beam features -> feast apply -> ``trainer.workflow.train``), unless
``--model-dir`` gives a trained model. The catalogue is the synthetic generator's item
population for ``max(--sizes)`` items (``make_items``, no events simulated), with the small
platform's seed, window and end date, embedded by the trained candidate tower at the time of the
latest training example (most ids are unseen, so they use the out-of-vocabulary row plus their
content); smaller sizes use the first n items. Queries are training examples of the small
platform (Feast point-in-time features) through the query tower.

TF intra-/inter-op threads are pinned (ENGINEERING.md section 2) for the whole process, so the
training, embedding and every timing run with them; ScaNN's batched search uses its own thread
pool. Prints a table, writes JSON (default benchmarks/results/retrieval_index.json) and a
latency plot next to it (.png) when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from small_platform import build_platform

ROOT = Path(__file__).resolve().parents[1]
K = 10
BATCH = 256
WARMUP = 20
TIE_TOLERANCE = 1e-6


def _rss_mb() -> float:
    """Resident set size of this process now (MiB); peak RSS where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(repo: Path, model_dir: Path, epochs: int, data):
    """Train the two-tower model into ``model_dir`` unless it already has a checkpoint."""
    from small_platform import train_once

    from trainer.model_dir import ModelDir

    train_once(repo, model_dir, epochs, data)
    directory = ModelDir(model_dir)
    cfg, vocab, model = directory.restore()
    return cfg, vocab, model, directory.data_end_us()


def _catalogue(synthetic, n: int):
    """``n`` items of the synthetic population as catalogue rows (no events simulated)."""
    import dataclasses

    from recsys.data.synthetic.population import make_items

    cfg = dataclasses.replace(synthetic, items=n)
    # The generator's own stream for items (SyntheticPlatform uses [seed, 0, 1]).
    items = make_items(cfg, np.random.default_rng([cfg.seed, 0, 1])).to_arrow()
    created = items.column("created_at").cast("int64").to_numpy() // 1_000_000
    frame = items.select(["item_id", "category", "language", "tags"]).to_pandas()
    frame.columns = ["item_id", "item_category", "item_language", "item_tags"]
    frame["item_created_at_s"] = created
    return frame


def _embed_items(model, frame, reference_us: int) -> tuple[np.ndarray, np.ndarray]:
    from recsys.model_contract.arrays import to_arrays, with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs
    from trainer.evaluate import embed

    arrays = to_arrays(with_item_age(frame, reference_us), candidate_inputs(model.cfg),
                       "the synthetic catalogue")
    return embed(model.candidate_tower, arrays, batch_size=8192), arrays["item_id"]


def _queries(model, train, n: int, seed: int) -> np.ndarray:
    from recsys.model_contract.arrays import to_arrays
    from recsys.model_contract.feature_spec import query_inputs
    from trainer.evaluate import embed

    rows = np.random.default_rng(seed).choice(len(train), size=min(n, len(train)),
                                              replace=False)
    frame = train.iloc[np.sort(rows)].reset_index(drop=True)
    return embed(model.query_tower, to_arrays(frame, query_inputs(model.cfg), "train examples"))


def _exact_kth(queries: np.ndarray, items: np.ndarray, chunk: int = 64) -> np.ndarray:
    """The exact K-th best score of every query (NumPy, chunked to bound memory)."""
    kth = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ items.T
        kth[start:start + chunk] = np.partition(scores, -K, axis=1)[:, -K]
    return kth


def _recall(ids: np.ndarray, row_of: dict, queries: np.ndarray, items: np.ndarray,
            kth: np.ndarray) -> float:
    """Tie-aware recall@K of returned ``ids`` [queries, K] against the exact top-K."""
    rows = np.array([[row_of[i] for i in query_ids] for query_ids in ids])
    exact = np.einsum("qd,qkd->qk", queries, items[rows])
    hits = (exact >= kth[:, None] - TIE_TOLERANCE).sum(axis=1)
    return float(np.mean(np.minimum(hits, K) / K))


def _measure(fn, queries: np.ndarray, min_seconds: float = 2.0) -> dict:
    """Latency of single queries, throughput of batches, and the batched results' ids."""
    import tensorflow as tf

    singles = [tf.constant(queries[i:i + 1]) for i in range(len(queries))]
    batches = [tf.constant(queries[i:i + BATCH]) for i in range(0, len(queries), BATCH)]
    for x in singles[:WARMUP]:
        fn(x)[1].numpy()
    fn(batches[0])[1].numpy()
    latencies = np.empty(len(singles))
    for i, x in enumerate(singles):
        start = time.perf_counter()
        fn(x)[1].numpy()
        latencies[i] = (time.perf_counter() - start) * 1000
    done, passes, start, cpu = 0, 0, time.perf_counter(), time.process_time()
    ids = []
    while passes == 0 or (time.perf_counter() - start < min_seconds and passes < 20):
        for x in batches:
            out = fn(x)[1].numpy()
            if passes == 0:
                ids.append(out)
            done += len(out)
        passes += 1
    wall = time.perf_counter() - start
    # CPU seconds per wall second: how many cores the batched calls kept busy.
    return {"latencies": latencies, "qps": done / wall,
            "cores": (time.process_time() - cpu) / wall, "ids": np.concatenate(ids)}


def _bench_size(n: int, items: np.ndarray, item_ids: np.ndarray, queries: np.ndarray,
                row_of: dict, scann_cfg, samples: dict,
                multipliers: tuple[int, ...] = (1,)) -> list[dict]:
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    subset = items[:n]
    kth = _exact_kth(queries, subset)
    embeddings, identifiers = tf.constant(subset), tf.constant(item_ids[:n])
    base_args = scann_cfg.layer_arguments(n, k=K)
    variants = {}
    for m in multipliers:  # x m leaves and re-scored candidates: the export's widening
        args = {**base_args,
                "num_leaves_to_search": min(base_args["num_leaves"],
                                            m * base_args["num_leaves_to_search"]),
                "num_reordering_candidates": min(n, m * base_args["num_reordering_candidates"])}
        variants["scann" if m == 1 else f"scann x{m}"] = args
    makers = {name: (lambda args=args: tfrs.layers.factorized_top_k.ScaNN(**args))
              for name, args in variants.items()}
    makers["brute_force"] = lambda: tfrs.layers.factorized_top_k.BruteForce(k=K)
    rows = []
    for name, make in makers.items():
        gc.collect()
        before = _rss_mb()
        start = time.perf_counter()
        layer = make()
        layer.index(embeddings, identifiers)
        build_s = time.perf_counter() - start
        rss = _rss_mb()
        fn = tf.function(lambda q, layer=layer: layer(q, k=K),
                         input_signature=[tf.TensorSpec([None, items.shape[1]], tf.float32)])
        m = _measure(fn, queries)
        lat = m["latencies"]
        samples[(n, name)] = lat
        row = {"size": n, "index": name, "build_s": build_s,
               "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
               "mean_ms": float(lat.mean()), "queries_per_s_batched": m["qps"],
               "batched_cpu_per_wall": m["cores"],
               "recall_at_10": _recall(m["ids"], row_of, queries, subset, kth),
               "rss_mb_after_build": rss, "rss_mb_build_delta": rss - before}
        if name in variants:
            row["scann_arguments"] = variants[name]
        rows.append(row)
        print(f"{n:>10,} {name:<12} build {build_s:7.2f}s  p50 {row['p50_ms']:8.3f} ms  "
              f"p99 {row['p99_ms']:8.3f} ms  {m['qps']:10,.0f} q/s  "
              f"recall@10 {row['recall_at_10']:.4f}  RSS {rss:,.0f} MiB", flush=True)
        del layer, fn, m
    return rows


def _plot(samples: dict, sizes: list[int], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = sorted({name for _, name in samples}, key=lambda x: (x == "brute_force", x))
    colours = dict(zip(names, ("tab:blue", "tab:green", "tab:orange", "tab:purple")))
    colours["brute_force"] = "tab:red"
    for name in names:
        colour = colours.get(name, "tab:gray")
        for q, style in ((50, "-o"), (99, "--s")):
            ax.plot(sizes, [np.percentile(samples[(n, name)], q) for n in sizes], style,
                    color=colour, label=f"{name} p{q}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("latency per query, batch of 1 (ms)")
    ax.set_title(f"TFRS retrieval index, top-{K}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="reuse this trained model directory (default: train one)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep (and reuse) the small platform and model here "
                             "(default: a temporary directory)")
    parser.add_argument("--users", type=int, default=2_000, help="small platform users")
    parser.add_argument("--items", type=int, default=5_000, help="small platform items")
    parser.add_argument("--days", type=int, default=7, help="small platform days")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--search-multipliers", type=int, nargs="+", default=[1, 4],
                        help="ScaNN variants probing and re-scoring this many times the "
                             "defaults (default: 1 4)")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=1)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "retrieval_index.json")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    if sizes[0] < 16 or args.queries < 1:
        parser.error("--sizes must be >= 16 (ScaNN's minimum) and --queries >= 1")

    import tensorflow as tf

    import recsys  # noqa: F401  (before tensorflow: tf.keras is Keras 2)

    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    threads = {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
               "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    print(f"threads: TF intra-op {threads['tf_intra_op']}, inter-op {threads['tf_inter_op']} "
          "(ScaNN's batched search uses its own pool)", flush=True)

    import scann  # noqa: F401  (registers the Scann ops)

    from recsys.data.synthetic import SyntheticConfig
    from trainer.scann_config import ScannConfig
    from trainer.training_data import load_retrieval_data

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    started = time.perf_counter()
    synthetic = SyntheticConfig(users=args.users, items=args.items, days=args.days,
                                end_date=dt.date(2026, 11, 1))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        repo = build_platform(workdir, synthetic)
        data = load_retrieval_data(repo.resolve())
        model_dir = args.model_dir or workdir / "two_tower"
        cfg, vocab, model, reference_us = _model(repo, model_dir, args.epochs, data)
        queries = _queries(model, data.train, args.queries, seed=0)

        start = time.perf_counter()
        frame = _catalogue(synthetic, sizes[-1])
        items, item_ids = _embed_items(model, frame, reference_us)
        del frame
        vocabulary = set(vocab.item_ids)
        known = np.fromiter((i in vocabulary for i in item_ids), bool, len(item_ids))
        print(f"catalogue: {len(items):,} items x {items.shape[1]} embedded in "
              f"{time.perf_counter() - start:.1f}s; {len(queries):,} queries", flush=True)
        row_of = {item_id.encode(): row for row, item_id in enumerate(item_ids)}

        results, samples = [], {}
        scann_cfg = ScannConfig()
        for n in sizes:
            rows = _bench_size(n, items, item_ids, queries, row_of, scann_cfg, samples,
                               tuple(args.search_multipliers))
            for row in rows:
                row["ids_in_model_vocabulary"] = int(known[:n].sum())
            results.extend(rows)
    wall = time.perf_counter() - started

    print(f"\nTF threads: intra-op {threads['tf_intra_op']}, inter-op {threads['tf_inter_op']}; "
          f"k={K}; {len(queries):,} queries; batched = {BATCH} per call")
    print("(cores: CPU s / wall s of the batched calls; RSS: after the build, +build's delta)")
    print(f"{'size':>10}  {'index':<12}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'q/s batched':>13}{'cores':>7}{'recall@10':>11}{'RSS MiB':>9}{'+MiB':>7}")
    for r in results:
        print(f"{r['size']:>10,}  {r['index']:<12}{r['build_s']:>9.2f}{r['p50_ms']:>9.3f}"
              f"{r['p99_ms']:>9.3f}{r['queries_per_s_batched']:>13,.0f}"
              f"{r['batched_cpu_per_wall']:>7.2f}{r['recall_at_10']:>11.4f}"
              f"{r['rss_mb_after_build']:>9,.0f}{r['rss_mb_build_delta']:>7,.0f}")
    print(f"wall time {wall:.0f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "retrieval_index", "k": K, "queries": len(queries), "batch": BATCH,
        "tie_tolerance": TIE_TOLERANCE, "threads": threads,
        "cpus": len(os.sched_getaffinity(0)), "machine": platform.machine(),
        "platform": {"users": synthetic.users, "items": synthetic.items,
                     "days": synthetic.days, "seed": synthetic.seed,
                     "end_date": synthetic.end_date.isoformat()},
        "model_dir": str(args.model_dir) if args.model_dir else None,
        "embedding_dim": int(items.shape[1]), "model_config": cfg.to_dict(),
        "item_age_reference_us": reference_us, "wall_seconds": round(wall, 1),
        "results": results}, indent=2))
    print(f"wrote {args.out}")
    _plot(samples, sizes, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
