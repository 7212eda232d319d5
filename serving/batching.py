"""Batching concurrent calls of one signature into one model call, with the semantics of TF
Serving's ``--enable_batching`` / ``--batching_parameters_file`` (``BasicBatchScheduler``):

* ``max_batch_size``: most rows (the sum of the tasks' first dimensions) in one call; a task
  larger than that is ``INVALID_ARGUMENT``;
* ``batch_timeout_micros``: how long the oldest task of an open batch waits for others
  before the batch runs anyway; 0 runs a batch as soon as a thread is free, so a batch holds
  whatever arrived while the threads were busy (no delay at low load);
* ``num_batch_threads``: batches run at once (per queue: one queue per model, signature and
  output filter);
* ``max_enqueued_batches``: queued work beyond this many full batches is refused with
  ``UNAVAILABLE`` at once, so overload is shed before it queues.

The parameters file is TF Serving's ``BatchingParameters`` text proto (e.g.
``max_batch_size { value: 128 }``), parsed by protobuf's ``text_format`` against the same
message (tensorflow-serving-api does not ship that proto, so it is declared here with TF
Serving's field names and numbers; fields this server does not implement are refused).

Guarantees: each caller gets exactly its own rows of every output, in order, and the version
that computed them; tasks in one batch have the same input names and row shapes (a task that
does not fit waits for the next batch); a task whose caller stopped waiting is dropped before
its batch runs; an error of the batched call is every task's error.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from recsys.config import Config, non_negative_int, positive_int, setting
from recsys.errors import ConfigError
from serving.errors import Code, ServingError

Outputs = dict[str, np.ndarray]
Runner = Callable[[Mapping[str, np.ndarray]], tuple[Outputs, int]]
_FIELDS = (("max_batch_size", 1), ("batch_timeout_micros", 2), ("max_enqueued_batches", 3),
           ("num_batch_threads", 4))


@dataclass(frozen=True)
class BatchingParameters(Config):
    """Attributes: see the module docstring."""

    max_batch_size: int = setting(4096, positive_int)
    batch_timeout_micros: int = setting(0, non_negative_int)
    num_batch_threads: int = setting(2, positive_int)
    max_enqueued_batches: int = setting(16, positive_int)


def _message_class():
    """TF Serving's ``tensorflow.serving.BatchingParameters`` (the fields implemented here)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="recsys_batching_parameters.proto", package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"], syntax="proto3")
    message = file.message_type.add(name="BatchingParameters")
    for name, number in _FIELDS:
        message.field.add(name=name, number=number, type=11, label=1,
                          type_name=".google.protobuf.Int64Value")
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def read_batching_parameters(path: Path) -> BatchingParameters:
    """The parameters of a ``--batching_parameters_file`` (unset fields: the defaults)."""
    from google.protobuf import text_format

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read --batching_parameters_file {path}: "
                          f"{exc.strerror}") from exc
    proto = _message_class()()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as exc:
        raise ConfigError(f"Invalid batching parameters file '{path}': {exc}") from exc
    values = {name: getattr(proto, name).value for name, _ in _FIELDS if proto.HasField(name)}
    try:
        return BatchingParameters.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"batching parameters file '{path}': {exc}") from exc


class _Task:
    __slots__ = ("inputs", "rows", "shapes", "done", "outputs", "version", "error",
                 "abandoned", "enqueued")

    def __init__(self, inputs: Mapping[str, np.ndarray]):
        self.inputs = {k: np.asarray(v) for k, v in inputs.items()}
        sizes = {v.shape[0] if v.ndim else 0 for v in self.inputs.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ServingError(Code.INVALID_ARGUMENT, "Batching requires every input to have "
                               "the same size in its first (batch) dimension, got "
                               f"{sorted(sizes)}")
        self.rows = sizes.pop()
        self.shapes = tuple(sorted((k, v.shape[1:], v.dtype.kind)
                                   for k, v in self.inputs.items()))
        self.done = threading.Event()
        self.outputs: Outputs | None = None
        self.version = 0
        self.error: BaseException | None = None
        self.abandoned = False
        self.enqueued = time.monotonic()


class BatchQueue:
    """The batch queue of one signature: ``submit`` blocks until the caller's rows are
    computed, in a batch with whatever other tasks are queued."""

    def __init__(self, run: Runner, params: BatchingParameters, name: str = "batch"):
        self.run, self.params = run, params
        self._tasks: deque[_Task] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self.batched_tasks = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Mapping[str, np.ndarray], timeout_s: float) -> tuple[Outputs, int]:
        task = _Task(inputs)
        limit = self.params.max_batch_size
        if task.rows > limit:
            raise ServingError(Code.INVALID_ARGUMENT, f"Task size {task.rows} is larger than "
                               f"maximum input batch size {limit}")
        with self._cond:
            if self._queued_rows + task.rows > limit * self.params.max_enqueued_batches:
                raise ServingError(Code.UNAVAILABLE, "The batch scheduling queue to which "
                                   "this task was submitted is full")
            self._tasks.append(task)
            self._queued_rows += task.rows
            self._cond.notify()
        if not task.done.wait(timeout_s):
            task.abandoned = True  # its batch, if not yet formed, leaves it out
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if task.error is not None:
            raise task.error
        return task.outputs, task.version

    def _take(self) -> list[_Task] | None:
        """The next batch (called with the lock held), None once closed."""
        timeout_s = self.params.batch_timeout_micros / 1e6
        while True:
            while self._tasks and self._tasks[0].abandoned:
                self._queued_rows -= self._tasks.popleft().rows
            if self._closed:
                return None
            if not self._tasks:
                self._cond.wait()
                continue
            # wait for more tasks, until the oldest has waited the batch timeout
            left_s = self._tasks[0].enqueued + timeout_s - time.monotonic()
            if left_s > 0 and self._queued_rows < self.params.max_batch_size:
                self._cond.wait(left_s)
                continue
            break
        first = self._tasks[0]
        batch, rows, left = [], 0, deque()
        while self._tasks:
            task = self._tasks.popleft()
            if task.abandoned:
                self._queued_rows -= task.rows
            elif task.shapes == first.shapes and rows + task.rows <= self.params.max_batch_size:
                batch.append(task)
                rows += task.rows
                self._queued_rows -= task.rows
            else:
                left.append(task)
        self._tasks = left
        return batch

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: list[_Task]) -> None:
        try:
            if len(batch) == 1:
                outputs, version = self.run(batch[0].inputs)
            else:
                joined = {name: np.concatenate([t.inputs[name] for t in batch])
                          for name in batch[0].inputs}
                outputs, version = self.run(joined)
            total = sum(t.rows for t in batch)
            for name, value in outputs.items():
                if np.ndim(value) == 0 or len(value) != total:
                    raise ServingError(Code.INTERNAL, f"output {name} has shape "
                                       f"{list(np.shape(value))}: not one row per input row "
                                       f"({total}), so it cannot be split among requests")
            start = 0
            for task in batch:
                task.outputs = {k: v[start:start + task.rows] for k, v in outputs.items()}
                task.version = version
                start += task.rows
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it
            for task in batch:
                task.error = exc
        finally:
            self.batches += 1
            self.batched_tasks += len(batch)
            for task in batch:
                task.done.set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)


class Batcher:
    """One :class:`BatchQueue` per key (model, signature, output filter), made on first use."""

    def __init__(self, params: BatchingParameters):
        self.params = params
        self._queues: dict[tuple, BatchQueue] = {}
        self._lock = threading.Lock()

    def submit(self, key: tuple, run: Runner, inputs: Mapping[str, np.ndarray],
               timeout_s: float) -> tuple[Outputs, int]:
        queue = self._queues.get(key)
        if queue is None:
            with self._lock:
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = BatchQueue(run, self.params,
                                                           "batch-" + "-".join(map(str, key)))
        return queue.submit(inputs, timeout_s)

    def stats(self) -> dict[tuple, tuple[int, int]]:
        """(batches run, tasks in them) per queue."""
        return {k: (q.batches, q.batched_tasks) for k, q in self._queues.items()}

    def close(self) -> None:
        for queue in list(self._queues.values()):
            queue.close()


__all__ = ["BatchingParameters", "BatchQueue", "Batcher", "read_batching_parameters"]
