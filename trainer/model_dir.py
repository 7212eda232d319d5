"""A retrieval model directory: what trained it, its vocabularies and its checkpoints.

Layout (like an Estimator's ``model_dir``)::

    MODEL_DIR/config.json        the RetrievalConfig
    MODEL_DIR/vocabularies.json  trainer.vocabularies.Vocabularies
    MODEL_DIR/data.json          the time of the latest training example, the example count
    MODEL_DIR/checkpoints/       tf.train.CheckpointManager (model, optimizer, epoch)
    MODEL_DIR/logs/              TensorBoard (train/ and validation/)
    MODEL_DIR/history.json       loss per epoch, examples/second
    MODEL_DIR/loss.png           the loss curve
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from recsys.errors import ConfigError, SourceError
from trainer.config import RetrievalConfig
from trainer.retrieval_model import TwoTowerModel
from trainer.vocabularies import Vocabularies


@dataclass(frozen=True)
class ModelDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def vocabularies_file(self) -> Path:
        return self.path / "vocabularies.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def write_config(self, cfg: RetrievalConfig) -> None:
        """Record ``cfg``; a directory trained with a different model config is refused (a
        different ``train`` section, e.g. more epochs, continues the run)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.config_file.exists():
            previous = RetrievalConfig.from_dict(json.loads(self.config_file.read_text()))
            if previous.model != cfg.model:
                raise ConfigError(f"{self.path} holds a model trained with another model config; "
                                  "use a new --model_dir or the same configuration")
        self.config_file.write_text(json.dumps(cfg.to_dict(), indent=2))

    @property
    def data_file(self) -> Path:
        return self.path / "data.json"

    def write_data_info(self, data_end_us: int, n_examples: int) -> None:
        """What the model was trained on: the latest training event and the example count."""
        self.data_file.write_text(json.dumps({"data_end_us": data_end_us,
                                              "examples": n_examples}))

    def data_end_us(self) -> int:
        """Time of the latest training example (microseconds since the epoch, UTC)."""
        if not self.data_file.exists():
            raise SourceError(f"{self.data_file} not found: train the model first")
        return int(json.loads(self.data_file.read_text())["data_end_us"])

    def read_config(self) -> RetrievalConfig:
        if not self.config_file.exists():
            raise SourceError(f"{self.config_file} not found: {self.path} is not a model "
                              "directory written by `recsys train retrieval`")
        return RetrievalConfig.from_dict(json.loads(self.config_file.read_text()))

    def restore(self) -> tuple[RetrievalConfig, Vocabularies, TwoTowerModel]:
        """The trained model, from the latest checkpoint."""
        cfg = self.read_config()
        vocab = Vocabularies.load(self.vocabularies_file)
        latest = tf.train.latest_checkpoint(self.checkpoints)
        if latest is None:
            raise SourceError(f"no checkpoint in {self.checkpoints}: training did not finish "
                              "an epoch")
        model = TwoTowerModel(dataclasses.replace(cfg.model, num_random_negatives=0,
                                                  num_index_negatives=0), vocab)
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        return cfg, vocab, model


__all__ = ["ModelDir"]
