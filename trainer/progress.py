"""Keras callbacks for long training runs: a progress bar and epoch-end checkpoints."""

from __future__ import annotations

import logging
import time

import tensorflow as tf
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class ProgressBar(tf.keras.callbacks.Callback):
    """A tqdm bar per epoch (batches, loss, examples/s) and one log line per epoch."""

    def __init__(self, steps_per_epoch: int, examples_per_epoch: int, enabled: bool = True):
        super().__init__()
        self.steps = steps_per_epoch
        self.examples = examples_per_epoch
        self.enabled = enabled
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}", unit="batch",
                         disable=None if self.enabled else True, leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs and batch % 10 == 0:
            self._bar.set_postfix(loss=f"{float(logs.get('loss', float('nan'))):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        self._bar.close()
        seconds = time.perf_counter() - self._start
        self.seconds.append(seconds)
        loss = float((logs or {}).get("loss", float("nan")))
        log.info("epoch %d: loss %.4f, %.1fs, %s examples/s", epoch + 1, loss, seconds,
                 f"{self.examples / seconds:,.0f}")


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves ``manager``'s checkpoint every ``every`` epochs and after the last one, recording
    the number of finished epochs in ``epoch`` so a restarted run resumes after it."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable, every: int,
                 last: int):
        super().__init__()
        self.manager, self.epoch, self.every, self.last = manager, epoch, every, last

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0 or done == self.last:
            self.epoch.assign(done)
            path = self.manager.save(checkpoint_number=done)
            log.info("checkpoint %s", path)
