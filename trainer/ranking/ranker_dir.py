"""A ranker directory: its configuration, vocabularies, item table and weights.

Layout::

    RANKER_DIR/config.json          the RankerConfig
    RANKER_DIR/vocabularies.json    categories, tags, context values, numeric statistics
    RANKER_DIR/item_table.npz       the item ids and vectors the ranker reads items through
    RANKER_DIR/checkpoint/          the trained weights (tf.train.Checkpoint)
    RANKER_DIR/data.json            latest training interaction, lists, positives
    RANKER_DIR/history.json         loss per epoch; RANKER_DIR/loss.png the curve
    RANKER_DIR/stacking_two_tower/  the two-tower model that produced the training lists
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from recsys.errors import SourceError
from recsys.model_contract.ranker_config import RankerConfig, load_ranker_config
from trainer.ranking.model import RankerModel, example_batch
from trainer.vocabularies import Vocabularies


@dataclass(frozen=True)
class RankerDir:
    path: Path

    @property
    def stacking_model_dir(self) -> Path:
        return self.path / "stacking_two_tower"

    def save(self, model: RankerModel, data_info: dict, losses: list[float]) -> None:
        from trainer.train import plot_losses

        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=2))
        model.vocab.save(self.path / "vocabularies.json")
        np.savez(self.path / "item_table.npz", ids=np.asarray(model.table_ids, dtype=str),
                 vectors=model.table_vectors)
        tf.train.Checkpoint(model=model).write(str(self.path / "checkpoint" / "ranker"))
        (self.path / "data.json").write_text(json.dumps(data_info))
        (self.path / "history.json").write_text(json.dumps({"loss": losses}, indent=2))
        if losses:
            plot_losses(losses, self.path / "loss.png", "transformer ranker",
                        "training loss (listwise softmax + watch)")

    def data_end_us(self) -> int:
        return int(self._json("data.json")["data_end_us"])

    def _json(self, name: str) -> dict:
        path = self.path / name
        if not path.exists():
            raise SourceError(f"{path} not found: {self.path} is not a ranker directory written "
                              "by `recsys train ranking`")
        return json.loads(path.read_text())

    def restore(self) -> RankerModel:
        cfg: RankerConfig = load_ranker_config(None, self._json("config.json"))
        vocab = Vocabularies.load(self.path / "vocabularies.json")
        with np.load(self.path / "item_table.npz") as table:
            ids, vectors = table["ids"].tolist(), table["vectors"]
        model = RankerModel(cfg, vocab, ids, vectors)
        model(example_batch(cfg))
        try:  # every weight of the model must come from the checkpoint (optimizer slots need not)
            tf.train.Checkpoint(model=model).read(str(self.path / "checkpoint" / "ranker")) \
                .assert_existing_objects_matched().expect_partial()
        except (AssertionError, ValueError, tf.errors.NotFoundError) as error:
            first_line = (str(error).splitlines() or [""])[0][:200]
            raise SourceError(
                f"{self.path}'s checkpoint does not hold this ranker's weights (a ranker of an "
                "earlier architecture, before the history was encoded once per user, another "
                "config than its config.json, or no checkpoint): train it again with `recsys "
                f"train ranking` ({type(error).__name__}: {first_line})"
            ) from None
        return model


__all__ = ["RankerDir"]
