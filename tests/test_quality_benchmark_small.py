"""`recsys benchmark quality` end to end on a small generated MovieLens directory: the
leave-last-one-out split, the EASE and SASRec rows, and the paired differences of every pair
(the protocol's own run on ml-latest-small is test_quality_movielens.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from retrieval_support import SMALL_YAML

from workflows.cli.main import main

GENRES = ("Comedy", "Drama", "Horror", "Sci-Fi")


def write_movielens(root, users=40, movies=150, seed=0):
    """Users who each rate 12 to 24 movies, mostly of one genre, one rating a minute."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = [f"{m},Movie {m} (2000),{GENRES[m % len(GENRES)]}" for m in range(1, movies + 1)]
    (root / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(rows) + "\n")
    ratings, clock = [], 1_500_000_000
    for user in range(1, users + 1):
        liked = [m for m in range(1, movies + 1) if m % len(GENRES) == user % len(GENRES)]
        others = [m for m in range(1, movies + 1) if m not in liked]
        count = int(rng.integers(12, 25))
        chosen = rng.choice(liked, min(count, len(liked)), replace=False).tolist()
        chosen += rng.choice(others, 3, replace=False).tolist()
        for movie in rng.permutation(chosen):
            clock += 60
            ratings.append(f"{user},{movie},{rng.choice([3.5, 4.0, 4.5, 5.0])},{clock}")
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n"
                                      + "\n".join(ratings) + "\n")
    return root


@pytest.mark.timeout(600)
def test_leave_last_one_out_with_every_baseline_and_paired_differences(tmp_path, capsys):
    movielens = write_movielens(tmp_path / "ml")
    config = tmp_path / "small.yaml"
    small = yaml.safe_load(SMALL_YAML)
    small["model"]["num_random_negatives"] = 0  # the benchmark's default draws 1,024
    config.write_text(yaml.safe_dump(small))
    out = tmp_path / "quality.json"
    code = main(["benchmark", "quality", "--movielens", str(movielens), "--out", str(out),
                 "--workdir", str(tmp_path / "work"), "--config", str(config), "--no-ranker",
                 "--split", "last_one", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "(last_one split)" in printed and "SASRec (ids, softmax)" in printed
    doc = json.loads(out.read_text())
    assert doc["split"] == "last_one" and doc["users"] == 40
    # exactly one held-out positive per user
    assert doc["test_interactions"] + doc["cold_test_interactions"] == 40
    rows = list(doc["models"])
    assert rows == ["most-popular", "EASE (lambda 200)", "SASRec (ids, softmax)", "two-tower"]
    pairs = {(d["a"], d["b"], d["metric"]) for d in doc["paired_differences"]}
    assert len(pairs) == len(rows) * (len(rows) - 1) // 2 * 2
    for name in rows:
        assert 0.0 <= doc["models"][name]["ndcg@10"] <= 1.0
    # EASE learns the one-genre tastes; most-popular cannot
    assert doc["models"]["EASE (lambda 200)"]["recall@10"] > \
        doc["models"]["most-popular"]["recall@10"]
