"""One admitted request inside the engine: its prepared inputs, pending work and results.

Ownership: the scheduler's lock guards `pending_*` and `seq`; the inference thread alone writes
`outputs` and the timing fields; `cancelled` is a flag set from the event loop and read by both.
A finished job drops its token arrays, so nothing per request outlives the response.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np


class EmbeddingJob:
    def __init__(
        self,
        *,
        request_id: str,
        inputs: list[np.ndarray],
        dimension: int,
        admitted_at: float,
        on_finished: Callable[[EmbeddingJob], None],
        client: str = "",
    ) -> None:
        self.request_id = request_id
        self.client = client  # API key fingerprint or connection: whose share it draws on
        self.inputs = inputs
        self.dimension = dimension
        self.admitted_at = admitted_at
        self._on_finished = on_finished
        self.size = len(inputs)
        self.total_tokens = sum(int(ids.shape[0]) for ids in inputs)
        self.seq = -1
        order = sorted(range(self.size), key=lambda index: int(inputs[index].shape[0]))
        self.pending_lengths: list[int] = [int(inputs[index].shape[0]) for index in order]
        self.pending_indices: list[int] = order
        self.pending_tokens = self.total_tokens
        self.outputs: np.ndarray | None = None
        self.completed = 0
        self.cancelled = False
        self.finished = False
        self.error: BaseException | None = None
        self.queue_seconds = 0.0  # longest wait of one of its inputs before its batch started
        self.inference_seconds = 0.0  # wall time of the batches its inputs were part of
        self._last_batch_id = -1
        self._finish_lock = threading.Lock()

    def deliver(
        self, index: int, vector: np.ndarray, *, batch_id: int, started_at: float, duration: float
    ) -> None:
        """Store one input's vector (inference thread); finishes the job on the last one."""
        if self.finished:
            return
        if self.outputs is None:
            self.outputs = np.empty((self.size, self.dimension), dtype=np.float32)
        self.outputs[index] = vector
        self.completed += 1
        self._account_batch(batch_id, started_at, duration)
        if self.completed == self.size:
            self.finish()

    def _account_batch(self, batch_id: int, started_at: float, duration: float) -> None:
        if batch_id != self._last_batch_id:
            self._last_batch_id = batch_id
            self.inference_seconds += duration
            self.queue_seconds = max(self.queue_seconds, started_at - self.admitted_at)

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the job done (once) and notify its waiter; releases the token arrays."""
        with self._finish_lock:
            if self.finished:
                return
            self.finished = True
        self.error = error
        self.inputs = []
        if error is not None:
            self.outputs = None
        self._on_finished(self)
