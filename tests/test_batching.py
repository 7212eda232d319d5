"""Batching concurrent calls into one model call (TF Serving's batching semantics): each
caller gets its own rows, batches form under load and never exceed their size, overload is
refused before it queues, abandoned tasks are dropped, and the parameters file is TF
Serving's text proto with errors that name the problem."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from recsys.errors import ConfigError
from serving.batching import Batcher, BatchingParameters, BatchQueue, read_batching_parameters
from serving.errors import Code, ServingError


class SlowDouble:
    """A model that doubles ``x`` row by row and records the size of every call."""

    def __init__(self, seconds: float = 0.02):
        self.seconds, self.calls = seconds, []
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            self.calls.append(len(inputs["x"]))
        time.sleep(self.seconds)
        return {"y": inputs["x"] * 2, "label": inputs["name"]}, 7


def _concurrently(queue, tasks, timeout_s=5.0):
    results, errors = [None] * len(tasks), [None] * len(tasks)

    def call(i):
        try:
            results[i] = queue.submit(tasks[i], timeout_s)
        except ServingError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def _task(i: int, rows: int) -> dict:
    return {"x": np.arange(rows, dtype=np.float32) + 100 * i,
            "name": np.asarray([f"task{i}-{r}" for r in range(rows)], dtype=object)}


def test_each_caller_gets_its_own_rows_from_shared_batches():
    model = SlowDouble()
    queue = BatchQueue(model, BatchingParameters(max_batch_size=64, num_batch_threads=1))
    try:
        tasks = [_task(i, 1 + i % 3) for i in range(24)]
        results, errors = _concurrently(queue, tasks)
        assert not any(errors)
        for task, (outputs, version) in zip(tasks, results):
            np.testing.assert_array_equal(outputs["y"], task["x"] * 2)
            assert list(outputs["label"]) == list(task["name"]) and version == 7
        assert len(model.calls) < len(tasks)  # they were batched
        assert sum(model.calls) == sum(len(t["x"]) for t in tasks)
        assert max(model.calls) <= 64
    finally:
        queue.close()


def test_a_batch_never_exceeds_max_batch_size_and_a_larger_task_is_refused():
    model = SlowDouble()
    queue = BatchQueue(model, BatchingParameters(max_batch_size=5, num_batch_threads=1,
                                                 max_enqueued_batches=100))
    try:
        _concurrently(queue, [_task(i, 2) for i in range(12)])
        assert max(model.calls) <= 5
        with pytest.raises(ServingError) as error:
            queue.submit(_task(0, 6), 1.0)
        assert error.value.code == Code.INVALID_ARGUMENT
        assert "Task size 6 is larger than maximum input batch size 5" in str(error.value)
    finally:
        queue.close()


def test_a_full_queue_refuses_at_once():
    model = SlowDouble(seconds=0.3)
    queue = BatchQueue(model, BatchingParameters(max_batch_size=2, num_batch_threads=1,
                                                 max_enqueued_batches=1))
    try:
        results, errors = _concurrently(queue, [_task(i, 1) for i in range(8)])
        refused = [e for e in errors if e is not None]
        assert refused and all(e.code == Code.UNAVAILABLE for e in refused)
        assert "queue to which this task was submitted is full" in str(refused[0])
        assert sum(r is not None for r in results) >= 2
    finally:
        queue.close()


def test_a_task_whose_caller_gave_up_is_not_run():
    model = SlowDouble(seconds=0.3)
    queue = BatchQueue(model, BatchingParameters(max_batch_size=1, num_batch_threads=1))
    try:
        blocker = threading.Thread(target=queue.submit, args=(_task(0, 1), 5.0))
        blocker.start()
        time.sleep(0.05)  # the only thread is busy with the blocker
        with pytest.raises(ServingError) as error:
            queue.submit(_task(1, 1), 0.05)
        assert error.value.code == Code.DEADLINE_EXCEEDED
        blocker.join()
        time.sleep(0.1)
        assert model.calls == [1]  # the abandoned task never ran
    finally:
        queue.close()


def test_a_batch_timeout_gathers_tasks_that_arrive_within_it():
    model = SlowDouble(seconds=0.0)
    queue = BatchQueue(model, BatchingParameters(batch_timeout_micros=200_000,
                                                 num_batch_threads=1))
    try:
        def later(i):
            time.sleep(0.02 * i)
            queue.submit(_task(i, 1), 5.0)

        threads = [threading.Thread(target=later, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert model.calls == [4]
    finally:
        queue.close()


def test_errors_reach_every_caller_and_unsplittable_outputs_are_refused():
    def broken(inputs):
        raise ServingError(Code.INVALID_ARGUMENT, "bad input")

    def pooled(inputs):
        return {"mean": np.asarray([inputs["x"].mean()])}, 1

    batcher = Batcher(BatchingParameters(num_batch_threads=1))
    try:
        with pytest.raises(ServingError, match="bad input"):
            batcher.submit(("m", "broken"), broken, _task(0, 2), 2.0)
        with pytest.raises(ServingError, match="cannot be split among requests"):
            batcher.submit(("m", "pooled"), pooled, _task(0, 2), 2.0)
        with pytest.raises(ServingError, match="same size in its first"):
            batcher.submit(("m", "pooled"), pooled, {"x": np.zeros(2), "y": np.zeros(3)}, 2.0)
    finally:
        batcher.close()


def test_tasks_of_different_row_shapes_run_in_different_batches():
    model = SlowDouble(seconds=0.05)
    queue = BatchQueue(model, BatchingParameters(num_batch_threads=1))
    try:
        wide = {"x": np.zeros((2, 3), np.float32), "name": np.asarray(["a", "b"], object)}
        results, errors = _concurrently(queue, [_task(0, 1), wide, _task(1, 1), wide])
        assert not any(errors)
        assert results[1][0]["y"].shape == (2, 3) and results[0][0]["y"].shape == (1,)
    finally:
        queue.close()


def test_the_parameters_file_is_tf_servings_text_proto(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                    "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 4 }\n")
    assert read_batching_parameters(path) == BatchingParameters(128, 0, 4, 100)
    path.write_text("max_batch_size { value: 64 }\n")
    assert read_batching_parameters(path) == BatchingParameters(max_batch_size=64)


@pytest.mark.parametrize("text, message", [
    ("max_batch_size { value: 0 }", "max_batch_size must be a positive integer, got 0"),
    ("num_batch_threads: 4", "num_batch_threads"),
    ("allowed_batch_sizes: 8", 'has no field named "allowed_batch_sizes"'),
    ("max_batch_size {", "Invalid batching parameters file"),
])
def test_a_bad_parameters_file_is_refused_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "batching.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_batching_parameters(path)
    with pytest.raises(ConfigError, match="cannot read --batching_parameters_file"):
        read_batching_parameters(tmp_path / "missing.txt")
