"""Live index health: recall@10 of the served ScaNN index against exact search, counted by
score, and `recsys monitor index` on real exports: an index that searches one leaf of many is
reported below its threshold, an exhaustive one is not, in process and through the model
server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.monitoring.index_health import index_health
from workflows.cli.main import main

IDS = np.array([[f"i{j}" for j in range(12)]] * 2, dtype=object)
SCORES = np.array([[1.0 - j / 100 for j in range(12)]] * 2)


def test_recall_is_one_for_the_exact_top_ten_in_any_order():
    shuffled = IDS[:, :10][:, ::-1]
    health = index_health(shuffled, IDS, SCORES, threshold=0.9, version=4)
    assert (health.recall, health.id_recall, health.worst_query) == (1.0, 1.0, 1.0)
    assert health.healthy and health.to_dict()["version"] == 4


def test_misses_count_and_items_tied_with_the_tenth_do_not():
    found = IDS[:, :10].copy()
    found[0, 5:] = ["x1", "x2", "x3", "x4", "x5"]  # unknown to exact search: misses
    health = index_health(found, IDS, SCORES, threshold=0.9)
    assert health.recall == pytest.approx(0.75) and health.worst_query == pytest.approx(0.5)
    assert not health.healthy
    tied = SCORES.copy()
    tied[:, 10] = tied[:, 9]  # the 11th scores the same as the 10th: returning it is a hit
    found = IDS[:, :10].copy()
    found[:, 9] = "i10"
    health = index_health(found, IDS, tied, threshold=1.0)
    assert health.recall == 1.0 and health.id_recall == pytest.approx(0.9)


def test_padding_is_never_a_hit_and_bad_shapes_are_refused():
    found = IDS[:, :10].copy()
    found[:, 8:] = ""
    assert index_health(found, IDS, SCORES, 0.9).recall == pytest.approx(0.8)
    with pytest.raises(ValueError, match="answers must be"):
        index_health(IDS[:1], IDS, SCORES, 0.9)
    with pytest.raises(ValueError, match="answers must be"):
        index_health(IDS, IDS, SCORES[:, :5], 0.9)


@pytest.fixture(scope="module")
def two_indexes(trained_model_dir, small_repo, small_data, tmp_path_factory):
    """Version 1 searched exhaustively, version 2 searching 1 of 30 leaves, re-scoring only
    10 candidates, with no widening; and query rows."""
    from recsys.features.catalogue import read_catalogue
    from trainer.export import export_models
    from trainer.model_dir import ModelDir
    from trainer.scann_config import ScannConfig

    base = tmp_path_factory.mktemp("indexes")
    directory = ModelDir(trained_model_dir)
    _, _, model = directory.restore()
    catalogue = read_catalogue(small_repo / "data")
    for scann in (ScannConfig(exact=True),
                  ScannConfig(num_leaves=30, num_leaves_to_search=1,
                              num_reordering_candidates=10, min_recall=0.0)):
        export_models(model, catalogue, directory.data_end_us(), base, k=10, scann=scann)
    queries = base / "queries.parquet"
    small_data.test.to_parquet(queries)
    return base, queries


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_index_searching_too_few_leaves_is_reported_below_its_threshold(
        two_indexes, tmp_path, capsys):
    base, queries = two_indexes
    common = ["monitor", "index", "--queries", queries, "--model-base-path", base,
              "--sample", "120", "--fail-on-breach"]
    code, out, err = _run(capsys, *common, "--version", "1", "--output", tmp_path / "v1.json")
    assert code == 0, err
    exact = json.loads((tmp_path / "v1.json").read_text())
    assert exact["recall"] == 1.0 and exact["healthy"] and exact["queries"] == 120
    code, out, err = _run(capsys, *common, "--version", "2", "--output", tmp_path / "v2.json",
                          "--metrics-file", tmp_path / "index.prom")
    assert code == 3, err
    narrow = json.loads((tmp_path / "v2.json").read_text())
    assert narrow["recall"] < 0.9 and not narrow["healthy"] and "BELOW THRESHOLD" in out
    prom = (tmp_path / "index.prom").read_text()
    assert f'recsys_index_recall{{k="10",model="retrieval",version="2"}} ' \
           f'{narrow["recall"]}' in prom
    assert 'recsys_index_recall_threshold{k="10",model="retrieval",version="2"} 0.95' in prom
    assert 'recsys_monitor_last_run_timestamp_seconds{check="index"}' in prom
    # the depth: the export's own (10 here, its k), or --at
    assert narrow["k"] == 10 and "recall@10" in out
    code, out, err = _run(capsys, *common, "--version", "2", "--at", "3", "--output",
                          tmp_path / "v2_at3.json")
    shallow = json.loads((tmp_path / "v2_at3.json").read_text())
    assert shallow["k"] == 3 and "recall@3 " in out

    # the same through a model server, by label (the registry's alias)
    from serving_support import start_server

    from recsys.model_contract.registry import Registry

    registry = Registry(base)
    registry.promote(1, "stable", "exact")
    registry.promote(2, "canary", "narrow")
    server = start_server(model_config_file=str(registry.config_path))
    try:
        for label, exit_code in (("stable", 0), ("canary", 3)):
            code, out, err = _run(capsys, *common, "--label", label, "--model-server",
                                  f"127.0.0.1:{server.grpc_port}", "--output",
                                  tmp_path / f"{label}.json")
            assert code == exit_code, err
            report = json.loads((tmp_path / f"{label}.json").read_text())
            assert report["version"] == (1 if label == "stable" else 2)
        # the server may embed queries on ONNX Runtime: float rounding moves a few candidates
        assert report["recall"] == pytest.approx(narrow["recall"], abs=0.05)
    finally:
        server.stop()


@pytest.mark.parametrize("argv, message", [
    (["--queries", "ABSENT"], "does not exist"),
    (["--queries", "NOT_PARQUET"], "is not readable Parquet"),
    (["--queries", "NO_COLUMNS"], "needs rows with the query inputs"),
    (["--label", "blue"], "--label blue: not an alias"),
    (["--version", "7"], "retrieval/7 has no manifest"),
    (["--version", "2", "--at", "11"], "--at 11 is deeper than retrieval v2's k (10)"),
])
def test_bad_index_flags_are_named(two_indexes, tmp_path, capsys, argv, message):
    import pandas as pd

    base, queries = two_indexes
    (tmp_path / "bad.parquet").write_text("not parquet")
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "cols.parquet")
    argv = [{"ABSENT": tmp_path / "absent.parquet", "NOT_PARQUET": tmp_path / "bad.parquet",
             "NO_COLUMNS": tmp_path / "cols.parquet"}.get(a, a) for a in argv]
    if "--queries" not in argv:
        argv += ["--queries", queries]
    code, _, err = _run(capsys, "monitor", "index", "--model-base-path", base,
                        "--output", tmp_path / "out.json", *argv)
    assert code != 0 and message in err, err


def test_bad_index_numbers_are_refused_by_the_parser(capsys):
    for argv in (["--threshold", "1.5"], ["--threshold", "0"], ["--sample", "0"], ["--at", "0"],
                 ["--every", "-1"], ["--label", "stable", "--version", "1"]):
        with pytest.raises(SystemExit) as exc:
            main(["monitor", "index", "--queries", "q.parquet", *argv])
        assert exc.value.code == 2


def test_the_blessing_measures_latency_under_load_and_never_passes_without_metrics(
        two_indexes, tmp_path, capsys):
    """Exports without an evaluation cannot be blessed (no silent pass); the latency check
    runs the version's retrieval signature from several threads."""
    base, queries = two_indexes
    code, out, err = _run(capsys, "models", "bless", "2", "--against", "1", "--queries",
                          queries, "--requests", "40", "--concurrency", "2",
                          "--model-base-path", base)
    assert code == 3, err
    blessing = json.loads((base / "blessings" / "2.json").read_text())
    checks = {c["name"]: c for c in blessing["checks"]}
    assert checks["offline recall@100"]["status"] == "failed"
    assert "the candidate has no recall@100" in checks["offline recall@100"]["detail"]
    latency = checks["latency under load"]
    assert latency["status"] == "passed" and 0 < latency["values"]["p50_ms"] <= \
        latency["values"]["p99_ms"]
    import pandas as pd

    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "cols.parquet")
    code, _, err = _run(capsys, "models", "bless", "2", "--queries", tmp_path / "cols.parquet",
                        "--model-base-path", base)
    assert code == 1 and "--queries" in err and "needs rows with the query inputs" in err
