"""The queue between request handlers and the inference thread: admission and batch forming.

Admission is by tokens: a request is admitted only if the tokens already admitted and not yet
embedded (queued plus in the running batch) stay within `max_queued_tokens`; otherwise it is
refused at once with a `Retry-After` estimated from the measured throughput. The queue is
therefore bounded in tokens (memory and waiting time) and in requests.

Before a request is tokenized it `reserve`s its estimated tokens (and a request slot): a crowd
of clients is refused at the door in milliseconds instead of first queueing for the
tokenization pool; `submit` turns the reservation into the real, measured admission.

Thread-safety: every method takes the internal condition's lock; `next_batch` blocks the
inference thread until work arrives or the scheduler is closed.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jina_openai.engine.batch_selection import select_batch
from jina_openai.engine.errors import QueueFullError, RequestTooLargeError
from jina_openai.engine.job import EmbeddingJob
from jina_openai.engine.throughput import ThroughputEstimator

MAX_RETRY_AFTER_S = 60


@dataclass(frozen=True)
class SchedulerLimits:
    max_batch_tokens: int  # padded tokens per forward pass (one input always fits alone)
    max_batch_inputs: int
    max_queued_tokens: int  # admitted and unfinished tokens
    max_queued_requests: int


@dataclass
class Batch:
    batch_id: int
    items: list[tuple[EmbeddingJob, int]]  # (job, input index)
    tokens: int  # real tokens
    padded_tokens: int  # longest x count: what the forward pass costs
    formed_at: float


class BatchScheduler:
    def __init__(
        self,
        limits: SchedulerLimits,
        throughput: ThroughputEstimator,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._throughput = throughput
        self._clock = clock
        self._condition = threading.Condition()
        self._jobs: dict[int, EmbeddingJob] = {}  # jobs with pending inputs, in arrival order
        self._seq = itertools.count()
        self._batch_ids = itertools.count()
        self._admitted_tokens = 0
        self._reserved_tokens = 0  # estimates of requests being tokenized
        self._reservations = 0
        self._queued_tokens = 0
        self._queued_inputs = 0
        self._closed = False

    # --- observation (lock-free reads of ints: fine for gauges) ---------------------------------
    @property
    def queued_inputs(self) -> int:
        return self._queued_inputs

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def admitted_tokens(self) -> int:
        return self._admitted_tokens

    @property
    def queued_requests(self) -> int:
        return len(self._jobs)

    @property
    def closed(self) -> bool:
        return self._closed

    # --- request side ---------------------------------------------------------------------------
    @property
    def reserved_tokens(self) -> int:
        return self._reserved_tokens

    def check_capacity(self) -> None:
        """Cheap pre-check before tokenizing: refuse when the queue is already full."""
        self.release(self.reserve(0))

    def reserve(self, estimated_tokens: int) -> int:
        """Hold `estimated_tokens` of the queue (at most all of it: a request too large for
        the queue is judged on its real size by `submit`) and one request slot while the
        request is tokenized, or refuse at once. Returns what to pass to `submit` / `release`."""
        tokens = min(max(0, estimated_tokens), self.limits.max_queued_tokens)
        with self._condition:
            if self._closed:
                raise QueueFullError("the server is shutting down", retry_after_s=5)
            held = self._admitted_tokens + self._reserved_tokens
            if held >= self.limits.max_queued_tokens or (
                tokens and held + tokens > self.limits.max_queued_tokens
            ):
                raise self._queue_full(held + tokens - self.limits.max_queued_tokens + 1)
            if len(self._jobs) + self._reservations >= self.limits.max_queued_requests:
                raise self._queue_full(0, requests=True)
            self._reserved_tokens += tokens
            self._reservations += 1
            return tokens

    def release(self, reserved: int) -> None:
        """Give back a reservation that will not be submitted (the request failed)."""
        with self._condition:
            self._release_reservation(reserved)

    def submit(self, job: EmbeddingJob, *, reserved: int | None = None) -> None:
        """Admit the job, turning its reservation (if any: `reserve`'s return) into admission;
        the reservation is given back whatever the outcome."""
        with self._condition:
            if reserved is not None:
                self._release_reservation(reserved)
            if job.total_tokens > self.limits.max_queued_tokens:
                raise RequestTooLargeError(
                    f"the request holds {job.total_tokens} tokens, more than the "
                    f"{self.limits.max_queued_tokens} this server queues at once; split it"
                )
            if self._closed:
                raise QueueFullError("the server is shutting down", retry_after_s=5)
            held = self._admitted_tokens + self._reserved_tokens
            excess = held + job.total_tokens - self.limits.max_queued_tokens
            if excess > 0:
                raise self._queue_full(excess)
            if len(self._jobs) + self._reservations >= self.limits.max_queued_requests:
                raise self._queue_full(0, requests=True)
            job.seq = next(self._seq)
            self._jobs[job.seq] = job
            self._admitted_tokens += job.total_tokens
            self._queued_tokens += job.total_tokens
            self._queued_inputs += job.size
            self._condition.notify()

    def cancel(self, job: EmbeddingJob) -> int:
        """Drop the job's inputs that have not reached a batch; returns how many were dropped."""
        with self._condition:
            job.cancelled = True
            if self._jobs.pop(job.seq, None) is None:
                return 0
            dropped = len(job.pending_lengths)
            self._release_pending(job)
            return dropped

    # --- inference side -------------------------------------------------------------------------
    def next_batch(self, timeout: float | None = None) -> Batch | None:
        """Block until work is queued; None when closed (or on timeout)."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._jobs or self._closed, timeout):
                return None
            if self._closed:
                return None
            selections = select_batch(
                list(self._jobs.values()),
                max_tokens=self.limits.max_batch_tokens,
                max_inputs=self.limits.max_batch_inputs,
            )
            items: list[tuple[EmbeddingJob, int]] = []
            tokens = 0
            longest = 0
            by_job: dict[int, list[int]] = {}
            for selection in selections:
                job = selection.request
                assert isinstance(job, EmbeddingJob)
                by_job.setdefault(job.seq, []).append(selection.position)
                items.append((job, selection.index))
                tokens += selection.length
                longest = max(longest, selection.length)
            for seq, positions in by_job.items():
                job = self._jobs[seq]
                for position in sorted(positions, reverse=True):
                    job.pending_tokens -= job.pending_lengths.pop(position)
                    job.pending_indices.pop(position)
                if not job.pending_lengths:
                    del self._jobs[seq]
            self._queued_tokens -= tokens
            self._queued_inputs -= len(items)
            return Batch(
                batch_id=next(self._batch_ids),
                items=items,
                tokens=tokens,
                padded_tokens=longest * len(items),
                formed_at=self._clock(),
            )

    def finish_batch(self, batch: Batch) -> None:
        """The batch left the model (done or failed): its tokens no longer count as admitted."""
        with self._condition:
            self._admitted_tokens -= batch.tokens

    def close(self) -> list[EmbeddingJob]:
        """Stop handing out batches; returns the jobs that still had pending inputs."""
        with self._condition:
            self._closed = True
            jobs = list(self._jobs.values())
            for job in jobs:
                self._release_pending(job)
            self._jobs.clear()
            self._condition.notify_all()
            return jobs

    # --- internals ------------------------------------------------------------------------------
    def _release_reservation(self, reserved: int) -> None:
        self._reserved_tokens -= reserved
        self._reservations -= 1
        assert self._reserved_tokens >= 0
        assert self._reservations >= 0

    def _release_pending(self, job: EmbeddingJob) -> None:
        self._admitted_tokens -= job.pending_tokens
        self._queued_tokens -= job.pending_tokens
        self._queued_inputs -= len(job.pending_lengths)
        job.pending_tokens = 0
        job.pending_lengths = []
        job.pending_indices = []

    def _queue_full(self, excess_tokens: int, *, requests: bool = False) -> QueueFullError:
        wait = self._throughput.seconds_for(max(excess_tokens, self.limits.max_batch_tokens))
        retry_after = min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait)))
        what = (
            f"{self.limits.max_queued_requests} queued requests"
            if requests
            else f"{self.limits.max_queued_tokens} queued tokens"
        )
        return QueueFullError(
            f"the server is at capacity ({what}); retry after {retry_after} s",
            retry_after_s=retry_after,
        )
