"""`recsys train retrieval --strategy multi_worker_mirrored` with two worker processes on this
machine, each with its own TF_CONFIG: one model directory (the chief's), a restart resumes
from the chief's checkpoint, and the model evaluates like one trained by one worker with the
same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from retrieval_support import small_config
from serving_support import free_port

from trainer.workflow import evaluate

ROOT = Path(__file__).resolve().parents[1]
CHIEF_FILES = {"checkpoints", "config.json", "data.json", "history.json", "logs", "loss.png",
               "vocabularies.json"}


def _train_on_two_workers(repo: Path, model_dir: Path, config: Path, epochs: int,
                          logs: Path) -> list[str]:
    """Both workers' output; fails with their logs if either fails."""
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes, outputs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        log = (logs / f"worker-{index}-epochs-{epochs}.log").open("w")
        processes.append((subprocess.Popen(
            [sys.executable, "-m", "workflows.cli.main", "train", "retrieval", "--repo",
             str(repo), "--model-dir", str(model_dir), "--config", str(config), "--epochs",
             str(epochs), "--strategy", "multi_worker_mirrored", "--no-progress"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}), log))
    try:
        for process, log in processes:
            code = process.wait(timeout=600)
            log.close()
            outputs.append(Path(log.name).read_text())
            assert code == 0, outputs[-1][-3000:]
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
            log.close()
    return outputs


@pytest.mark.slow
def test_two_workers_train_one_model_like_one_worker(small_repo, small_data, trained_model_dir,
                                                      tmp_path):
    cfg = small_config()  # what trained_model_dir was trained with, on one worker
    config = tmp_path / "retrieval.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    model_dir = tmp_path / "two_workers"

    _train_on_two_workers(small_repo, model_dir, config, cfg.train.epochs - 1, tmp_path)
    assert {p.name for p in model_dir.iterdir()} == CHIEF_FILES
    # a restart of both workers with more epochs resumes from the chief's checkpoint
    outputs = _train_on_two_workers(small_repo, model_dir, config, cfg.train.epochs, tmp_path)
    assert all(f"resuming from {model_dir / 'checkpoints'}" in out for out in outputs), outputs
    assert {p.name for p in model_dir.iterdir()} == CHIEF_FILES  # no scratch left behind
    history = json.loads((model_dir / "history.json").read_text())
    assert history["initial_epoch"] == cfg.train.epochs - 1 and len(history["loss"]) == 1

    two = evaluate(small_repo, model_dir, data=small_data)["models"]["two-tower"]["overall"]
    one = evaluate(small_repo, trained_model_dir, data=small_data)["models"]["two-tower"]
    one = one["overall"]
    popular = evaluate(small_repo, None, data=small_data)["models"]["most-popular"]["overall"]
    for metric in ("recall@10", "recall@100", "ndcg@10"):
        assert abs(two[metric] - one[metric]) <= 0.25 * one[metric] + 0.01, (metric, two, one)
    assert two["recall@100"] > popular["recall@100"]  # it learned something of its own
