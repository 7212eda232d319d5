"""What a Predict call does, whichever API it came through: find the servable, check the
batch, run the signature, count it.

Guarantees: the servable is resolved once per request (a version swap in the middle of a
request cannot mix versions); batches larger than ``max_batch_size`` are refused before they
run (``INVALID_ARGUMENT``); every request, failed or not, is recorded in the metrics with its
status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from serving.errors import Code, ServingError
from serving.server_core import ServerCore
from serving.servable import Servable, Signature


@dataclass
class Prediction:
    servable: Servable
    signature: Signature
    outputs: dict[str, np.ndarray]


class Predictor:
    """``batcher`` (a :class:`~serving.batching.Batcher`, TF Serving's ``--enable_batching``)
    runs concurrent calls of one version's signature as one; ``batch_timeout_s`` bounds how
    long a call waits for its batch."""

    def __init__(self, core: ServerCore, max_batch_size: int, metrics=None, batcher=None,
                 batch_timeout_s: float = 30.0):
        self.core = core
        self.max_batch_size = max_batch_size
        self.metrics = metrics
        self.batcher, self.batch_timeout_s = batcher, batch_timeout_s

    def resolve(self, name: str, version: int | None, label: str | None) -> Servable:
        if not name:
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        return self.core.manager(name).resolve(version, label)

    def predict(self, name: str, version: int | None, label: str | None,
                signature_name: str | None,
                decode: Callable[[Signature], Mapping[str, np.ndarray]], api: str,
                entrypoint: str, output_filter: tuple[str, ...] = (),
                servable: Servable | None = None) -> Prediction:
        """``decode`` turns the request into arrays once the signature is known; ``servable``
        is the already resolved version, if the caller resolved it first."""
        started = time.perf_counter()
        signature, status = None, Code.OK
        try:
            servable = servable or self.resolve(name, version, label)
            signature = servable.signature(signature_name, api=entrypoint.lower())
            inputs = decode(signature)
            self._check_batch(inputs)
            if self.batcher is None:
                outputs = servable.run(signature, inputs, output_filter)
            else:
                servable.check(signature, inputs)  # a bad request fails alone
                chosen = servable

                def run(arrays):
                    outputs = chosen.run(signature, arrays, output_filter, checked=True)
                    return outputs, chosen.version

                outputs, _ = self.batcher.submit(
                    (servable.name, servable.version, signature.name, output_filter), run,
                    inputs, self.batch_timeout_s)
            return Prediction(servable, signature, outputs)
        except ServingError as exc:
            status = exc.code
            raise
        except Exception:
            status = Code.INTERNAL
            raise
        finally:
            if self.metrics is not None:
                self.metrics.record_request(
                    model_name=name, api=api, entrypoint=entrypoint, status_name=status.name,
                    seconds=time.perf_counter() - started,
                    version=str(servable.version) if servable else "",
                    signature=signature.name if signature else (signature_name or ""))

    def _check_batch(self, inputs: Mapping[str, np.ndarray]) -> None:
        for value in inputs.values():
            if np.ndim(value) and len(value) > self.max_batch_size:
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"Task size {len(value)} is larger than maximum input batch "
                                   f"size {self.max_batch_size}")


__all__ = ["Predictor", "Prediction"]
