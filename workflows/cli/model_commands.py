"""`recsys train retrieval`, `recsys train ranking`, `recsys evaluate`, `recsys export` and
`recsys export check`.

Flags use dashes like the rest of the CLI; the names TensorFlow users know also work with
underscores (``--model_dir``, ``--model_base_path``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from recsys.errors import ConfigError
from workflows.cli.arguments import (
    at_least_one,
    iso_datetime,
    non_negative_float,
    positive_int,
    probability,
)

log = logging.getLogger("recsys")


def _repo_args(parser: argparse.ArgumentParser) -> None:
    from recsys.features.store import PROFILES

    parser.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR",
                        help="the recsys feature repository with built features "
                             "(default: ./feature_repo)")
    parser.add_argument("--profile", choices=list(PROFILES), default="embedded",
                        help="feature repository profile (default: embedded)")


def _model_dir_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", type=Path,
                        required=required, metavar="DIR",
                        help="the model directory (config, vocabularies, checkpoints, logs)")


def _ranker_dir_arg(parser: argparse.ArgumentParser, required: bool, help: str) -> None:
    parser.add_argument("--ranker-dir", "--ranker_dir", dest="ranker_dir", type=Path,
                        required=required, metavar="DIR", help=help)


def _ks(text: str) -> int:
    return positive_int(text)


def _version(text: str) -> int:
    return positive_int(text)


def _warm_start_args(parser: argparse.ArgumentParser, what: str, slates: bool = False
                     ) -> None:
    group = parser.add_argument_group(
        "incremental training",
        f"--warm-start V fine-tunes version V's {what} (found through its manifest under "
        "--model-base-path) on the interactions after its training data, and exports the next "
        "version there only if it passes the quality gate against version V.")
    group.add_argument("--warm-start", "--warm_start", dest="warm_start", type=_version,
                       metavar="VERSION", help="the exported version to fine-tune")
    group.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                       type=Path, metavar="DIR", help="TF Serving model base path of the "
                                                      "versions (required with --warm-start)")
    metrics = "recall@K, ndcg@K, map@K, coverage@K" + (" or slate_auc" if slates else "")
    group.add_argument("--gate-metric", default="recall@100", metavar="METRIC",
                       help=f"metric of the quality gate on the test split: {metrics} "
                            "(default recall@100)")
    if slates:
        group.add_argument("--lake", type=Path, metavar="DIR",
                           help="the lake whose exposure log holds the served answers: both "
                                "models are also scored within them (slate_auc), which does "
                                "not favour the version that chose what was shown")
        group.add_argument("--since", type=iso_datetime, metavar="TIME",
                           help="the new examples are those after TIME (ISO 8601, UTC when "
                                "no zone is given; default: the version's training data end),"
                                " e.g. the start of a drift")
        group.add_argument("--replay-ratio", type=non_negative_float, default=1.0,
                           metavar="R", help="older examples replayed per new one (default "
                                             "1; fewer after a drift, when older examples "
                                             "teach what no longer holds)")
        group.add_argument("--ips-clip", type=at_least_one, metavar="W",
                           help="weigh each new example by the inverse of the propensity "
                                "with which its logged answer showed its item, at most W "
                                "(>= 1; needs --lake): clicks on explored items count as "
                                "often as they would have been seen")
        group.add_argument("--forget-users", action="store_true",
                           help="every user's id row starts as the unknown user's, so the "
                                "fine-tune relearns users from the new examples (after a "
                                "drift, the rows hold the tastes from before it)")
    group.add_argument("--gate-tolerance", type=float, default=0.0, metavar="X",
                       help="the candidate may be this much below the current version "
                            "(absolute, default 0)")


def _gate(args: argparse.Namespace):
    from trainer.quality_gate import QualityGate

    if args.warm_start is None:
        for flag, value, default in (("--model-base-path", args.model_base_path, None),
                                     ("--lake", getattr(args, "lake", None), None),
                                     ("--since", getattr(args, "since", None), None),
                                     ("--replay-ratio", getattr(args, "replay_ratio", 1.0),
                                      1.0),
                                     ("--ips-clip", getattr(args, "ips_clip", None), None),
                                     ("--forget-users", getattr(args, "forget_users", False),
                                      False),
                                     ("--gate-metric", args.gate_metric, "recall@100"),
                                     ("--gate-tolerance", args.gate_tolerance, 0.0)):
            if value != default:
                raise ConfigError(f"{flag} is for incremental training: give --warm-start "
                                  "VERSION too")
        return None
    if args.model_base_path is None:
        raise ConfigError("--warm-start needs --model-base-path (where version "
                          f"{args.warm_start} was exported)")
    return QualityGate(args.gate_metric, args.gate_tolerance)


def _print_warm_start(result, model: str) -> int:
    print(f"fine-tuned version {result.base_version}'s {model} on {result.new_examples:,} new "
          f"examples ({result.replayed:,} older ones replayed) into {result.directory}")
    print(result.decision.summary())
    if result.exported_version is None:
        print(f"not exported: version {result.base_version} stays the newest")
        from trainer.quality_gate import NOT_EXPORTED_EXIT

        return NOT_EXPORTED_EXIT
    print(f"exported version {result.exported_version}; the model server picks it up by itself")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model",
                                  description="Train a model on the Beam training data and "
                                              "Feast features.")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    retrieval = models.add_parser(
        "retrieval", help="the two-tower retrieval model (TFRS)",
        description="Train the TFRS two-tower retrieval model on the train split of the "
                    "feature repository (Beam examples joined point in time with the Feast "
                    "'retrieval' service). Resumes from the model directory's last checkpoint; "
                    "TensorBoard logs go to MODEL_DIR/logs.")
    _repo_args(retrieval)
    _model_dir_arg(retrieval)
    retrieval.add_argument("--config", type=Path, metavar="FILE.yaml",
                           help="YAML with sections 'model' and 'train' (see trainer/config.py)")
    retrieval.add_argument("--epochs", type=positive_int, metavar="N")
    retrieval.add_argument("--batch-size", type=positive_int, metavar="N")
    retrieval.add_argument("--learning-rate", type=float, metavar="LR")
    retrieval.add_argument("--embedding-dim", type=positive_int, metavar="D")
    retrieval.add_argument("--seed", type=int, metavar="S")
    retrieval.add_argument("--strategy", choices=["default", "mirrored", "multi_worker_mirrored"],
                           help="tf.distribute strategy (multi_worker_mirrored reads TF_CONFIG)")
    retrieval.add_argument("--no-progress", action="store_true", help="no progress bar")
    _warm_start_args(retrieval, "two-tower model into --model-dir (a new directory)",
                     slates=True)
    retrieval.set_defaults(func=run_train_retrieval)
    ranking = models.add_parser(
        "ranking", help="the transformer ranking model (target attention, click + watch heads)",
        description="Train the transformer ranker that re-orders the two-tower model's "
                    "candidates. A stacking two-tower model (the --model-dir model's "
                    "configuration) is trained on the earlier part of each user's train "
                    "interactions; its top candidates at the start of the later part, with "
                    "Feast features point in time, labelled by what the user engaged with, "
                    "are the ranker's training lists (listwise softmax).")
    _repo_args(ranking)
    _model_dir_arg(ranking, required=False)
    _ranker_dir_arg(ranking, True, "where to write the ranker")
    ranking.add_argument("--config", type=Path, metavar="FILE.yaml",
                         help="YAML with RankerConfig fields "
                              "(see recsys/model_contract/ranker_config.py)")
    ranking.add_argument("--epochs", type=positive_int, metavar="N")
    ranking.add_argument("--candidates", type=positive_int, metavar="N",
                         help="two-tower candidates per list (default 200)")
    ranking.add_argument("--max-lists", type=positive_int, metavar="N",
                         help="train on the lists of at most N users, drawn at random "
                              "(default: every user with held interactions)")
    ranking.add_argument("--seed", type=int, metavar="S")
    ranking.add_argument("--no-progress", action="store_true", help="no progress bar")
    _warm_start_args(ranking, "ranker into --ranker-dir (a new directory; the version's "
                              "two-tower model is kept)")
    ranking.set_defaults(func=run_train_ranking)

    evaluate = subparsers.add_parser(
        "evaluate", help="offline metrics under the shared protocol",
        description="Recall@K, NDCG@K, MAP@K and coverage@K (../shared/EVALUATION.md) of the "
                    "most-popular baseline and the trained model on the test split, overall "
                    "and per segment. Writes MODEL_DIR/evaluation.json.")
    _repo_args(evaluate)
    _model_dir_arg(evaluate, required=False)
    _ranker_dir_arg(evaluate, False, "also evaluate the two-tower candidates re-ranked by "
                                     "this ranker ('two-tower + ranker')")
    evaluate.add_argument("--ks", type=_ks, nargs="+", default=[10, 20, 100], metavar="K")
    evaluate.add_argument("--out", type=Path, metavar="FILE.json")
    evaluate.set_defaults(func=run_evaluate)

    export = subparsers.add_parser(
        "export", help="export versioned SavedModels; `export check PATH` inspects one",
        description="Write a new numeric version of 'retrieval' (ScaNN), 'retrieval_portable' "
                    "(brute force, stock ops) and 'item_tower' under MODEL_BASE_PATH, each "
                    "checked by loading it back before it is renamed into place.")
    _repo_args(export)
    _model_dir_arg(export, required=False)
    _ranker_dir_arg(export, False, "also export this ranker as 'ranker' (signature 'rank')")
    export.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                        type=Path, metavar="DIR", help="TF Serving model base path")
    export.add_argument("--top-k", type=positive_int, default=100, metavar="K",
                        help="items per query in the retrieval signatures (default 100)")
    export.add_argument("--num-leaves", type=positive_int, metavar="N")
    export.add_argument("--num-leaves-to-search", type=positive_int, metavar="N")
    export.add_argument("--num-reordering-candidates", type=positive_int, metavar="N")
    export.add_argument("--min-recall", type=probability, metavar="R",
                        help="widen the ScaNN search until its recall by score against exact "
                             "search on sample queries reaches R (default: ScannConfig's, "
                             "0.97)")
    export.add_argument("--recall-at", type=positive_int, metavar="K",
                        help="the depth of that recall (default: --top-k, what a request "
                             "retrieves)")
    export.add_argument("--exact", action="store_true",
                        help="configure ScaNN to search exhaustively (equals brute force)")
    export.set_defaults(func=run_export)
    checks = export.add_subparsers(dest="export_command", required=False, metavar="check")
    check = checks.add_parser("check", help="which custom ops a SavedModel needs",
                              description="Read a SavedModel (without loading it) and say which "
                                          "custom ops it needs and whether stock TF Serving "
                                          "can load it. Exit status 0 either way, 1 if it "
                                          "cannot be read.")
    check.add_argument("path", type=Path, metavar="PATH")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_export_check)


def _repo(args: argparse.Namespace) -> Path:
    from recsys.features.store import profile_repo

    return profile_repo(args.repo, args.profile)


def run_train_retrieval(args: argparse.Namespace) -> int:
    from trainer import workflow
    from trainer.config import load_config

    gate = _gate(args)
    train_flags = {"epochs": args.epochs, "batch_size": args.batch_size,
                   "learning_rate": args.learning_rate, "seed": args.seed,
                   "strategy": args.strategy}
    if gate is not None:
        from trainer.warm_start import warm_start_retrieval

        if args.config is not None or args.embedding_dim is not None:
            raise ConfigError("--warm-start keeps the version's model configuration: drop "
                              "--config and --embedding-dim")
        return _print_warm_start(warm_start_retrieval(
            _repo(args), args.model_base_path, args.warm_start, args.model_dir, train_flags,
            gate, progress=not args.no_progress, lake=args.lake,
            since_us=None if args.since is None else int(args.since.timestamp() * 1e6),
            replay_ratio=args.replay_ratio, ips_clip=args.ips_clip,
            forget_users=args.forget_users), "two-tower model")
    cfg = load_config(args.config, {
        "model": {"embedding_dim": args.embedding_dim}, "train": train_flags})
    result = workflow.train(_repo(args), args.model_dir, cfg, progress=not args.no_progress)
    losses = ", ".join(f"{x:.1f}" for x in result.losses)
    print(f"trained {result.epochs_run} epoch(s) on {result.examples:,} examples at "
          f"{result.examples_per_second:,.0f} examples/s; loss per epoch: {losses}")
    print(f"model directory: {result.model_dir} (TensorBoard: tensorboard --logdir "
          f"{result.model_dir / 'logs'})")
    return 0


def run_train_ranking(args: argparse.Namespace) -> int:
    from recsys.model_contract.ranker_config import load_ranker_config
    from trainer.ranking.workflow import train_ranking

    gate = _gate(args)
    if gate is not None:
        from trainer.warm_start import warm_start_ranking

        if args.config is not None or args.candidates is not None or \
                args.model_dir is not None or args.max_lists is not None:
            raise ConfigError("--warm-start keeps the version's ranker configuration and "
                              "two-tower model: drop --config, --candidates, --max-lists and "
                              "--model-dir")
        if gate.k is None:
            raise ConfigError(f"--gate-metric {gate.metric} is for the two-tower model's warm "
                              "start; the ranker's gate takes recall@K, ndcg@K, map@K or "
                              "coverage@K")
        return _print_warm_start(warm_start_ranking(
            _repo(args), args.model_base_path, args.warm_start, args.ranker_dir,
            {"epochs": args.epochs, "seed": args.seed}, gate,
            progress=not args.no_progress), "ranker")
    if args.model_dir is None:
        raise ConfigError("recsys train ranking needs --model-dir (the two-tower model whose "
                          "configuration the stacking model uses), or --warm-start VERSION")
    cfg = load_ranker_config(args.config, {"epochs": args.epochs, "seed": args.seed,
                                           "candidates": args.candidates,
                                           "max_lists": args.max_lists})
    result = train_ranking(_repo(args), args.model_dir, args.ranker_dir, cfg,
                           progress=not args.no_progress)
    losses = ", ".join(f"{x:.3f}" for x in result.losses)
    print(f"trained the ranker on {result.lists:,} lists of {cfg.candidates} candidates "
          f"({result.positives:,} positives) in {result.seconds:.0f}s; loss per epoch: "
          f"{losses}")
    print(f"ranker directory: {result.ranker_dir}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from recsys.evaluation.report import format_table, protocol_document
    from trainer import workflow

    if args.ranker_dir is not None and args.model_dir is None:
        raise ConfigError("--ranker-dir re-ranks the two-tower model's candidates: give "
                          "--model-dir too")
    report = workflow.evaluate(_repo(args), args.model_dir, args.ks,
                               ranker_dir=args.ranker_dir)
    models = {name: r["overall"] for name, r in report["models"].items()}
    print(f"{report['users']:,} users, {report['candidate_items']:,} candidate items, "
          f"{report['test_interactions']:,} test interactions "
          f"({report['cold_test_interactions']:,} with cold items dropped)")
    print(format_table(models, args.ks))
    for name, result in report["models"].items():
        for segment, metrics in result["segments"].items():
            if metrics.get("users"):
                print(f"  {name} / {segment} ({metrics['users']} users): "
                      f"recall@10 {metrics.get('recall@10', float('nan')):.4f}, "
                      f"ndcg@10 {metrics.get('ndcg@10', float('nan')):.4f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = protocol_document(str(args.repo), models, {
            k: v for k, v in report.items() if k != "models"})
        args.out.write_text(json.dumps(document, indent=2))
        print(f"wrote {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from trainer import workflow
    from trainer.scann_config import ScannConfig

    if args.model_dir is None or args.model_base_path is None:
        raise ConfigError("recsys export needs --model-dir and --model-base-path "
                          "(or use `recsys export check PATH`)")
    if args.recall_at is not None and args.recall_at > args.top_k:
        raise ConfigError(f"--recall-at {args.recall_at} cannot exceed --top-k {args.top_k}: "
                          "the index returns only --top-k items")
    chosen = {"min_recall": args.min_recall} if args.min_recall is not None else {}
    scann = ScannConfig(num_leaves=args.num_leaves,
                        num_leaves_to_search=args.num_leaves_to_search,
                        num_reordering_candidates=args.num_reordering_candidates,
                        recall_at=args.recall_at, exact=args.exact, **chosen)
    result = workflow.export(_repo(args), args.model_dir, args.model_base_path, args.top_k,
                             scann, ranker_dir=args.ranker_dir)
    print(f"exported version {result.version} ({result.items:,} items indexed):")
    for name, path in result.paths.items():
        ops = result.manifests[name]["ops"]
        custom = ", ".join(ops["custom"]) or "none"
        print(f"  {name:<20} {path}  custom ops: {custom}")
    return 0


def run_export_check(args: argparse.Namespace) -> int:
    from recsys.model_contract.saved_model_ops import format_report, inspect_saved_model

    report = inspect_saved_model(args.path)
    if args.json:
        print(json.dumps({"path": str(report.path), "ops": list(report.ops),
                          "custom_ops": list(report.custom_ops),
                          "namespaces": list(report.namespaces),
                          "stock_tf_serving_loadable": report.stock_serving_loadable,
                          "requires_imports": dict(report.required_imports)}, indent=2))
    else:
        print(format_report(report))
    return 0
