"""`recsys monitor index`: recall@k of the served ScaNN index against exact search, on a sample
of real query rows (k: ``--at``, by default the depth the version's export tuned its index at,
the candidates a request retrieves; 10 for versions that do not record it).

    recsys monitor index --queries QUERIES.parquet [--model-base-path models/serving]
        [--model-server HOST:PORT] [--label stable | --version N] [--sample 200]
        [--threshold 0.95] [--at K] [--output index_health.json] [--metrics-file FILE.prom]
        [--fail-on-breach] [--every SECONDS]

Both answers come from the model server's own models (or from the same version manager in
this process without ``--model-server``): ``retrieval`` (the ScaNN index) and
``retrieval_portable`` (brute force over the same item embeddings) at the same version.
``--queries``: Parquet rows of the version's query inputs (the service's sampled queries, or
training examples); ``--every``: check again every so many seconds (a long-running monitor;
one check per call otherwise, for cron).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from workflows.cli.arguments import positive_float, positive_int, probability, read_parquet_flag

BREACH_EXIT = 3
BATCH = 64  # query rows per model call


def add_parser(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser(
        "index", help="recall@k of the served ANN index against exact search",
        description=__doc__.split("\n\n")[0])
    index.add_argument("--queries", required=True, type=Path, metavar="PARQUET")
    index.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                       type=Path, default=Path("models/serving"), metavar="DIR",
                       help="the exports (for the version's input specs; and the models "
                            "themselves without --model-server)")
    index.add_argument("--model-server", metavar="HOST:PORT",
                       help="ask this model server (gRPC), as the service does")
    which = index.add_mutually_exclusive_group()
    which.add_argument("--label", metavar="ALIAS", help="the version label to check "
                                                        "(default: the newest version)")
    which.add_argument("--version", type=positive_int, metavar="N")
    index.add_argument("--sample", type=positive_int, default=200, metavar="N",
                       help="query rows sampled from --queries (default 200)")
    index.add_argument("--seed", type=int, default=0)
    index.add_argument("--threshold", type=probability, default=0.95,
                       help="recall below which the index is unhealthy (default 0.95)")
    index.add_argument("--at", type=positive_int, metavar="K",
                       help="the depth of the recall (default: the depth the version's export "
                            "tuned its index at, its manifest's index.check_recall_at; 10 "
                            "without one)")
    index.add_argument("--output", type=Path, default=Path("index_health.json"),
                       metavar="FILE")
    index.add_argument("--metrics-file", type=Path, metavar="FILE.prom",
                       help="write the gauges for node_exporter's textfile collector")
    index.add_argument("--fail-on-breach", action="store_true",
                       help=f"exit {BREACH_EXIT} when recall is below --threshold")
    index.add_argument("--every", type=positive_float, metavar="SECONDS",
                       help="check again every SECONDS, forever")
    index.set_defaults(func=run_index)


def _version(args: argparse.Namespace) -> int:
    """The version whose specs the query rows are encoded with."""
    from recsys.errors import ConfigError
    from recsys.model_contract.registry import Registry
    from recsys.model_contract.versioning import versions

    if args.version is not None:
        return args.version
    if args.label:
        aliases = Registry(args.model_base_path).aliases()
        if args.label not in aliases:
            raise ConfigError(f"--label {args.label}: not an alias in "
                              f"{args.model_base_path}/models.config (aliases: "
                              f"{', '.join(aliases) or 'none'})")
        return aliases[args.label]
    present = versions(args.model_base_path / "retrieval")
    if not present:
        raise ConfigError(f"no retrieval versions under {args.model_base_path}")
    return present[-1]


def query_rows(base: Path, version: int, flag: str, path: Path, sample: int, seed: int = 0):
    """``sample`` rows (seeded) of the Parquet ``path`` encoded as retrieval ``version``'s
    query inputs; a version without a manifest, or rows without the query inputs, is a
    ConfigError naming ``flag``."""
    from recsys.errors import ConfigError
    from recsys.model_contract.arrays import to_arrays, with_missing_columns
    from recsys.model_contract.feature_spec import query_inputs
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.retrieval_config import model_config_of

    manifest = read_manifest(base / "retrieval" / str(version))
    if manifest is None:
        raise ConfigError(f"{base}/retrieval/{version} has no manifest")
    table = read_parquet_flag(flag, path).to_pandas()
    specs = query_inputs(model_config_of(manifest))
    needed = {"user_id", "history_item_ids"} & {s.name for s in specs}
    if table.empty or not needed <= set(table.columns):
        raise ConfigError(f"{flag} {path} needs rows with the query inputs "
                          f"(at least {', '.join(sorted(needed))}); it has "
                          f"{len(table):,} rows and columns {', '.join(table.columns)}")
    rows = table.sample(min(sample, len(table)), random_state=seed)
    return to_arrays(with_missing_columns(rows.copy(), specs), specs)


def check_depth(base: Path, version: int, at: int | None) -> int:
    """``at``, or the depth ``version``'s export checked its index at (10 if not recorded);
    deeper than the index's k is a ConfigError."""
    from recsys.errors import ConfigError
    from recsys.model_contract.manifest import read_manifest

    manifest = read_manifest(base / "retrieval" / str(version)) or {}
    k = manifest.get("k")
    depth = at or manifest.get("index", {}).get("check_recall_at", 10)
    if k is not None and depth > k:
        raise ConfigError(f"--at {depth} is deeper than retrieval v{version}'s k ({k})")
    return int(depth)


def _queries(args: argparse.Namespace, version: int):
    return query_rows(args.model_base_path, version, "--queries", args.queries, args.sample,
                      args.seed)


def _client(args: argparse.Namespace, version: int):
    from serving.recommendations.model_clients import GrpcModelClient, InProcessModelClient

    if args.model_server:
        return GrpcModelClient(args.model_server, label=args.label)
    models = {m: args.model_base_path / m for m in ("retrieval", "retrieval_portable")}
    return InProcessModelClient(models, versions={m: version for m in models}, onnx=False)


def check_once(args: argparse.Namespace, client, queries: dict, depth: int = 10):
    """One check: the sampled rows through both models, in batches."""
    import numpy as np

    from recsys.errors import ConfigError
    from recsys.monitoring.index_health import index_health

    rows = len(next(iter(queries.values())))
    found, exact_ids, exact_scores, versions = [], [], [], set()
    for start in range(0, rows, BATCH):
        batch = {k: v[start:start + BATCH] for k, v in queries.items()}
        ann = client.predict("retrieval", "retrieval", batch, 60.0, ("item_ids",))
        exact = client.predict("retrieval_portable", "retrieval", batch, 60.0,
                               ("item_ids", "scores"))
        versions.update({ann.version, exact.version})
        found.append(ann.outputs["item_ids"])
        exact_ids.append(exact.outputs["item_ids"])
        exact_scores.append(exact.outputs["scores"])
    if len(versions) != 1:
        raise ConfigError(f"retrieval and retrieval_portable answered with different versions "
                          f"({sorted(versions)}): both must serve the version checked")
    return index_health(np.concatenate(found), np.concatenate(exact_ids),
                        np.concatenate(exact_scores), args.threshold, versions.pop(), depth)


def _report(args: argparse.Namespace, health) -> None:
    from recsys.monitoring.metrics import MonitoringMetrics

    verdict = "healthy" if health.healthy else "BELOW THRESHOLD"
    print(f"retrieval v{health.version}: recall@{health.k} {health.recall:.4f} by score "
          f"({health.id_recall:.4f} by id; worst query {health.worst_query:.2f}) on "
          f"{health.queries:,} queries; threshold {health.threshold:.2f}: {verdict}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({**health.to_dict(), "queries_file": str(args.queries),
                                       "label": args.label}, indent=2))
    if args.metrics_file:
        metrics = MonitoringMetrics()
        labels = ("retrieval", str(health.version), str(health.k))
        metrics.index_recall.labels(*labels).set(health.recall)
        metrics.index_recall_threshold.labels(*labels).set(health.threshold)
        metrics.finished("index")
        metrics.write(args.metrics_file)


def run_index(args: argparse.Namespace) -> int:
    version = _version(args)
    queries = _queries(args, version)  # bad input is named before any model loads
    depth = check_depth(args.model_base_path, version, args.at)
    client = _client(args, version)
    try:
        while True:
            health = check_once(args, client, queries, depth)
            _report(args, health)
            if args.every is None:
                return BREACH_EXIT if args.fail_on_breach and not health.healthy else 0
            time.sleep(args.every)
            version = _version(args)  # an alias may have moved; the file may have grown
            queries = _queries(args, version)
            depth = check_depth(args.model_base_path, version, args.at)
    finally:
        client.close()


__all__ = ["add_parser", "run_index", "check_once", "check_depth", "query_rows",
           "BREACH_EXIT"]
