"""Training the two-tower model: reproducible per seed, resumable, observable.

Guarantees: the same data, configuration and seed give the same weights (TensorFlow op
determinism is on); a run restarted on the same model directory resumes after its last
checkpoint; vocabularies and popularity come from the train split only. A warm start
(``init_from``) keeps the source model's vocabularies (ids it never saw share its
out-of-vocabulary rows) and starts from its latest weights, with a fresh optimizer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from recsys.errors import SourceError
from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from trainer.batches import shuffled_batches
from trainer.config import RetrievalConfig
from trainer.ensemble_tower import tower_members
from trainer.model_dir import ModelDir
from trainer.progress import EpochCheckpoint, ProgressBar
from trainer.retrieval_model import EXAMPLE_WEIGHT, MASK_USER, SAMPLING_PROBABILITY, TwoTowerModel
from trainer.strategy import make_strategy, worker_role
from trainer.training_data import RetrievalData, timestamps_us, with_content
from trainer.vocabularies import Vocabularies

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_dir: Path
    epochs_run: int
    examples: int
    losses: list[float]
    examples_per_second: float


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TensorFlow ops."""
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def sampling_probability(item_ids: np.ndarray) -> np.ndarray:
    """Each example's item share of all training positives."""
    _, inverse, counts = np.unique(item_ids, return_inverse=True, return_counts=True)
    return (counts[inverse] / len(item_ids)).astype(np.float32)


def _catalogue_arrays(data: RetrievalData, cfg: RetrievalConfig, vocab: Vocabularies) -> dict:
    from recsys.model_contract.arrays import with_item_age

    items = data.catalogue[data.catalogue["item_id"].isin(set(vocab.item_ids))]
    reference = int(np.max(data.train["event_timestamp"]).value // 1000)
    return to_arrays(with_item_age(items, reference), candidate_inputs(cfg.model), "catalogue")


def plot_losses(losses: list[float], path: Path, title: str = "two-tower retrieval",
                ylabel: str = "training loss (in-batch softmax)") -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(losses) + 1), losses, marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _restore_towers(model: TwoTowerModel, source: ModelDir, sample: dict) -> None:
    """Load ``source``'s latest tower weights into ``model`` (built on ``sample`` first),
    and nothing else: the optimizer stays the new one. Every tower variable must come from
    the checkpoint (a SourceError otherwise)."""
    path = tf.train.latest_checkpoint(source.checkpoints)
    if path is None:
        raise SourceError(f"no checkpoint in {source.checkpoints} to warm-start from")
    model.query_tower(sample)
    model.candidate_tower(sample)
    towers = tf.train.Checkpoint(query_tower=model.query_tower,
                                 candidate_tower=model.candidate_tower)
    status = tf.train.Checkpoint(model=towers).restore(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise SourceError(f"{path} does not hold every weight of this model ({exc}); it "
                          "cannot be warm-started from") from exc
    status.expect_partial()  # the source's optimizer and epoch are left out on purpose
    log.info("warm start from %s (tower weights only)", path)


def forget_users(model: TwoTowerModel) -> int:
    """Set every known user's id row of the query tower to the trained "unknown" row (index
    1), so a fine-tune relearns each user from the examples it is given (after a drift, the
    rows hold the tastes the users had before it). Returns the rows reset."""
    rows = len(model.query_tower.user.vocabulary)  # 0 without id rows (user_id_embedding)
    for member in tower_members(model.query_tower):
        table = member.user.embedding.embeddings
        if rows > 0:
            table.assign(tf.concat([table[:2], tf.repeat(table[1:2], rows, axis=0)], axis=0))
    log.info("forgot %s users: their id rows start as the unknown user's", f"{rows:,}")
    return max(rows, 0)


def user_numbers(user_ids: np.ndarray) -> np.ndarray:
    """Each example's user as int64 0..distinct users - 1 (equal ids, equal numbers), for the
    positives' mask: unlike the id embedding's rows, never shared between two users."""
    return np.unique(user_ids, return_inverse=True)[1].astype(np.int64).reshape(-1)


def mean_one(weights: np.ndarray) -> np.ndarray:
    """``weights`` (finite, >= 0, not all 0) scaled to mean 1, as float32: the loss keeps
    its scale, and the learning rate its meaning."""
    if not len(weights) or not np.all(np.isfinite(weights)) or np.any(weights < 0) \
            or not weights.sum() > 0:
        raise ValueError("example weights must be finite, >= 0 and not all 0")
    return (weights * (len(weights) / weights.sum())).astype(np.float32)


class IndexRefresh(tf.keras.callbacks.Callback):
    """Rebuilds the model's index of mined negatives at the start of every epoch (a no-op
    without ``num_index_negatives``)."""

    def __init__(self, model: TwoTowerModel):
        super().__init__()
        self.two_tower = model

    def on_epoch_begin(self, epoch, logs=None):
        self.two_tower.refresh_index()


def train_retrieval(data: RetrievalData, cfg: RetrievalConfig, model_dir: Path,
                    progress: bool = True, init_from: ModelDir | None = None,
                    reset_users: bool = False) -> TrainResult:
    """Train (or resume training) the two-tower model on ``data.train`` into ``model_dir``;
    with ``init_from``, fine-tune that model's latest weights (its model config and
    vocabularies are kept). An ``example_weight`` column weighs each example in the loss
    (scaled to mean 1). ``reset_users`` (with ``init_from``): every user's id row starts as
    the unknown user's (``forget_users``)."""
    if data.train.empty:
        raise SourceError("no training examples: the training set is empty")
    # the strategy first: a multi-worker one must exist before any other TensorFlow op
    strategy = make_strategy(cfg.train.strategy)
    role = worker_role(strategy)
    seed_everything(cfg.train.seed)
    directory = ModelDir(model_dir)
    # Every worker trains and saves checkpoints (a multi-worker save is collective); only the
    # chief writes the model directory, the others a scratch directory removed at the end.
    scratch = None if role.is_chief else ModelDir(directory.path / f".{role.task}")
    writes = directory if scratch is None else scratch
    if init_from is not None:
        cfg = dataclasses.replace(cfg, model=init_from.read_config().model)
    writes.write_config(cfg)
    frame = with_content(data.train, data.catalogue)
    queries = to_arrays(frame, query_inputs(cfg.model), "the training set")
    candidates = to_arrays(frame, candidate_inputs(cfg.model), "the training set")
    vocab = (Vocabularies.load(init_from.vocabularies_file) if init_from is not None
             else Vocabularies.build(queries, candidates, query_inputs(cfg.model)))
    vocab.save(writes.vocabularies_file)
    writes.write_data_info(int(timestamps_us(data.train).max()), n_examples=len(frame))
    sampled = cfg.model.num_random_negatives or cfg.model.num_index_negatives
    catalogue = _catalogue_arrays(data, cfg, vocab) if sampled else None
    features = {**queries, **candidates,
                SAMPLING_PROBABILITY: sampling_probability(candidates["item_id"])}
    if EXAMPLE_WEIGHT in frame.columns:
        features[EXAMPLE_WEIGHT] = mean_one(frame[EXAMPLE_WEIGHT].to_numpy(np.float64))
    if cfg.model.mask_user_positives:
        features[MASK_USER] = user_numbers(queries["user_id"])
    n = len(frame)
    latest = tf.train.latest_checkpoint(directory.checkpoints)  # the chief's, for every worker
    resuming = latest is not None
    with strategy.scope():
        model = TwoTowerModel(cfg.model, vocab, catalogue)
        if init_from is not None and not resuming:
            _restore_towers(model, init_from, {k: v[:2] for k, v in features.items()})
            if reset_users:
                forget_users(model)
        model.compile(optimizer=tf.keras.optimizers.Adam(cfg.train.learning_rate))
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, writes.checkpoints,
                                         max_to_keep=cfg.train.max_checkpoints)
    if latest:
        checkpoint.restore(latest)
        log.info("%s: resuming from %s (epoch %d)", role.task, latest, int(epoch.numpy()))
    initial_epoch = int(epoch.numpy())
    # every string is looked up once here, not once per epoch; the raw arrays are let go
    features = model.encode(features)
    model.use_encoded_inputs()
    if cfg.model.mask_user_positives:
        model.set_user_positives(features[MASK_USER], features["item_id"])
    del queries, candidates
    # batches of the global batch size; on several workers, each takes its share of every
    # batch (sharding by data: every worker reads the same arrays)
    sharding = tf.data.Options()
    sharding.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # One iterator for every epoch: tf_keras's fit makes a new one at each epoch's start,
    # and letting the last one go cost up to 20 s at some epoch boundaries (py-spy, inside
    # the benchmark). The same batches as before: fit also makes one iterator of a finite
    # dataset that it never reads, so its epochs had the shuffle's orders 1, 2, ...; the
    # endless dataset skips order 0 to give exactly those.
    steps = math.ceil(n / cfg.train.batch_size)
    dataset = shuffled_batches(features, cfg.train.batch_size, cfg.train.seed,
                               repeat=True).skip(steps).with_options(sharding)
    bar = ProgressBar(steps, n, enabled=progress and role.is_chief)
    trained: list = []
    if initial_epoch < cfg.train.epochs:
        history = model.fit(
            dataset, epochs=cfg.train.epochs, initial_epoch=initial_epoch,
            steps_per_epoch=steps, verbose=0,
            callbacks=[IndexRefresh(model), bar,
                       tf.keras.callbacks.TensorBoard(str(writes.logs), update_freq=50),
                       EpochCheckpoint(manager, epoch, cfg.train.checkpoint_every_epochs,
                                       cfg.train.epochs)])
        trained = history.history.get("loss", [])
    else:  # a run that checkpointed its last epoch and stopped before it finished
        log.info("the checkpoint holds all %d epochs: nothing left to train", cfg.train.epochs)
    losses = [float(x) for x in trained]
    rate = (len(losses) * n / sum(bar.seconds)) if bar.seconds else 0.0
    if scratch is not None:
        shutil.rmtree(scratch.path, ignore_errors=True)
        return TrainResult(directory.path, len(losses), n, losses, rate)
    (directory.path / "history.json").write_text(json.dumps(
        {"loss": losses, "epoch_seconds": bar.seconds, "examples": n,
         "examples_per_second": rate, "initial_epoch": initial_epoch,
         "warm_start_from": str(init_from.path) if init_from is not None else None},
        indent=2))
    if losses:
        plot_losses(losses, directory.path / "loss.png")
    return TrainResult(directory.path, len(losses), n, losses, rate)


__all__ = ["train_retrieval", "TrainResult", "seed_everything", "sampling_probability",
           "mean_one", "forget_users", "plot_losses"]
